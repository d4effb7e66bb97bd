"""The ray backend against a real Ray cluster (CI starts a local head with the Job API: .ci/ray.sh).

Skipped, with the reason, where no Ray cluster answers (unless MLPROJ_TEST_REQUIRE lists ray). The
cluster is this machine, so the jobs' processes can be looked for here.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlproj.home import Home
from mlproj.runs.store import Store
from tests.clusters import need, ray_address, ray_missing
from tests.helpers import alive, command_project, mlproj, mlproj_json, read_pids, wait_until, write_project
from tests.test_envs import make_wheel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def jobs() -> Iterator[Any]:
    need("ray", ray_missing())
    from ray.job_submission import JobSubmissionClient

    saved = os.environ.pop("RAY_ADDRESS", None)
    try:
        client = JobSubmissionClient(ray_address())
    finally:
        if saved is not None:
            os.environ["RAY_ADDRESS"] = saved
    yield client


@pytest.fixture(autouse=True)
def _ray(jobs: Any, home: Home) -> Iterator[None]:
    yield
    for record in Store.open(home).list_runs(top_level=False):
        if record.job_id and not record.is_final:
            try:
                jobs.stop_job(record.job_id)
            except Exception:  # noqa: S112, BLE001 - gone already, whatever Ray says
                continue


def start_detached(project: Path, *args: str) -> str:
    done = mlproj("run", str(project), "-b", "ray", "-d", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def status(run_id: str) -> dict[str, Any]:
    record: dict[str, Any] = mlproj_json("status", run_id)
    return record


def test_parameters_working_dir_and_record(tmp_path: Path, home: Home, jobs: Any) -> None:
    project = write_project(
        tmp_path / "p",
        "name: r\nentry_points:\n  main:\n    parameters:\n      word: string\n"
        '    command: "echo word={word}; cat data.txt; echo id=$MLPROJ_RUN_ID"\n',
        {"data.txt": "from the project folder\n"},
    )
    done = mlproj("run", str(project), "-b", "ray", "-P", "word=a b;$(c)", "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["status"], record["backend"], record["backend_state"]) == ("Finished", "ray", "SUCCEEDED")
    assert record["job_id"] == f"mlproj-{record['run_id']}"
    log = Path(record["log_path"]).read_text()
    lines = log.splitlines()  # Ray writes lines of its own into a job's log, at moments of its choosing
    assert lines.index("word=a b;$(c)") < lines.index("from the project folder")
    assert f"id={record['run_id']}" in log
    assert str(jobs.get_job_status(record["job_id"])) in ("SUCCEEDED", "JobStatus.SUCCEEDED")
    assert "from the project folder" in done.stderr  # --json: the job's output goes to stderr


def test_a_failing_job_exits_with_its_code(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo failing; exit 5")
    done = mlproj("run", str(project), "-b", "ray", "--json", timeout=240)
    assert done.returncode == 5, done.stderr
    record = json.loads(done.stdout)
    assert (record["status"], record["exit_code"], record["backend_state"]) == ("Failed", 5, "FAILED")
    assert record["error"] == "the command exited with code 5"


TREE = (
    "echo $$ >> {out}; bash -c 'echo $$ >> {out}; sleep 300 & echo $! >> {out}; wait' & "
    "echo started; sleep 300"
)


def test_cancel_stops_the_job_and_its_processes(tmp_path: Path, home: Home, jobs: Any) -> None:
    pids_file = tmp_path / "pids.txt"
    project = command_project(tmp_path / "p", TREE.format(out=pids_file))
    run_id = start_detached(project)
    wait_until(lambda: pids_file.exists() and len(read_pids(pids_file)) == 3, timeout=120)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=60)
    pids = read_pids(pids_file)
    done = mlproj("cancel", run_id, "--grace", "2", timeout=120)
    assert done.returncode == 0, done.stderr
    record = status(run_id)
    assert (record["status"], record["error"]) == ("Canceled", "canceled by mlproj cancel")
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=60)
    wait_until(lambda: "STOPPED" in str(jobs.get_job_status(record["job_id"])), timeout=60)
    assert "started" in mlproj("logs", run_id).stdout


def test_the_python_environment_becomes_the_runtime_env(tmp_path: Path, home: Home) -> None:
    (tmp_path / "wheels").mkdir()
    wheel = make_wheel(tmp_path / "wheels", "mlprojraypkg", "3.0", "VERSION = '3.0'\n")
    project = write_project(
        tmp_path / "p",
        "name: e\npython_env: python_env.yaml\nentry_points:\n  main:\n"
        "    command: \"python -c 'import mlprojraypkg; print(mlprojraypkg.VERSION)'\"\n",
        {"python_env.yaml": f"dependencies:\n  - {wheel}\n"},
    )
    done = mlproj("run", str(project), "-b", "ray", "--json", timeout=280)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["env_manager"] == "virtualenv"
    assert record["env_path"] is None  # nothing was built here: the cluster built it
    assert Path(record["log_path"]).read_text().splitlines()[-1] == "3.0"


def test_a_lost_supervisor_leaves_the_job_to_the_cluster(tmp_path: Path, home: Home) -> None:
    gate = tmp_path / "gate"
    project = command_project(
        tmp_path / "p", f"echo waiting; while [ ! -e {gate} ]; do sleep 0.1; done; exit 4"
    )
    run_id = start_detached(project)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=120)
    supervisor = Store.open(home).get(run_id).supervisor_pid
    assert supervisor is not None
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not alive(supervisor), timeout=10)
    assert status(run_id)["status"] == "Running"  # the cluster still runs it
    gate.touch()
    waited = mlproj("wait", run_id, timeout=180)
    assert waited.returncode == 4, waited.stderr
    record = status(run_id)
    assert (record["status"], record["exit_code"]) == ("Failed", 4)
    assert "waiting" in Path(record["log_path"]).read_text()  # the job's output was brought back


def test_a_job_the_cluster_forgot_is_reconciled_with_a_reason(tmp_path: Path, home: Home, jobs: Any) -> None:
    gate = tmp_path / "gate"
    project = command_project(tmp_path / "p", f"while [ ! -e {gate} ]; do sleep 0.1; done")
    run_id = start_detached(project)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=120)
    store = Store.open(home)
    record = store.get(run_id)
    assert record.supervisor_pid is not None and record.job_id is not None
    os.kill(record.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not alive(record.supervisor_pid or 0), timeout=10)
    # A cluster that was restarted knows none of its old jobs: the run points at a job it never had
    # (its real job is stopped).
    jobs.stop_job(record.job_id)
    store.update(run_id, job_id="mlproj-never-submitted")
    reconciled = status(run_id)
    assert reconciled["status"] == "Failed"
    assert reconciled["error"] == "the cluster no longer knows ray job mlproj-never-submitted"


def test_python_api_runs_on_ray(tmp_path: Path, home: Home) -> None:
    import mlproj as api

    project = write_project(
        tmp_path / "p",
        "name: a\nentry_points:\n  main:\n    parameters:\n      n: int\n    command: echo n={n}\n",
    )
    submitted = api.run(str(project), parameters={"n": 2}, backend="ray", synchronous=False)
    assert submitted.wait() is True
    assert "n=2" in Path(submitted.get_record()["log_path"]).read_text()


def test_a_pipeline_step_runs_on_ray(tmp_path: Path, home: Home) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "type: pipeline\nname: r\njobs:\n"
        "  make:\n    command: echo made > ${{outputs.out}}/x.txt\n"
        "    outputs:\n      out: {type: uri_folder}\n"
        "  read:\n    command: cat ${{inputs.x}}/x.txt; echo step=$MLPROJ_STEP\n    backend: ray\n"
        "    inputs:\n      x: ${{parent.jobs.make.outputs.out}}\n"
    )
    done = mlproj("run", str(pipeline), "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    steps = {step["step"]: step for step in json.loads(done.stdout)["steps"]}
    assert (steps["make"]["backend"], steps["read"]["backend"]) == ("local", "ray")
    assert steps["read"]["backend_state"] == "SUCCEEDED"
    log = Path(steps["read"]["log_path"]).read_text()
    assert "made\nstep=read\n" in log  # the single-node cluster reads the outputs mlproj made here
