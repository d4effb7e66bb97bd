"""Environment files read the MLflow way (python_env.yaml, conda.yaml, `-r`/`-c`), the fingerprint, and
the choice of manager: unit tests, no process started."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from mlproj.envs import choose_manager, get_manager
from mlproj.envs.envspec import EnvSpec, find_env_file, load_env_spec
from mlproj.errors import InputError, SpecError
from mlproj.spec import load_project

RUNNING = ".".join(map(str, sys.version_info[:3]))
MLPROJECT = "name: t\nentry_points:\n  main:\n    command: echo hi\n"


def project_dir(folder: Path, files: dict[str, str], mlproject: str | None = MLPROJECT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if mlproject is not None:
        (folder / "MLproject").write_text(mlproject)
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return folder


def spec_of(folder: Path, files: dict[str, str], mlproject: str | None = MLPROJECT) -> EnvSpec:
    return load_env_spec(load_project(project_dir(folder, files, mlproject)))


def spec_error(folder: Path, files: dict[str, str], mlproject: str | None = MLPROJECT) -> str:
    with pytest.raises(SpecError) as caught:
        spec_of(folder, files, mlproject)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- python_env.yaml ---------------------------------------------------------------------------------


def test_python_env_is_read(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path,
        {
            "python_env.yaml": 'python: "3.11"\nbuild_dependencies: [pip, "setuptools>=60"]\n'
            "dependencies:\n  - numpy==1.26.4\n  - ' pandas '\n  - ''\n"
        },
    )
    assert spec.kind == "python"
    assert spec.python == "3.11"
    assert spec.build_dependencies == ("pip", "setuptools>=60")
    assert spec.dependencies == ("numpy==1.26.4", "pandas")  # stripped, empty entries dropped
    assert spec.constraints == ()
    assert spec.source_file == str(tmp_path / "python_env.yaml")
    assert spec.project_dir == str(tmp_path)


def test_python_env_without_python_means_the_running_interpreter(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"python_env.yaml": "dependencies: [six]\n"})
    assert spec.python is None
    assert spec.python_version == RUNNING


@pytest.mark.parametrize("version", ["3", "3.11", "3.11.7", "'3.12'"])
def test_python_versions_accepted(tmp_path: Path, version: str) -> None:
    spec = spec_of(tmp_path, {"python_env.yaml": f"python: {version}\n"})
    assert spec.python == version.strip("'")


@pytest.mark.parametrize("version", ["'>=3.9'", "'3.11.x'", "latest", "'3.11.7.1'", "'py3.11'", "[3, 11]"])
def test_bad_python_versions_are_refused(tmp_path: Path, version: str) -> None:
    message = spec_error(tmp_path, {"python_env.yaml": f"python: {version}\n"})
    assert "python_env.yaml: python:" in message
    assert "expected a Python version" in message


def test_unquoted_python_3_10_is_not_silently_read_as_3_1(tmp_path: Path) -> None:
    try:
        spec = spec_of(tmp_path, {"python_env.yaml": "python: 3.10\n"})
    except SpecError as exc:  # refusing it, with a hint, would be fine too
        assert "3.10" in str(exc) or "quote" in str(exc)
    else:
        assert spec.python == "3.10"


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    message = spec_error(tmp_path, {"python_env.yaml": "python: '3.11'\nchannels: [defaults]\n"})
    assert "python_env.yaml: channels: unknown key" in message


@pytest.mark.parametrize(
    "text",
    [
        "dependencies: numpy\n",
        "dependencies: {numpy: 1}\n",
        "dependencies: [[numpy]]\n",
        "dependencies: [{pip: [numpy]}]\n",
        "build_dependencies: pip\n",
    ],
)
def test_dependency_lists_must_be_lists_of_strings(tmp_path: Path, text: str) -> None:
    message = spec_error(tmp_path, {"python_env.yaml": text})
    assert "expected a list of requirement strings" in message
    assert text.split(":", maxsplit=1)[0] in message


@pytest.mark.parametrize("text", ["- numpy\n", "just text\n", "python: [unclosed\n"])
def test_python_env_not_a_mapping_or_malformed(tmp_path: Path, text: str) -> None:
    message = spec_error(tmp_path, {"python_env.yaml": text})
    assert str(tmp_path / "python_env.yaml") in message


# --- -r and -c -------------------------------------------------------------------------------------------


def test_requirements_and_constraints_resolve_against_the_including_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    spec = spec_of(
        project,
        {
            "MLproject": "name: t\npython_env: envs/python_env.yaml\n"
            "entry_points:\n  main:\n    command: echo hi\n",
            "envs/python_env.yaml": "dependencies:\n  - six\n  - -r reqs/base.txt\n  - -c pins.txt\n",
            "envs/reqs/base.txt": "# a comment\n\nalpha==1.0  # trailing comment\n"
            "--requirement=more/extra.txt\n-c ../pins-nested.txt\n",
            "envs/reqs/more/extra.txt": "beta>=2\n-rlast.txt\n",
            "envs/reqs/more/last.txt": "gamma\n",
            "envs/pins.txt": "alpha<2\n",
            "envs/pins-nested.txt": "beta<3\n",
            # decoys: the same names beside the project and in the working directory
            "reqs/base.txt": "WRONG\n",
            "pins.txt": "WRONG\n",
        },
        mlproject=None,
    )
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "pins.txt").write_text("WRONG\n")
    monkeypatch.chdir(tmp_path / "cwd")
    assert spec == load_env_spec(load_project(project))  # the working directory plays no part
    assert spec.dependencies == ("six", "alpha==1.0", "beta>=2", "gamma")
    assert spec.constraints == ("beta<3", "alpha<2")
    assert spec.source_file == str(project / "envs" / "python_env.yaml")


@pytest.mark.parametrize(
    "line", ["-r req.txt", "-rreq.txt", "--requirement req.txt", "--requirement=req.txt"]
)
def test_requirement_option_spellings(tmp_path: Path, line: str) -> None:
    spec = spec_of(tmp_path, {"python_env.yaml": f"dependencies: [{line!r}]\n", "req.txt": "alpha\n"})
    assert spec.dependencies == ("alpha",)


@pytest.mark.parametrize("line", ["-c pins.txt", "--constraint pins.txt", "--constraint=pins.txt"])
def test_constraint_option_spellings(tmp_path: Path, line: str) -> None:
    spec = spec_of(
        tmp_path, {"python_env.yaml": f"dependencies: [alpha, {line!r}]\n", "pins.txt": "alpha<2\n"}
    )
    assert spec.dependencies == ("alpha",)
    assert spec.constraints == ("alpha<2",)


def test_a_requirements_file_that_includes_itself_is_an_error(tmp_path: Path) -> None:
    message = spec_error(
        tmp_path, {"python_env.yaml": "dependencies: [-r a.txt]\n", "a.txt": "x\n-r a.txt\n"}
    )
    assert "include themselves" in message
    assert "a.txt" in message


def test_an_include_loop_through_another_file_is_an_error(tmp_path: Path) -> None:
    message = spec_error(
        tmp_path,
        {
            "python_env.yaml": "dependencies: [-r a.txt]\n",
            "a.txt": "-r sub/b.txt\n",
            "sub/b.txt": "-r ../a.txt\n",
        },
    )
    assert "include themselves" in message


def test_the_same_file_included_twice_without_a_loop_is_fine(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path,
        {
            "python_env.yaml": "dependencies: [-r a.txt, -r b.txt]\n",
            "a.txt": "-r common.txt\nalpha\n",
            "b.txt": "-r common.txt\nbeta\n",
            "common.txt": "zeta\n",
        },
    )
    assert spec.dependencies == ("zeta", "alpha", "zeta", "beta")


def test_a_missing_requirements_file_is_named(tmp_path: Path) -> None:
    message = spec_error(tmp_path, {"python_env.yaml": "dependencies: [-r reqs/missing.txt]\n"})
    assert str(tmp_path / "reqs" / "missing.txt") in message
    assert "-r reqs/missing.txt" in message
    assert "python_env.yaml" in message


def test_a_missing_nested_file_is_resolved_against_its_includer(tmp_path: Path) -> None:
    message = spec_error(
        tmp_path, {"python_env.yaml": "dependencies: [-r sub/a.txt]\n", "sub/a.txt": "-r gone.txt\n"}
    )
    assert str(tmp_path / "sub" / "gone.txt") in message


# --- conda.yaml --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("python=3.11", "3.11"),
        ("python==3.11.*", "3.11"),
        ("python=3.11.*", "3.11"),
        ("python=3.11.7", "3.11.7"),
        ("python = 3.12", "3.12"),
        ("python", None),
    ],
)
def test_conda_python_version(tmp_path: Path, entry: str, expected: str | None) -> None:
    text = f"name: x\nchannels: [conda-forge]\ndependencies:\n  - {entry}\n  - numpy=1.26\n  - pip\n"
    spec = spec_of(tmp_path, {"conda.yaml": text})
    assert spec.kind == "conda"
    assert spec.python == expected
    assert spec.conda_text == text
    assert spec.dependencies == ()  # conda packages are conda's business, not pip's


@pytest.mark.parametrize("entry", ["python=three", "python=3.11;", "python=>3", "python=3.x"])
def test_conda_bad_python_forms(tmp_path: Path, entry: str) -> None:
    message = spec_error(tmp_path, {"conda.yaml": f"dependencies:\n  - {entry}\n"})
    assert "conda.yaml: dependencies[0]" in message
    assert entry in message


def test_conda_exported_python_with_a_build_string(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"conda.yaml": "dependencies:\n  - python=3.11.7=h955ad1f_0\n"})
    assert spec.python == "3.11.7"


def test_conda_pip_section_with_requirements_file(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path,
        {
            "MLproject": "name: t\nconda_env: env/conda.yaml\nentry_points:\n  main:\n    command: echo\n",
            "env/conda.yaml": "dependencies:\n  - python=3.11\n  - pip\n"
            "  - pip:\n    - alpha==1\n    - -r requirements.txt\n  - pip: [omega]\n",
            "env/requirements.txt": "beta\n-c pins.txt\n",
            "env/pins.txt": "beta<2\n",
        },
        mlproject=None,
    )
    assert spec.dependencies == ("alpha==1", "beta", "omega")
    assert spec.constraints == ("beta<2",)
    assert spec.python == "3.11"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("dependencies: numpy\n", "dependencies"),
        ("dependencies:\n  - {conda: [numpy]}\n", "dependencies[0]"),
        ("dependencies:\n  - pip: numpy\n", "dependencies[0].pip"),
        ("dependencies:\n  - 3\n", "dependencies[0]"),
        ("- numpy\n", None),
    ],
)
def test_conda_malformed(tmp_path: Path, text: str, key: str | None) -> None:
    message = spec_error(tmp_path, {"conda.yaml": text})
    assert str(tmp_path / "conda.yaml") in message
    if key:
        assert f": {key}:" in message


# --- which file ------------------------------------------------------------------------------------------


def test_python_env_yaml_is_found_before_conda_yaml(tmp_path: Path) -> None:
    project = project_dir(
        tmp_path, {"python_env.yaml": "dependencies: []\n", "conda.yaml": "dependencies: []\n"}
    )
    assert find_env_file(load_project(project)) == ("python", tmp_path / "python_env.yaml")
    (tmp_path / "python_env.yaml").unlink()
    assert find_env_file(load_project(project)) == ("conda", tmp_path / "conda.yaml")
    (tmp_path / "conda.yaml").unlink()
    assert find_env_file(load_project(project)) is None
    spec = load_env_spec(load_project(project))
    assert spec.kind == "none"


def test_default_names_are_found_in_a_folder_without_mlproject(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"conda.yaml": "dependencies: [python=3.12]\n"}, mlproject=None)
    assert (spec.kind, spec.python) == ("conda", "3.12")


def test_a_named_file_wins_over_the_default_names(tmp_path: Path) -> None:
    mlproject = "name: t\nconda_env: my-env.yaml\nentry_points:\n  main:\n    command: echo\n"
    spec = spec_of(
        tmp_path,
        {"python_env.yaml": "dependencies: []\n", "my-env.yaml": "dependencies: [python=3.10]\n"},
        mlproject,
    )
    assert (spec.kind, spec.python) == ("conda", "3.10")


@pytest.mark.parametrize("key", ["python_env", "conda_env"])
def test_a_named_file_that_does_not_exist(tmp_path: Path, key: str) -> None:
    mlproject = f"name: t\n{key}: envs/missing.yaml\nentry_points:\n  main:\n    command: echo\n"
    # a file under the default name must not be used instead
    message = spec_error(tmp_path, {"python_env.yaml": "dependencies: []\n"}, mlproject)
    assert f"MLproject: {key}: no such file" in message
    assert str(tmp_path / "envs" / "missing.yaml") in message


# --- fingerprint ------------------------------------------------------------------------------------------


ENV_FILES = {
    "python_env.yaml": "python: '3.11'\nbuild_dependencies: [pip]\ndependencies:\n  - -r requirements.txt\n",
    "requirements.txt": "alpha==1.0\n",
}


def fingerprint(folder: Path, files: dict[str, str] | None = None, manager: str = "virtualenv") -> str:
    return spec_of(folder, files if files is not None else ENV_FILES).fingerprint(manager)


def test_fingerprint_does_not_depend_on_where_the_project_is(tmp_path: Path) -> None:
    first = fingerprint(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    assert load_env_spec(load_project(tmp_path / "elsewhere" / "b")).fingerprint("virtualenv") == first
    assert len(first) >= 16
    assert all(c in "0123456789abcdef" for c in first)


def test_fingerprint_ignores_comments_and_blank_lines_of_requirement_files(tmp_path: Path) -> None:
    first = fingerprint(tmp_path / "a")
    files = {**ENV_FILES, "requirements.txt": "# pinned\n\nalpha==1.0   # why\n"}
    assert fingerprint(tmp_path / "b", files) == first


@pytest.mark.parametrize(
    "change",
    [
        {"requirements.txt": "alpha==2.0\n"},  # the content of a -r file
        {"requirements.txt": "alpha==1.0\nbeta\n"},
        {"python_env.yaml": ENV_FILES["python_env.yaml"].replace("3.11", "3.12")},
        {"python_env.yaml": ENV_FILES["python_env.yaml"].replace("[pip]", "[pip, wheel]")},
        {"python_env.yaml": ENV_FILES["python_env.yaml"] + "  - -c pins.txt\n", "pins.txt": "alpha<3\n"},
        {"uv.lock": "version = 1\n"},  # a lock file beside the project
    ],
)
def test_fingerprint_changes_with_what_is_installed(tmp_path: Path, change: dict[str, str]) -> None:
    assert fingerprint(tmp_path / "a") != fingerprint(tmp_path / "b", {**ENV_FILES, **change})


def test_fingerprint_changes_with_the_lock_file_content(tmp_path: Path) -> None:
    one = fingerprint(tmp_path / "a", {**ENV_FILES, "uv.lock": "version = 1\n"}, "uv")
    two = fingerprint(tmp_path / "b", {**ENV_FILES, "uv.lock": "version = 1\n# changed\n"}, "uv")
    assert one != two


def test_fingerprint_changes_with_the_manager(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, ENV_FILES)
    prints = {spec.fingerprint(manager) for manager in ("virtualenv", "uv", "conda")}
    assert len(prints) == 3


def test_fingerprint_of_no_python_is_that_of_the_running_version(tmp_path: Path) -> None:
    implicit = fingerprint(tmp_path / "a", {"python_env.yaml": "dependencies: [alpha]\n"})
    explicit = fingerprint(
        tmp_path / "b", {"python_env.yaml": f"python: '{RUNNING}'\ndependencies: [alpha]\n"}
    )
    assert implicit == explicit


def test_conda_fingerprint_covers_the_conda_file(tmp_path: Path) -> None:
    base = "dependencies:\n  - python=3.11\n  - numpy=1.26\n"
    one = fingerprint(tmp_path / "a", {"conda.yaml": base}, "conda")
    two = fingerprint(tmp_path / "b", {"conda.yaml": base.replace("1.26", "1.25")}, "conda")
    three = fingerprint(tmp_path / "c", {"conda.yaml": base}, "conda")
    assert one != two
    assert one == three


def test_spec_survives_the_round_trip_through_the_run_request(tmp_path: Path) -> None:
    files = {
        **ENV_FILES,
        "python_env.yaml": ENV_FILES["python_env.yaml"] + "  - -c p.txt\n",
        "p.txt": "a<2\n",
    }
    spec = spec_of(tmp_path, files)
    assert spec.constraints == ("a<2",)
    again = EnvSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.fingerprint("uv") == spec.fingerprint("uv")


# --- the manager --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "variable", "kind", "expected"),
    [
        (None, None, "python", "virtualenv"),
        (None, None, "conda", "conda"),
        (None, None, "none", "local"),
        (None, "uv", "python", "uv"),
        (None, "uv", "none", "uv"),
        ("local", "uv", "python", "local"),
        ("uv", "bogus", "conda", "uv"),  # the flag wins; the variable is not even looked at
    ],
)
def test_manager_choice(
    monkeypatch: pytest.MonkeyPatch, given: str | None, variable: str | None, kind: str, expected: str
) -> None:
    if variable is None:
        monkeypatch.delenv("MLPROJ_ENV_MANAGER", raising=False)
    else:
        monkeypatch.setenv("MLPROJ_ENV_MANAGER", variable)
    assert choose_manager(given, kind) == expected


def test_bad_manager_names_are_input_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJ_ENV_MANAGER", "docker-ish")
    with pytest.raises(InputError, match="MLPROJ_ENV_MANAGER=docker-ish"):
        choose_manager(None, "python")
    with pytest.raises(InputError, match="local, virtualenv, uv, conda"):
        get_manager("pipenv")
