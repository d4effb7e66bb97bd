"""Settings files (design.md §12): mlproj.toml or [tool.mlproj] in pyproject.toml in the project's folder
or the current one, then the user's MLPROJ_HOME/config.toml; only asked when no flag or variable said."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlproj.config import download_limit, setting
from mlproj.errors import InputError
from mlproj.tracking import tracking_uri


def test_the_first_file_that_sets_a_key_wins(tmp_path: Path) -> None:
    project, cwd, home = tmp_path / "project", tmp_path / "cwd", tmp_path / "home"
    for folder in (project, cwd, home):
        folder.mkdir()
    folders = (project, cwd)
    assert setting("tracking_uri", folders=folders, home=str(home)) is None
    (home / "config.toml").write_text('tracking_uri = "http://user:5000"\n')
    assert setting("tracking_uri", folders=folders, home=str(home)) == (
        "http://user:5000",
        str(home / "config.toml"),
    )
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.mlproj]\ntracking_uri = "http://cwd:5000"\n'
    )
    assert setting("tracking_uri", folders=folders, home=str(home))[0] == "http://cwd:5000"  # type: ignore[index]
    (project / "mlproj.toml").write_text('tracking_uri = "http://project:5000"\n')
    assert setting("tracking_uri", folders=folders, home=str(home)) == (
        "http://project:5000",
        str(project / "mlproj.toml"),
    )


def test_a_pyproject_without_the_table_says_nothing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert setting("tracking_uri", folders=(tmp_path,), home=str(tmp_path / "none")) is None


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("mlproj.toml", "tracking_uri = \n", "not valid TOML"),
        ("mlproj.toml", 'trackin_uri = "x"\n', "trackin_uri: unknown setting"),
        ("pyproject.toml", '[tool]\nmlproj = "x"\n', "tool.mlproj: expected a table"),
        ("pyproject.toml", "[tool.mlproj]\nnope = 1\n", "tool.mlproj.nope: unknown setting"),
    ],
)
def test_a_bad_file_is_an_input_error_naming_it(tmp_path: Path, name: str, text: str, words: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=words) as caught:
        setting("tracking_uri", folders=(tmp_path,), home=str(tmp_path / "none"))
    assert str(tmp_path / name) in str(caught.value)


def test_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mlproj.toml").write_text('experiment = "x"\n')
    with pytest.raises(
        InputError, match="experiment: unknown setting \\(expected one of: env_manager, backend, "
    ):
        setting("tracking_uri", folders=(tmp_path,), home=str(tmp_path))


def test_a_tracking_uri_from_a_file_is_made_absolute_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "mlproj.toml").write_text('tracking_uri = "sqlite:///mlflow.db"\n')
    found = tracking_uri(None, enabled=True, caller_dir=tmp_path, folders=(project,), home=str(tmp_path))
    assert found == f"sqlite:///{project}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://variable:1")  # a variable beats a file
    assert tracking_uri(None, enabled=True, caller_dir=tmp_path, folders=(project,), home=str(tmp_path)) == (
        "http://variable:1"
    )
    assert (
        tracking_uri(None, enabled=False, caller_dir=tmp_path, folders=(project,), home=str(tmp_path)) is None
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (project / "mlproj.toml").write_text("tracking_uri = 5\n")
    with pytest.raises(InputError, match="tracking_uri: expected a string"):
        tracking_uri(None, enabled=True, caller_dir=tmp_path, folders=(project,), home=str(tmp_path))


@pytest.mark.parametrize(
    ("text", "limit"), [("", 10 * 2**30), ("500M", 500 * 2**20), ("2GiB", 2 * 2**30), ("1024", 1024)]
)
def test_the_download_limit(monkeypatch: pytest.MonkeyPatch, text: str, limit: int) -> None:
    monkeypatch.setenv("MLPROJ_DOWNLOAD_LIMIT", text)
    assert download_limit() == limit


@pytest.mark.parametrize("text", ["-1", "lots", "inf", "0"])
def test_a_bad_download_limit_is_an_input_error(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("MLPROJ_DOWNLOAD_LIMIT", text)
    with pytest.raises(InputError, match="MLPROJ_DOWNLOAD_LIMIT"):
        download_limit()
