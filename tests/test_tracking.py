"""MLflow tracking against a real `mlflow server` (design.md §8): every project run gets an MLflow run
with `mlflow run`'s tags and the parameters, what the workload logs lands on it, it ends FINISHED,
FAILED or KILLED with the log as an artifact, and a server away at the end loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlproj.home import Home
from tests.clusters import need
from tests.conftest import git, make_git_repo
from tests.helpers import (
    assert_input_error,
    assert_nothing_unfinished,
    command_project,
    invoke,
    mlproj,
    mlproj_json,
    wait_until,
    write_project,
)
from tests.mlflow_server import MLFLOW_MISSING, MlflowServer, free_port, mlflow_python

PARAMS = "    parameters:\n      alpha: {type: float, default: 0.5}\n"


@pytest.fixture
def tracked(mlflow_server: MlflowServer, home: Home, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """The server as MLFLOW_TRACKING_URI, as a user of `mlflow run` has it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    return mlflow_server


def test_a_project_run_gets_an_mlflow_run_with_tags_params_metrics_and_its_log(
    tracked: MlflowServer, tmp_path: Path
) -> None:
    python = mlflow_python()
    assert python is not None
    code = "import mlflow, sys; print('training', sys.argv[1]); mlflow.log_metric('rmse', 0.25)"
    project = command_project(tmp_path / "p", f"{python} -c {json.dumps(code)} {{alpha}}", PARAMS)
    record = mlproj_json(
        "run", str(project), "-P", "alpha=0.3", "--experiment-name", "tracked-exp",
        "--run-name", "first", "--tag", "team=ml",
    )  # fmt: skip
    assert record["status"] == "Finished"
    assert record["tracking_uri"] == tracked.uri
    assert record["experiment"] == "tracked-exp"
    assert record["mlflow_experiment_id"] == tracked.experiment_id("tracked-exp")
    assert record["tracking_pending"] is False
    run = tracked.run(record["mlflow_run_id"])
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["run_name"] == "first"
    assert run["info"]["end_time"] >= run["info"]["start_time"] > 0
    assert run["params"] == {"alpha": "0.3"}
    assert run["metrics"] == {"rmse": 0.25}  # logged by the workload, on the project's run
    tags = run["tags"]
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.source.name"] == str(project)
    assert tags["mlflow.project.entryPoint"] == "main"
    assert tags["mlflow.project.backend"] == "local"
    assert tags["mlflow.runName"] == "first"
    assert tags["mlflow.user"]
    assert tags["mlproj.run_id"] == record["run_id"]
    assert tags["team"] == "ml"
    assert "mlflow.project.env" not in tags  # a local environment, as `mlflow run` leaves it
    assert tracked.artifacts(record["mlflow_run_id"], "mlproj") == ["mlproj/output.log"]
    log = tracked.artifact_text(record["mlflow_experiment_id"], record["mlflow_run_id"], "mlproj/output.log")
    assert "training 0.3" in log
    # One experiment for the name, reused by the next run.
    again = mlproj_json("run", str(project), "--experiment-name", "tracked-exp")
    assert again["mlflow_experiment_id"] == record["mlflow_experiment_id"]
    assert tracked.run(again["mlflow_run_id"])["params"] == {"alpha": "0.5"}


def test_the_workload_gets_the_run_id_uri_and_experiment(tracked: MlflowServer, tmp_path: Path) -> None:
    command = 'echo "id=$MLFLOW_RUN_ID uri=$MLFLOW_TRACKING_URI exp=$MLFLOW_EXPERIMENT_ID"'
    project = command_project(tmp_path / "p", command)
    record = mlproj_json("run", str(project))
    text = Path(record["log_path"]).read_text()
    assert f"id={record['mlflow_run_id']} uri={tracked.uri} exp=0" in text  # MLflow's Default
    assert record["experiment"] == "Default"


def test_a_failing_run_ends_failed_and_keeps_its_exit_code(tracked: MlflowServer, tmp_path: Path) -> None:
    project = command_project(tmp_path / "p", "echo broken; exit 3")
    done = mlproj("run", str(project), "--json")
    assert done.returncode == 3
    record = json.loads(done.stdout)
    run = tracked.run(record["mlflow_run_id"])
    assert run["info"]["status"] == "FAILED"
    assert "broken" in tracked.artifact_text(
        record["mlflow_experiment_id"], record["mlflow_run_id"], "mlproj/output.log"
    )


def test_a_canceled_run_ends_killed(tracked: MlflowServer, tmp_path: Path) -> None:
    project = command_project(tmp_path / "p", "sleep 60")
    record = mlproj_json("run", str(project), "-d")
    wait_until(lambda: mlproj_json("status", record["run_id"])["status"] == "Running")
    done = mlproj("cancel", record["run_id"], "--grace", "1")
    assert done.returncode == 0, done.stderr
    ended = wait_until(
        lambda: (r := mlproj_json("status", record["run_id"]))["tracking_pending"] is False and r
    )
    assert ended["status"] == "Canceled"
    assert tracked.run(record["mlflow_run_id"])["info"]["status"] == "KILLED"


def test_experiment_by_id_and_the_mlflow_variables(tracked: MlflowServer, tmp_path: Path) -> None:
    project = command_project(tmp_path / "p", "true")
    made = tracked.call("POST", "experiments/create", {"name": "by-id"})["experiment_id"]
    record = mlproj_json("run", str(project), "--experiment-id", made)
    assert (record["mlflow_experiment_id"], record["experiment"]) == (made, "by-id")
    env = {"MLFLOW_EXPERIMENT_NAME": "from-variable"}
    record = mlproj_json("run", str(project), env=env)
    assert record["experiment"] == "from-variable"
    assert record["mlflow_experiment_id"] == tracked.experiment_id("from-variable")
    record = mlproj_json("run", str(project), env={"MLFLOW_EXPERIMENT_ID": made})
    assert record["mlflow_experiment_id"] == made


def test_name_and_id_together_or_an_unknown_id_are_input_errors(
    tracked: MlflowServer, tmp_path: Path, home: Home
) -> None:
    project = command_project(tmp_path / "p", "true")
    done = invoke("run", str(project), "--experiment-name", "a", "--experiment-id", "1")
    assert_input_error(done, "--experiment-name and --experiment-id")
    done = invoke("run", str(project), "--experiment-id", "987654")
    assert_input_error(done, "987654", "nothing was started")
    assert_nothing_unfinished(home)
    assert mlproj_json("runs") == []


def test_no_tracking_turns_it_off(tracked: MlflowServer, tmp_path: Path) -> None:
    project = command_project(tmp_path / "p", 'echo "id=${{MLFLOW_RUN_ID-none}}"')
    record = mlproj_json("run", str(project), "--no-tracking")
    assert record["mlflow_run_id"] is None and record["tracking_uri"] is None
    assert "id=none" in Path(record["log_path"]).read_text()


def test_an_experiment_id_without_tracking_is_an_input_error(home: Home, tmp_path: Path) -> None:
    project = command_project(tmp_path / "p", "true")
    done = invoke("run", str(project), "--experiment-id", "3")
    assert_input_error(done, "--experiment-id 3", "MLFLOW_TRACKING_URI")


def test_a_server_that_cannot_be_reached_at_submit_starts_nothing(home: Home, tmp_path: Path) -> None:
    project = command_project(tmp_path / "p", "touch started")
    uri = f"http://127.0.0.1:{free_port()}"
    done = mlproj("run", str(project), "--tracking-uri", uri)
    assert_input_error(done, uri, "connection refused", "nothing was started")
    assert not (project / "started").exists()
    assert mlproj_json("runs") == []
    assert not list(home.root.glob("runs/*"))


def test_a_git_project_is_tagged_with_its_commit_repository_and_branch(
    tracked: MlflowServer, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    make_git_repo(repo, {"MLproject": "name: g\nentry_points:\n  main:\n    command: echo hi\n"})
    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "commit", "-q", "--allow-empty", "-m", "feature")
    commit = git(repo, "rev-parse", "HEAD")
    uri = f"file://{repo}"
    record = mlproj_json("run", uri, "-v", "feature")
    tags = tracked.run(record["mlflow_run_id"])["tags"]
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["mlflow.source.git.repoURL"] == uri
    assert tags["mlflow.source.git.branch"] == "feature"
    assert tags["mlflow.source.name"] == uri
    # A local checkout: named file://<checkout>, its first remote as the repository.
    git(repo, "remote", "add", "origin", "https://user:secret@example.invalid/team/g.git")
    record = mlproj_json("run", str(repo))
    tags = tracked.run(record["mlflow_run_id"])["tags"]
    assert tags["mlflow.source.name"] == f"file://{repo}"
    assert tags["mlflow.source.git.repoURL"] == "https://example.invalid/team/g.git"
    assert tags["mlflow.source.git.commit"] == commit
    assert "mlflow.source.git.branch" not in tags


def test_a_server_lost_during_the_run_loses_nothing(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops while the run runs: the run still finishes, its end waits in the store, and
    the next command that reads the run sends it once the server is back."""
    server = MlflowServer(tmp_path / "own-server").start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        gate = tmp_path / "gate"
        project = command_project(
            tmp_path / "p", f"echo before; while [ ! -e {gate} ]; do sleep 0.1; done; echo after"
        )
        record = mlproj_json("run", str(project), "-d")
        wait_until(lambda: mlproj_json("status", record["run_id"])["status"] == "Running")
        server.stop()
        gate.touch()
        waited = mlproj("wait", record["run_id"], "--timeout", "60")
        assert waited.returncode == 0, waited.stderr
        ended = mlproj_json("status", record["run_id"])
        assert ended["status"] == "Finished"  # the tracking server's absence fails nothing
        assert ended["tracking_pending"] is True
        server.start()  # the same port, the same store
        sent = mlproj_json("status", record["run_id"])
        assert sent["tracking_pending"] is False
        run = server.run(record["mlflow_run_id"])
        assert run["info"]["status"] == "FINISHED"
        text = server.artifact_text(
            record["mlflow_experiment_id"], record["mlflow_run_id"], "mlproj/output.log"
        )
        assert "before" in text and "after" in text
        assert run["info"]["end_time"] <= int(time.time() * 1000)
    finally:
        server.stop()


def test_a_run_whose_supervisor_was_killed_ends_failed_in_mlflow(
    tracked: MlflowServer, tmp_path: Path
) -> None:
    project = command_project(tmp_path / "p", "sleep 60")
    record = mlproj_json("run", str(project), "-d")
    wait_until(lambda: mlproj_json("status", record["run_id"])["status"] == "Running")
    os.kill(_supervisor(record["run_id"]), 9)
    ended = wait_until(lambda: (r := mlproj_json("status", record["run_id"]))["status"] == "Failed" and r)
    assert ended["tracking_pending"] is False
    assert tracked.run(record["mlflow_run_id"])["info"]["status"] == "FAILED"


def _supervisor(run_id: str) -> int:
    from mlproj.runs.store import Store

    store = Store.open(Home.from_env())
    try:
        pid = store.get(run_id).supervisor_pid
    finally:
        store.close()
    assert pid is not None
    return pid


def test_status_shows_the_mlflow_run_and_its_metrics(tracked: MlflowServer, tmp_path: Path) -> None:
    python = mlflow_python()
    assert python is not None
    code = "import mlflow; mlflow.log_metric('rmse', 0.5); mlflow.log_metric('rmse', 0.125)"
    project = command_project(tmp_path / "p", f"{python} -c {json.dumps(code)}")
    record = mlproj_json("run", str(project))
    shown = mlproj("status", record["run_id"])
    assert shown.returncode == 0, shown.stderr
    link = f"{tracked.uri}/#/experiments/0/runs/{record['mlflow_run_id']}"
    assert link in shown.stdout
    assert "rmse" in shown.stdout and "0.125" in shown.stdout  # the latest value


def test_parameters_of_other_kinds_are_logged_as_given(tracked: MlflowServer, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n")
    mlproject = (
        "name: t\nentry_points:\n  main:\n    parameters:\n      data: path\n"
        "      n: {type: int, default: 3}\n    command: 'echo {data} {n}'\n"
    )
    project = write_project(tmp_path / "p", mlproject)
    record = mlproj_json("run", str(project), "-P", f"data={data}", "-P", "extra=7")
    assert tracked.run(record["mlflow_run_id"])["params"] == {"data": str(data), "n": "3", "extra": "7"}


def test_the_server_answering_something_else_is_an_input_error(home: Home, tmp_path: Path) -> None:
    """A URL that is not an MLflow server (here: a plain HTTP server) is refused before anything runs."""
    port = free_port()
    site = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/"))
        project = command_project(tmp_path / "p", "touch started")
        done = invoke(
            "run", str(project), "--tracking-uri", f"http://127.0.0.1:{port}", "--experiment-name", "x"
        )
        assert_input_error(done, f"http://127.0.0.1:{port}", "nothing was started")
        assert not (project / "started").exists()
    finally:
        site.terminate()
        site.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


PIPELINE = """\
type: pipeline
name: tracked
inputs:
  n: {type: integer, default: 2}
jobs:
  make:
    type: command
    command: echo made ${{inputs.n}} > ${{outputs.out}}/x; echo "run=$MLFLOW_RUN_ID"
    inputs:
      n: ${{parent.inputs.n}}
    outputs:
      out: {type: uri_folder}
  use:
    type: command
    command: cat ${{inputs.data}}/x
    inputs:
      data: ${{parent.jobs.make.outputs.out}}
"""


def test_a_pipeline_gets_a_parent_run_and_a_nested_run_per_step(
    tracked: MlflowServer, tmp_path: Path
) -> None:
    file = tmp_path / "pipeline.yml"
    file.write_text(PIPELINE)
    first = mlproj_json("run", str(file), "--experiment-name", "pipes")
    assert first["status"] == "Finished"
    parent = tracked.run(first["mlflow_run_id"])
    assert parent["info"]["status"] == "FINISHED"
    assert parent["params"] == {"n": "2"}
    assert parent["tags"]["mlproj.run_id"] == first["run_id"]
    assert first["mlflow_experiment_id"] == tracked.experiment_id("pipes")
    steps = {s["step"]: s for s in first["steps"]}
    for name, step in steps.items():
        nested = tracked.run(step["mlflow_run_id"])
        assert nested["info"]["status"] == "FINISHED", name
        assert nested["info"]["experiment_id"] == first["mlflow_experiment_id"]
        assert nested["tags"]["mlflow.parentRunId"] == first["mlflow_run_id"]
        assert nested["tags"]["mlproj.run_id"] == step["run_id"]
        assert nested["tags"]["mlflow.runName"] == name
        assert "mlproj.reused_from" not in nested["tags"]
    assert f"run={steps['make']['mlflow_run_id']}" in Path(steps["make"]["log_path"]).read_text()
    assert tracked.run(steps["make"]["mlflow_run_id"])["params"] == {"n": "2"}
    # Run again: both steps are reused; their nested runs say which MLflow runs they reused.
    again = mlproj_json("run", str(file), "--experiment-name", "pipes")
    for step in again["steps"]:
        assert step["reused_from"] == steps[step["step"]]["run_id"]
        nested = tracked.run(step["mlflow_run_id"])
        assert nested["info"]["status"] == "FINISHED"
        assert nested["tags"]["mlproj.reused_from"] == steps[step["step"]]["mlflow_run_id"]
        assert nested["tags"]["mlflow.parentRunId"] == again["mlflow_run_id"]


def test_a_failed_step_fails_its_nested_run_and_the_parent(tracked: MlflowServer, tmp_path: Path) -> None:
    file = tmp_path / "pipeline.yml"
    file.write_text(PIPELINE.replace("cat ${{inputs.data}}/x", "exit 4 # ${{inputs.data}}"))
    done = mlproj("run", str(file), "--json")
    assert done.returncode == 1
    record = json.loads(done.stdout)
    assert tracked.run(record["mlflow_run_id"])["info"]["status"] == "FAILED"
    use = next(s for s in record["steps"] if s["step"] == "use")
    assert tracked.run(use["mlflow_run_id"])["info"]["status"] == "FAILED"


def test_the_python_api_tracks_and_names_the_mlflow_run(tracked: MlflowServer, tmp_path: Path) -> None:
    import mlproj

    project = command_project(tmp_path / "p", "echo api")
    made = tracked.call("POST", "experiments/create", {"name": "api-exp"})["experiment_id"]
    submitted = mlproj.run(str(project), experiment_id=made)
    assert submitted.mlflow_run_id is not None
    assert tracked.run(submitted.mlflow_run_id)["info"]["experiment_id"] == made
    assert submitted.get_record()["experiment"] == "api-exp"
    untracked = mlproj.run(str(project), tracking=False)
    assert untracked.mlflow_run_id is None


def _logging_project(folder: Path) -> Path:
    python = mlflow_python()
    assert python is not None
    code = (
        "import mlflow, sys; mlflow.log_metric('rmse', float(sys.argv[1]) / 2); mlflow.log_metric('one', 1)"
    )
    return command_project(folder, f"{python} -c {json.dumps(code)} {{alpha}}", PARAMS)


def test_compare_shows_what_differs_and_runs_columns(tracked: MlflowServer, tmp_path: Path) -> None:
    project = _logging_project(tmp_path / "p")
    first = mlproj_json("run", str(project), "-P", "alpha=0.5", "--run-name", "low")
    second = mlproj_json("run", str(project), "-P", "alpha=0.75", "--run-name", "high")
    compared = mlproj_json("compare", first["run_id"], second["run_id"][:8])
    assert compared == {
        "runs": [first["run_id"], second["run_id"]],
        "params": {"alpha": ["0.5", "0.75"]},
        "metrics": {"rmse": [0.25, 0.375]},  # `one` is the same: left out
    }
    everything = mlproj_json("compare", first["run_id"], second["run_id"], "--all")
    assert everything["metrics"] == {"one": [1.0, 1.0], "rmse": [0.25, 0.375]}
    shown = mlproj("compare", first["run_id"], second["run_id"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["low", "high"]
    assert lines[1].split() == ["params.alpha", "0.5", "0.75"]
    assert lines[2].split() == ["metrics.rmse", "0.25", "0.375"]
    # runs --columns: parameters from the record, metrics from MLflow, tags.
    listed = mlproj("runs", "--columns", "params.alpha,metrics.rmse,tags.nothing")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert "PARAMS.ALPHA" not in header and "params.alpha" in header and "metrics.rmse" in header
    assert rows[0].split()[0] == second["run_id"][:12]
    assert "0.75" in rows[0] and "0.375" in rows[0] and "0.25" in rows[1]
    documents = mlproj_json("runs", "--columns", "metrics.rmse,params.alpha")
    assert documents[0]["columns"] == {"metrics.rmse": 0.375, "params.alpha": "0.75"}


def test_compare_and_columns_refuse_bad_input(home: Home) -> None:
    assert_input_error(invoke("compare", "abcd"), "two or more runs")
    assert_input_error(invoke("compare", "abcd", "ef01"), "abcd")
    assert_input_error(invoke("runs", "--columns", "alpha"), "--columns", "'alpha'", "params.NAME")
    assert_input_error(invoke("runs", "--columns", "metrics."), "--columns")


def test_metrics_of_an_unreachable_server_are_said_missing(tmp_path: Path, home: Home) -> None:
    server = MlflowServer(tmp_path / "own-server").start()
    try:
        project = command_project(tmp_path / "p", "true", PARAMS)
        env = {"MLFLOW_TRACKING_URI": server.uri}
        first = mlproj_json("run", str(project), "-P", "alpha=1", env=env)
        second = mlproj_json("run", str(project), "-P", "alpha=2", env=env)
    finally:
        server.stop()
    done = mlproj("compare", first["run_id"], second["run_id"])
    assert done.returncode == 0, done.stderr
    assert "params.alpha" in done.stdout
    assert "metrics not shown" in done.stderr and "connection refused" in done.stderr


def test_a_runs_uri_path_is_downloaded_through_the_server(tracked: MlflowServer, tmp_path: Path) -> None:
    python = mlflow_python()
    assert python is not None
    code = "import mlflow; mlflow.log_text('rows', 'data/x.txt'); mlflow.log_text('more', 'data/deep/y.txt')"
    producer = mlproj_json("run", str(command_project(tmp_path / "a", f"{python} -c {json.dumps(code)}")))
    reader = write_project(
        tmp_path / "b",
        "name: b\nentry_points:\n  main:\n    parameters:\n      d: path\n"
        "    command: 'ls -R {d}; cat {d}'\n",
    )
    mlflow_run = producer["mlflow_run_id"]
    one = mlproj_json("run", str(reader), "-P", f"d=runs:/{mlflow_run}/data/x.txt")
    assert "rows" in Path(one["log_path"]).read_text()
    assert one["parameters"] == {"d": f"runs:/{mlflow_run}/data/x.txt"}
    folder = mlproj("run", str(reader), "-P", f"d=runs:/{mlflow_run}/data", "--json")
    text = Path(json.loads(folder.stdout)["log_path"]).read_text()
    assert "x.txt" in text and "deep" in text and "y.txt" in text
    missing = invoke("run", str(reader), "-P", f"d=runs:/{mlflow_run}/nothing/here")
    assert_input_error(missing, "has no artifact nothing/here")


# --- a store other than a server: through the mlflow package --------------------------------------


def _with_mlflow(tmp_path: Path) -> list[str]:
    """`mlproj` in this interpreter, with the MLflow installation's packages added after its own (as
    `pip install 'mlproj[mlflow]'` would give it)."""
    python = mlflow_python()
    need("mlflow", None if python else MLFLOW_MISSING)
    assert python is not None
    site_dir = subprocess.run(
        [python, "-c", "import mlflow, os; print(os.path.dirname(os.path.dirname(mlflow.__file__)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    launcher = (
        "import site, sys; site.addsitedir(sys.argv.pop(1)); sys.argv[0] = 'mlproj'; import mlproj.cli; "
        "mlproj.cli.main()"
    )
    return [sys.executable, "-c", launcher, site_dir]


def _read_store(uri: str, run_id: str) -> dict[str, object]:
    python = mlflow_python()
    assert python is not None
    code = (
        "import json, sys, mlflow; c = mlflow.tracking.MlflowClient(sys.argv[1]); r = c.get_run(sys.argv[2]);"
        "print(json.dumps({'status': r.info.status, 'params': r.data.params, 'metrics': r.data.metrics,"
        "'tags': r.data.tags, 'artifacts': [a.path for a in c.list_artifacts(sys.argv[2], 'mlproj')]}))"
    )
    done = subprocess.run([python, "-c", code, uri, run_id], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_sqlite_store_through_the_mlflow_package(home: Home, tmp_path: Path) -> None:
    launcher = _with_mlflow(tmp_path)
    python = mlflow_python()
    code = "import mlflow, sys; mlflow.log_metric('rmse', float(sys.argv[1]))"
    project = command_project(tmp_path / "p", f"{python} -c {json.dumps(code)} {{alpha}}", PARAMS)
    argv = [*launcher, "run", str(project), "-P", "alpha=0.75", "--json"]
    argv += ["--tracking-uri", "sqlite:///store/mlflow.db", "--experiment-name", "local-store"]
    (tmp_path / "store").mkdir()
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # made absolute for the workload
    assert record["tracking_uri"] == uri
    stored = _read_store(uri, record["mlflow_run_id"])
    assert stored["status"] == "FINISHED"
    assert stored["params"] == {"alpha": "0.75"}
    assert stored["metrics"] == {"rmse": 0.75}
    assert stored["artifacts"] == ["mlproj/output.log"]
    tags = stored["tags"]
    assert isinstance(tags, dict) and tags["mlproj.run_id"] == record["run_id"]


def test_a_store_that_needs_the_missing_mlflow_package_is_refused(home: Home, tmp_path: Path) -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the mlflow package is installed here")
    project = command_project(tmp_path / "p", "touch started")
    done = invoke("run", str(project), "--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    assert_input_error(done, "needs the mlflow package", "pip install 'mlproj[mlflow]'")
    assert not (project / "started").exists()
    assert_nothing_unfinished(home)


def test_a_tracking_uri_in_the_projects_config_file(
    mlflow_server: MlflowServer, home: Home, tmp_path: Path
) -> None:
    project = command_project(tmp_path / "p", "echo $MLFLOW_TRACKING_URI")
    (project / "mlproj.toml").write_text(f'tracking_uri = "{mlflow_server.uri}"\n')
    record = mlproj_json("run", str(project))
    assert record["tracking_uri"] == mlflow_server.uri
    assert mlflow_server.run(record["mlflow_run_id"])["info"]["status"] == "FINISHED"
    assert mlproj_json("run", str(project), "--no-tracking")["mlflow_run_id"] is None


def test_a_flag_beats_a_variable_for_the_experiment(tracked: MlflowServer, tmp_path: Path) -> None:
    project = command_project(tmp_path / "p", "true")
    made = tracked.call("POST", "experiments/create", {"name": "flagged"})["experiment_id"]
    env = {"MLPROJ_EXPERIMENT_NAME": "from-variable", "MLFLOW_EXPERIMENT_NAME": "other-variable"}
    record = mlproj_json("run", str(project), "--experiment-id", made, env=env)
    assert (record["mlflow_experiment_id"], record["experiment"]) == (made, "flagged")


def test_credentials_are_neither_recorded_nor_shown(
    tracked: MlflowServer, tmp_path: Path, home: Home
) -> None:
    """The token reaches the workload from the environment; the run's record and request never hold it."""
    project = command_project(tmp_path / "p", 'echo "token=$MLFLOW_TRACKING_TOKEN"')
    secret_uri = tracked.uri.replace("http://", "http://someone:pw-secret@")
    env = {"MLFLOW_TRACKING_TOKEN": "tok-secret"}
    done = mlproj("run", str(project), "--tracking-uri", secret_uri, "--json", env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert "token=tok-secret" in Path(record["log_path"]).read_text()
    shown = mlproj("status", record["run_id"]).stdout + mlproj("status", record["run_id"], "--json").stdout
    for text in (done.stdout, done.stderr, shown):
        assert "pw-secret" not in text and "tok-secret" not in text.replace("token=tok-secret", "")
    from mlproj.runs.store import Store

    store = Store.open(home)
    try:
        request = store.get(record["run_id"]).request
    finally:
        store.close()
    from mlproj.runs.request import RunRequest

    assert isinstance(request, RunRequest) and "MLFLOW_TRACKING_TOKEN" not in request.env
