"""MLproject files and URIs that `mlflow run` accepts run under mlproj too: keys it does not read and
entry points that are not run are warnings, a docker_env runs in its container whatever is asked,
zipped projects, quoted URIs, `.sh`/`.R` scripts, relative paths normalised, artifact URIs, MLflow's
conda variables, and `validate` without conda or a Docker engine."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from mlproj.envs.tools import conda_executable
from mlproj.errors import InputError
from mlproj.home import Home
from tests.helpers import (
    assert_input_error,
    assert_nothing_unfinished,
    command_project,
    invoke,
    mlproj,
    mlproj_json,
    write_project,
)

LOOSE = """\
name: loose
owner: someone              # a key mlproj does not read
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "echo alpha={alpha}"
  sloppy:
    parameters:
      rate: {type: float, default:0.1}   # no space: a key `default:0.1`, no default
      epochs: {type: int, default: 10.0}
      flag: {type: float, default: false}
    command: "echo {rate} {epochs} {flag}"
"""


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mlproj: warning: ")]


def test_a_project_mlflow_runs_runs_with_warnings(home: Home, tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", LOOSE)
    done = mlproj("run", str(project), "-P", "alpha=0.25")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["alpha=0.25"]
    warned = warnings_of(done.stderr)
    assert any("owner: unknown key, ignored" in line for line in warned), warned
    assert any("entry_points.sloppy.parameters.rate.default:0.1: unknown key" in line for line in warned)
    assert any(
        "entry_points.sloppy.parameters.epochs.default" in line and "'sloppy' is not run" in line
        for line in warned
    ), warned
    # The broken entry point, run, is an error naming what is wrong (after the warnings of the file).
    done = mlproj("run", str(project), "-e", "sloppy")
    assert done.returncode == 2, done.stderr
    *before, last = done.stderr.strip().splitlines()
    assert last.startswith("mlproj: error: ") and "entry_points.sloppy.parameters.epochs.default" in last
    assert all(line.startswith("mlproj: warning: ") for line in before)
    assert_nothing_unfinished(home)


def test_json_keeps_warnings_off_stdout(home: Home, tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", LOOSE)
    done = mlproj("run", str(project), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "Finished"
    assert warnings_of(done.stderr)


def test_docker_env_runs_in_docker_whatever_the_env_manager(home: Home, tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "name: d\ndocker_env:\n  image: python:3.11-slim\n  registry: example.invalid\n"
        "entry_points:\n  main:\n    command: python -c pass\n",
    )
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # validate needs no engine
    done = mlproj("validate", str(project), "--env-manager", "local", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["env_manager"] == "docker"
    warned = warnings_of(done.stderr)
    assert any("--env-manager local is ignored" in line and "docker_env" in line for line in warned), warned
    assert any("docker_env.registry: not used by mlproj" in line for line in warned), warned
    done = mlproj("validate", str(project), "--json", env={**env, "MLPROJ_ENV_MANAGER": "virtualenv"})
    assert json.loads(done.stdout)["env_manager"] == "docker"
    assert any("MLPROJ_ENV_MANAGER virtualenv is ignored" in line for line in warnings_of(done.stderr))


def test_validate_a_conda_project_without_conda(home: Home, tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "name: c\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: python -c pass\n",
        {"conda.yaml": "name: c\ndependencies: [python=3.11]\n"},
    )
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {"PATH": str(empty), "MLPROJ_CONDA_EXE": "", "CONDA_EXE": ""}
    done = mlproj("validate", str(project), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["env_manager"] == "conda"
    assert_input_error(mlproj("run", str(project), env=env), "conda is not installed")  # running needs it


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_a_zipped_project_runs_from_a_private_copy(home: Home, tmp_path: Path) -> None:
    mlproject = "name: z\nentry_points:\n  main:\n    command: 'ls; touch made-by-the-run'\n"
    archive = _zip(
        tmp_path / "project.zip", {"MLproject": mlproject, "train.py": "", "sub/MLproject": mlproject}
    )
    first = mlproj_json("run", str(archive))
    assert first["status"] == "Finished"
    assert first["uri"] == str(archive)
    assert Path(first["log_path"]).read_text().split() == ["MLproject", "sub", "train.py"]
    second = mlproj_json("run", f"file://{archive}")  # the file URI too; the first run's file is not there
    assert Path(second["log_path"]).read_text().split() == ["MLproject", "sub", "train.py"]
    third = mlproj_json("run", f"{archive}#sub")
    assert Path(third["log_path"]).read_text().split() == ["MLproject"]


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"../evil": "x"}, "outside the project"),
        ({"/abs": "x"}, "outside the project"),
    ],
)
def test_a_zip_that_would_unpack_outside_is_refused(
    home: Home, tmp_path: Path, files: dict[str, str], words: str
) -> None:
    archive = _zip(tmp_path / "bad.zip", files)
    assert_input_error(invoke("run", str(archive)), str(archive), words)
    assert not (tmp_path / "evil").exists()
    assert_nothing_unfinished(home)


def test_a_zip_with_a_link_or_that_is_not_a_zip_is_refused(home: Home, tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as out:
        info = zipfile.ZipInfo("MLproject")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(info, "/etc/passwd")
    assert_input_error(invoke("run", str(archive)), "is a link")
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip")
    assert_input_error(invoke("run", str(fake)), "not a zip file")
    assert_input_error(invoke("run", str(tmp_path / "missing.zip")), "no such zip file")
    assert_input_error(invoke("run", str(fake), "-v", "main"), "zip file, not a Git repository")


def test_a_quoted_uri_is_accepted(home: Home, tmp_path: Path) -> None:
    command_project(tmp_path / "p" / "sub", "echo in-sub")
    done = mlproj("run", f"'{tmp_path / 'p'}#sub'")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "in-sub"


def test_shell_scripts_run_with_the_users_shell(home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "run.sh").write_text('echo "shell=$0-ish"\n')
    shell = tmp_path / "my-shell"
    shell.write_text('#!/bin/sh\necho "via my-shell"\nexec /bin/sh "$@"\n')
    shell.chmod(0o755)
    done = mlproj("run", str(folder), "-e", "run.sh", env={"SHELL": str(shell)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "via my-shell"
    (folder / "fit.R").write_text("print(1)\n")
    assert mlproj_json("validate", str(folder), "-e", "fit.R")["command"] == "Rscript fit.R"


def test_relative_paths_are_normalised(home: Home, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1\n")
    project = write_project(
        tmp_path / "p",
        "name: n\nentry_points:\n  main:\n    parameters:\n      d: path\n    command: 'echo {d}'\n",
    )
    shown = mlproj_json("validate", str(project), "-P", "d=../data/x.csv", cwd=project)
    assert shown["command"] == f"echo {tmp_path / 'data' / 'x.csv'}"
    assert shown["parameters"] == {"d": "../data/x.csv"}  # recorded as given


@pytest.mark.parametrize("uri", ["s3://bucket/data.csv", "gs://b/x", "hdfs://nn/x", "dbfs:/x"])
def test_cloud_paths_need_the_mlflow_package(home: Home, tmp_path: Path, uri: str) -> None:
    project = write_project(
        tmp_path / "p",
        "name: n\nentry_points:\n  main:\n    parameters:\n      d: path\n    command: 'echo {d}'\n",
    )
    assert mlproj_json("validate", str(project), "-P", f"d={uri}")["parameters"] == {"d": uri}
    try:
        import mlflow  # noqa: F401 - where it is installed, the repository itself answers
    except ImportError:
        assert_input_error(invoke("run", str(project), "-P", f"d={uri}"), uri, "pip install 'mlproj[mlflow]'")
        assert_nothing_unfinished(home)


def test_runs_uris_need_tracking(home: Home, tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "name: n\nentry_points:\n  main:\n    parameters:\n      d: path\n    command: 'echo {d}'\n",
    )
    assert_input_error(
        invoke("run", str(project), "-P", "d=runs:/abc/model"), "runs:/", "MLFLOW_TRACKING_URI"
    )
    assert_input_error(invoke("run", str(project), "-P", "d=ftpx://x/y"), "cannot fetch ftpx: URIs")


# --- MLflow's conda variables ----------------------------------------------------------------------


def _program(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho conda-standin\n")
    path.chmod(0o755)
    return path


def test_conda_is_found_the_way_mlflow_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLPROJ_CONDA_EXE", "CONDA_EXE", "MLFLOW_CONDA_HOME", "MLFLOW_CONDA_CREATE_ENV_CMD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    home_conda = _program(tmp_path / "miniconda" / "bin" / "conda")
    home_mamba = _program(tmp_path / "miniconda" / "bin" / "mamba")
    monkeypatch.setenv("MLFLOW_CONDA_HOME", str(tmp_path / "miniconda"))
    assert conda_executable() == home_conda
    monkeypatch.setenv("MLFLOW_CONDA_CREATE_ENV_CMD", "mamba")
    assert conda_executable() == home_mamba
    explicit = _program(tmp_path / "elsewhere" / "conda")
    monkeypatch.setenv("MLPROJ_CONDA_EXE", str(explicit))
    assert conda_executable() == explicit  # mlproj's own variable first
    monkeypatch.delenv("MLPROJ_CONDA_EXE")
    monkeypatch.delenv("MLFLOW_CONDA_HOME")
    beside = _program(tmp_path / "env-conda" / "bin" / "mamba")
    monkeypatch.setenv("CONDA_EXE", str(tmp_path / "env-conda" / "bin" / "conda"))
    assert conda_executable() == beside  # the create command beside CONDA_EXE, as MLflow
    monkeypatch.delenv("CONDA_EXE")
    on_path = _program(tmp_path / "path-bin" / "mamba")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert conda_executable() == on_path
    monkeypatch.setenv("MLFLOW_CONDA_CREATE_ENV_CMD", "micromamba")
    with pytest.raises(InputError, match="MLFLOW_CONDA_CREATE_ENV_CMD=micromamba: not found on PATH"):
        conda_executable()
    monkeypatch.setenv("MLFLOW_CONDA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match=r"MLFLOW_CONDA_HOME=.*nowhere: no such executable"):
        conda_executable()
    assert os.environ["PATH"] == str(on_path.parent)


def test_the_python_api_raises_warnings_as_user_warnings(home: Home, tmp_path: Path) -> None:
    import warnings

    import mlproj

    project = write_project(tmp_path / "p", LOOSE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        submitted = mlproj.run(str(project), parameters={"alpha": 0.1})
    assert submitted.get_status() == "Finished"
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    assert any("owner: unknown key" in m for m in messages), messages
    assert any("'sloppy' is not run" in m for m in messages), messages
