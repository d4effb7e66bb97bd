"""The Python API, shaped like mlflow.projects.run (design.md §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlproj
from mlproj.errors import InputError
from mlproj.home import Home
from mlproj.runs.store import Store
from tests.helpers import command_project, wait_until


def test_synchronous_run(tmp_path: Path, home: Home, capfd: pytest.CaptureFixture[str]) -> None:
    project = command_project(tmp_path / "p", "echo {x}", parameters="    parameters:\n      x: int\n")
    submitted = mlproj.run(str(project), parameters={"x": 3}, experiment_name="api", run_name="one")
    assert submitted.get_status() == "Finished"
    assert submitted.wait() is True
    assert capfd.readouterr().out == "3\n"
    record = submitted.get_record()
    assert (
        record["experiment"] == "api" and record["run_name"] == "one" and record["parameters"] == {"x": "3"}
    )


def test_synchronous_failure_raises(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "exit 2")
    with pytest.raises(mlproj.ExecutionError, match="Failed: the command exited with code 2") as info:
        mlproj.run(str(project))
    assert info.value.status == "Failed"
    assert info.value.run_id is not None


def test_asynchronous_run_wait_and_cancel(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "sleep 300")
    submitted = mlproj.run(str(project), synchronous=False)
    wait_until(lambda: submitted.get_status() == "Running")
    with pytest.raises(TimeoutError):
        submitted.wait(timeout=0.2)
    submitted.cancel(grace=1)
    assert submitted.get_status() == "Canceled"
    assert submitted.wait() is False


def test_given_run_id_and_experiment_id(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "true")
    run_id = "ab" * 16
    submitted = mlproj.run(str(project), run_id=run_id, experiment_id=0)
    assert submitted.run_id == run_id
    assert submitted.get_record()["experiment"] == "Default"
    with pytest.raises(InputError, match="already in use"):
        mlproj.run(str(project), run_id=run_id)
    assert submitted.get_record()["status"] == "Finished"  # the first run is left as it was
    with pytest.raises(InputError, match="32 lowercase hex"):
        mlproj.run(str(project), run_id="nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "moon"}, r"unknown backend 'moon' \(available: local, slurm, ray, kubernetes"),
        ({"backend_config": {"partition": "x"}}, "backend local: unknown backend_config key 'partition'"),
        ({"max_parallel": 2}, "max_parallel: applies to pipelines"),
    ],
)
def test_bad_arguments_say_so(tmp_path: Path, home: Home, kwargs: dict[str, object], message: str) -> None:
    project = command_project(tmp_path / "p", "true")
    with pytest.raises(InputError, match=message):
        mlproj.run(str(project), **kwargs)  # type: ignore[arg-type]
    assert Store.open(home).list_runs() == []
