"""Settings (design.md §12), key by key: a flag > an environment variable > mlproj.toml (or [tool.mlproj]
in pyproject.toml) in the project's or the current folder > MLPROJ_HOME/config.toml > the default; what
`mlproj config show` says of each, and bad values named with their file. Checked through `mlproj
validate`, which plans a run as `mlproj run` would, and runs nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlproj.home import Home
from tests.helpers import assert_input_error, mlproj, mlproj_json
from tests.pipelines import write_pipeline


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "MLproject").write_text(
        "name: t\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: echo hi\n"
    )
    (folder / "python_env.yaml").write_text('python: "3.11"\ndependencies: []\n')
    return folder


@pytest.fixture
def places(tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Where settings files go: the project's mlproj.toml, the current folder's pyproject.toml, the
    user's config.toml. No variable of the shell running the tests leaks in."""
    for variable in (
        "MLPROJ_ENV_MANAGER",
        "MLPROJ_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_NAME",
        "MLPROJ_MAX_PARALLEL",
    ):
        monkeypatch.delenv(variable, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    home.root.mkdir(parents=True, exist_ok=True)
    return {
        "project": tmp_path / "proj" / "mlproj.toml",
        "cwd": cwd / "pyproject.toml",
        "user": home.root / "config.toml",
    }


def validate(project: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    document: dict[str, object] = mlproj_json("validate", str(project), *args, cwd=cwd, env=env or {})
    return document


@pytest.mark.parametrize(
    ("key", "field", "values", "flag", "variable"),
    [
        (
            "env_manager",
            "env_manager",
            ("virtualenv", "uv", "conda", "local"),
            "--env-manager",
            "MLPROJ_ENV_MANAGER",
        ),
        (
            "experiment_name",
            "experiment",
            ("user-exp", "cwd-exp", "project-exp", "flag-exp"),
            "--experiment-name",
            "MLPROJ_EXPERIMENT_NAME",
        ),
    ],
)
def test_each_level_beats_the_ones_below(
    project: Path,
    places: dict[str, Path],
    key: str,
    field: str,
    values: tuple[str, ...],
    flag: str,
    variable: str,
) -> None:
    cwd = places["cwd"].parent
    user, current, project_level, top = values
    defaults = validate(project, cwd)
    assert defaults[field] == ("virtualenv" if key == "env_manager" else "Default")  # MLflow's rule
    places["user"].write_text(f'{key} = "{user}"\n')
    assert validate(project, cwd)[field] == user
    places["cwd"].write_text(f'[tool.mlproj]\n{key} = "{current}"\n')
    assert validate(project, cwd)[field] == current
    places["project"].write_text(f'{key} = "{project_level}"\n')
    assert validate(project, cwd)[field] == project_level
    assert validate(project, cwd, env={variable: top})[field] == top
    assert validate(project, cwd, flag, values[0], env={variable: top})[field] == values[0]
    shown = mlproj_json("config", "show", str(project), cwd=cwd)
    assert shown[key] == {"value": project_level, "source": str(places["project"])}
    shown = mlproj_json("config", "show", str(project), cwd=cwd, env={variable: top})
    assert shown[key] == {"value": top, "source": f"environment {variable}"}


def test_the_backend_and_its_configuration_come_from_the_settings(
    project: Path, places: dict[str, Path]
) -> None:
    cwd = places["cwd"].parent
    places["user"].write_text('backend = "nonesuch"\n')
    assert_input_error(
        mlproj("validate", str(project), cwd=cwd), f"{places['user']}: backend: ", "nonesuch"
    )  # the user's file is read, and its bad value named with it
    places["project"].write_text('backend = "local"\n')
    assert validate(project, cwd)["backend"] == "local"  # the project's file comes first
    places["project"].write_text('backend = "local"\n[backend_config.local]\nsurprise = 1\n')
    done = mlproj("validate", str(project), cwd=cwd)
    assert done.returncode == 2 and "surprise" in done.stderr  # the table of the backend chosen is used
    assert validate(project, cwd, "-c", "{}")["backend_config"] == {}  # -c beats the table
    shown = mlproj_json("config", "show", str(project), cwd=cwd)
    assert shown["backend"]["source"] == str(places["project"])
    assert shown["backend_config.local"] == {"value": {"surprise": 1}, "source": str(places["project"])}
    # Each backend's table from the nearest file that has one: the project's does not hide the user's.
    places["user"].write_text('[backend_config.slurm]\npartition = "gpu"\n')
    shown = mlproj_json("config", "show", str(project), cwd=cwd)
    assert shown["backend_config.slurm"] == {"value": {"partition": "gpu"}, "source": str(places["user"])}
    assert shown["backend_config.local"]["source"] == str(places["project"])


def test_max_parallel_flag_variable_pipeline_settings_files_default(
    tmp_path: Path, places: dict[str, Path]
) -> None:
    cwd = places["cwd"].parent
    folder = tmp_path / "pipe"
    pipeline = write_pipeline(folder / "p.yml", "type: pipeline\njobs:\n  a:\n    command: echo a\n")

    def parallel(*args: str, env: dict[str, str] | None = None) -> object:
        return mlproj_json("validate", str(pipeline), *args, cwd=cwd, env=env or {})["max_parallel"]

    assert parallel() == (os.cpu_count() or 1)
    places["user"].write_text("max_parallel = 3\n")
    assert parallel() == 3
    (folder / "mlproj.toml").write_text("max_parallel = 5\n")
    assert parallel() == 5  # the settings file beside the pipeline
    write_pipeline(
        pipeline, "type: pipeline\nsettings:\n  max_parallel: 6\njobs:\n  a:\n    command: echo a\n"
    )
    assert parallel() == 6  # the pipeline's own settings come before settings files
    assert parallel(env={"MLPROJ_MAX_PARALLEL": "7"}) == 7
    assert parallel("--max-parallel", "8", env={"MLPROJ_MAX_PARALLEL": "7"}) == 8
    assert_input_error(
        mlproj("validate", str(pipeline), cwd=cwd, env={"MLPROJ_MAX_PARALLEL": "lots"}),
        "MLPROJ_MAX_PARALLEL='lots'",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_parallel = 0\n", "max_parallel: expected a whole number of at least 1, got 0"),
        ("strict_params = 'yes'\n", "strict_params: expected true or false, got 'yes'"),
        ("backend_config = {slurm = 3}\n", "backend_config: expected a table of tables"),
        ("env_manager = 3\n", "env_manager: expected a string, got 3"),
        ("env_manager = 'pip'\n", "env_manager: expected one of: local, virtualenv, uv, conda, docker"),
        ("colour = 'blue'\n", "colour: unknown setting"),
        ("max_parallel = [\n", "not valid TOML"),
    ],
)
def test_a_bad_setting_is_named_with_its_file(
    project: Path, places: dict[str, Path], text: str, expected: str
) -> None:
    places["project"].write_text(text)
    done = mlproj("validate", str(project), cwd=places["cwd"].parent)
    assert_input_error(done, str(places["project"]), expected)


def test_a_misspelt_parameter_is_named_and_strict_params_refuses_it(
    tmp_path: Path, places: dict[str, Path]
) -> None:
    cwd = places["cwd"].parent
    folder = tmp_path / "counted"
    folder.mkdir()
    (folder / "MLproject").write_text(
        "name: t\nentry_points:\n  main:\n    parameters:\n      count: {type: int, default: 1}\n"
        "    command: 'echo {count}'\n"
    )
    done = mlproj("run", str(folder), "-P", "cuont=5", cwd=cwd)
    assert done.returncode == 0 and done.stdout == "1 --cuont 5\n"  # passed on, as MLflow does
    assert "-P cuont: entry point 'main' declares no such parameter; did you mean 'count'?" in done.stderr
    quiet = mlproj("run", str(folder), "-P", "verbose=1", cwd=cwd)
    assert quiet.returncode == 0 and "did you mean" not in quiet.stderr  # nothing close: no warning
    refused = "parameter 'cuont': entry point 'main' declares no such parameter (did you mean 'count'?)"
    assert_input_error(mlproj("run", str(folder), "-P", "cuont=5", "--strict-params", cwd=cwd), refused)
    assert_input_error(
        mlproj("run", str(folder), "-P", "cuont=5", cwd=cwd, env={"MLPROJ_STRICT_PARAMS": "1"}), refused
    )
    places["user"].write_text("strict_params = true\n")
    assert_input_error(mlproj("run", str(folder), "-P", "cuont=5", cwd=cwd), refused)
    relaxed = mlproj("run", str(folder), "-P", "cuont=5", cwd=cwd, env={"MLPROJ_STRICT_PARAMS": "false"})
    assert relaxed.returncode == 0  # the variable comes before the user's file
    assert len(mlproj_json("runs", cwd=cwd)) == 3  # what was refused left no run behind
    pipeline = write_pipeline(
        tmp_path / "p.yml", "type: pipeline\ninputs:\n  epochs: 1\njobs:\n  a:\n    command: echo a\n"
    )
    assert_input_error(
        mlproj("run", str(pipeline), "-P", "epoch=3", cwd=cwd),
        "has no input 'epoch' (did you mean 'epochs'? ",
    )


def test_a_published_pipeline_runs_as_published_whatever_the_settings_say(
    tmp_path: Path, places: dict[str, Path]
) -> None:
    cwd = places["cwd"].parent
    pipeline = write_pipeline(
        tmp_path / "pub" / "p.yml", "type: pipeline\njobs:\n  a:\n    command: echo a\n"
    )
    published = mlproj("publish", str(pipeline), "--name", "steady", cwd=cwd).stdout.strip()
    places["user"].write_text('backend = "nonesuch"\nexperiment_name = "moved"\n')
    assert_input_error(mlproj("run", str(pipeline), cwd=cwd), "backend: ", "nonesuch")  # a run takes them
    done = mlproj_json("published", "submit", published, cwd=cwd)
    assert mlproj("wait", done["run_id"], cwd=cwd).returncode == 0
    record = mlproj_json("status", done["run_id"], cwd=cwd)
    assert record["status"] == "Finished" and record["experiment"] != "moved"
