"""The slurm backend against a real Slurm cluster (CI starts a single-node one: .ci/slurm.sh).

Skipped, with the reason, where no Slurm answers (unless MLPROJ_TEST_REQUIRE lists slurm). The runs'
MLPROJ_HOME is in tmp_path, which the single node shares with mlproj, as a cluster's nodes would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlproj.home import Home
from mlproj.runs.store import Store
from tests.clusters import need, slurm_missing
from tests.helpers import alive, command_project, mlproj, mlproj_json, read_pids, wait_until, write_project
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _slurm(home: Home) -> Iterator[None]:
    need("slurm", slurm_missing())
    yield
    # Whatever a failed test left queued or running on the cluster is canceled.
    for record in Store.open(home).list_runs(top_level=False):
        if record.job_id and not record.is_final:
            subprocess.run(["scancel", record.job_id], check=False)


def start_detached(project: Path, *args: str) -> str:
    done = mlproj("run", str(project), "-b", "slurm", "-d", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def status(run_id: str) -> dict[str, object]:
    record: dict[str, object] = mlproj_json("status", run_id)
    return record


def scontrol(job_id: str) -> str:
    done = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=False
    )
    return done.stdout


def test_parameters_output_and_record(tmp_path: Path, home: Home) -> None:
    project = write_project(
        tmp_path / "p",
        "name: s\nentry_points:\n  main:\n    parameters:\n      n: int\n      word: string\n"
        '    command: "echo n={n}; echo word={word}; echo id=$MLPROJ_RUN_ID; echo job=$SLURM_JOB_ID; pwd"\n',
    )
    done = mlproj("run", str(project), "-b", "slurm", "-P", "n=3", "-P", "word=a b;c", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "Finished"
    assert record["backend"] == "slurm"
    assert record["backend_state"] == "COMPLETED"
    assert record["job_id"] and record["job_id"].isdigit()
    assert record["exit_code"] == 0
    lines = Path(record["log_path"]).read_text().splitlines()
    assert lines == [
        "n=3",
        "word=a b;c",
        f"id={record['run_id']}",
        f"job={record['job_id']}",
        str(project),
    ]
    assert "JobState=COMPLETED" in scontrol(record["job_id"])
    # The job's name says whose it is, for people reading squeue.
    assert f"JobName=mlproj-{record['run_id'][:8]}" in scontrol(record["job_id"])


def test_a_failing_job_exits_with_its_code(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo failing; exit 7")
    done = mlproj("run", str(project), "-b", "slurm", "--json")
    assert done.returncode == 7, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "Failed"
    assert record["exit_code"] == 7
    assert record["error"] == "the command exited with code 7"
    assert record["backend_state"] == "FAILED"
    assert mlproj("wait", record["run_id"], "--no-show-output").returncode == 7


def test_backend_config_reaches_sbatch(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo cpus=$SLURM_CPUS_PER_TASK")
    config = {
        "partition": "debug",
        "time": "5",
        "cpus_per_task": 1,
        "job_name": "custom",
        "sbatch_args": ["--comment=from-mlproj"],
    }
    done = mlproj("run", str(project), "-b", "slurm", "-c", json.dumps(config), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["backend_config"]["time"] == "5"
    assert Path(record["log_path"]).read_text() == "cpus=1\n"
    job = scontrol(record["job_id"])
    assert "JobName=custom" in job
    assert "TimeLimit=00:05:00" in job
    assert "Partition=debug" in job
    assert "Comment=from-mlproj" in job


# The job's tree: a child and a grandchild, every PID written to pids.txt.
TREE = (
    "echo $$ >> {out}; bash -c 'echo $$ >> {out}; sleep 300 & echo $! >> {out}; wait' & "
    "echo started; sleep 300"
)


def test_cancel_ends_the_job_and_its_processes(tmp_path: Path, home: Home) -> None:
    pids_file = tmp_path / "pids.txt"
    project = command_project(tmp_path / "p", TREE.format(out=pids_file))
    run_id = start_detached(project)
    wait_until(lambda: pids_file.exists() and len(read_pids(pids_file)) == 3, timeout=60)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=30)
    pids = read_pids(pids_file)
    assert all(alive(pid) for pid in pids)
    done = mlproj("cancel", run_id, "--grace", "2")
    assert done.returncode == 0, done.stderr
    assert "now Canceled" in done.stdout
    record = status(run_id)
    assert record["status"] == "Canceled"
    assert record["error"] == "canceled by mlproj cancel"
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30)
    job = str(record["job_id"])
    wait_until(lambda: "JobState=RUNNING" not in scontrol(job), timeout=30)
    assert mlproj("wait", run_id, "--no-show-output").returncode == 130


def test_logs_follow_a_running_job(tmp_path: Path, home: Home) -> None:
    gate = tmp_path / "gate"
    project = command_project(
        tmp_path / "p", f"echo first; while [ ! -e {gate} ]; do sleep 0.1; done; echo second"
    )
    run_id = start_detached(project)
    follower = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "logs", run_id, "-f"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first\n"  # seen while the job still runs
        wait_until(lambda: status(run_id)["status"] == "Running", timeout=30)
        gate.touch()
        rest = follower.stdout.read()
        follower.wait(timeout=60)
    finally:
        follower.kill()
        follower.wait()
        if follower.stdout is not None:
            follower.stdout.close()
    assert rest == "second\n"
    assert follower.returncode == 0
    assert mlproj("logs", run_id).stdout == "first\nsecond\n"


def test_a_job_waiting_for_resources_is_queued(tmp_path: Path, home: Home) -> None:
    # The node's CPUs are all taken by a first job; a second one waits in the queue (PENDING).
    cpus = os.cpu_count() or 1
    gate = tmp_path / "gate"
    hog = command_project(tmp_path / "hog", f"while [ ! -e {gate} ]; do sleep 0.1; done")
    first = start_detached(hog, "-c", json.dumps({"cpus_per_task": cpus}))
    wait_until(lambda: status(first)["status"] == "Running", timeout=60)
    second = start_detached(
        command_project(tmp_path / "q", "echo ran"), "-c", json.dumps({"cpus_per_task": cpus})
    )
    wait_until(lambda: status(second).get("backend_state") == "PENDING", timeout=60)
    assert status(second)["status"] == "Queued"
    gate.touch()
    assert mlproj("wait", second, "--no-show-output", timeout=120).returncode == 0
    assert mlproj("wait", first, "--no-show-output", timeout=120).returncode == 0
    assert status(second)["status"] == "Finished"


def test_a_lost_supervisor_leaves_the_job_to_the_cluster(tmp_path: Path, home: Home) -> None:
    gate = tmp_path / "gate"
    project = command_project(tmp_path / "p", f"while [ ! -e {gate} ]; do sleep 0.1; done; echo done; exit 4")
    run_id = start_detached(project)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=60)
    supervisor = Store.open(home).get(run_id).supervisor_pid
    assert supervisor is not None
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not alive(supervisor), timeout=10)
    # The job still runs on the cluster: the run is followed there, not declared lost.
    assert status(run_id)["status"] == "Running"
    gate.touch()
    waited = mlproj("wait", run_id, timeout=120)
    assert waited.returncode == 4, waited.stderr
    record = status(run_id)
    assert (record["status"], record["exit_code"], record["backend_state"]) == ("Failed", 4, "FAILED")
    assert "done" in waited.stdout


def test_a_job_the_cluster_forgot_is_reconciled_with_a_reason(tmp_path: Path, home: Home) -> None:
    gate = tmp_path / "gate"
    project = command_project(tmp_path / "p", f"while [ ! -e {gate} ]; do sleep 0.1; done")
    run_id = start_detached(project)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=60)
    store = Store.open(home)
    record = store.get(run_id)
    assert record.supervisor_pid is not None and record.job_id is not None
    os.kill(record.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not alive(record.supervisor_pid or 0), timeout=10)
    # A cluster forgets finished jobs after MinJobAge, or all of them when its state is lost: here the
    # run is pointed at a job ID this cluster never had (the job it really ran is canceled).
    subprocess.run(["scancel", record.job_id], check=True)
    store.update(run_id, job_id="987654321")
    reconciled = status(run_id)
    assert reconciled["status"] == "Failed"
    assert reconciled["error"] == "the cluster no longer knows slurm job 987654321"
    assert mlproj("wait", run_id, "--no-show-output").returncode == 1


def test_cancel_with_the_supervisor_gone_cancels_the_job(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "sleep 300")
    run_id = start_detached(project)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=60)
    record = Store.open(home).get(run_id)
    assert record.supervisor_pid is not None and record.job_id is not None
    os.kill(record.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not alive(record.supervisor_pid or 0), timeout=10)
    started = time.monotonic()
    done = mlproj("cancel", run_id, "--grace", "1")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 60  # it did not wait for the 300 s sleep to end
    assert status(run_id)["status"] == "Canceled"
    wait_until(lambda: "JobState=CANCELLED" in scontrol(record.job_id or ""), timeout=30)


def test_a_job_canceled_on_the_cluster_is_recorded_canceled(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "sleep 300")
    run_id = start_detached(project)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=60)
    job = str(status(run_id)["job_id"])
    subprocess.run(["scancel", job], check=True)
    assert mlproj("wait", run_id, "--no-show-output", timeout=120).returncode == 130
    record = status(run_id)
    assert record["status"] == "Canceled"
    assert record["error"] == "canceled on the cluster (CANCELLED)"


def test_the_environment_is_built_here_and_activated_in_the_job(tmp_path: Path, home: Home) -> None:
    # A uv environment with no dependencies, built in MLPROJ_HOME (which the node shares).
    project = write_project(
        tmp_path / "p",
        "name: e\npython_env: python_env.yaml\nentry_points:\n  main:\n"
        "    command: \"python -c 'import sys; print(sys.prefix)'\"\n",
        {"python_env.yaml": "dependencies: []\n"},
    )
    done = mlproj("run", str(project), "-b", "slurm", "--env-manager", "uv", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["env_path"] and record["env_path"].startswith(str(home.envs_dir))
    assert Path(record["log_path"]).read_text().splitlines()[-1] == record["env_path"]


def test_docker_environments_are_refused(tmp_path: Path, home: Home) -> None:
    project = write_project(
        tmp_path / "p",
        "name: d\ndocker_env:\n  image: busybox\nentry_points:\n  main:\n    command: echo hi\n",
    )
    done = mlproj("run", str(project), "-b", "slurm")
    assert done.returncode == 2, done.stderr
    assert "runs in a container, which this backend cannot start" in done.stderr
    assert mlproj_json("runs") == []


def test_a_partition_that_does_not_exist(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), "-b", "slurm", "-c", '{"partition": "gpu-nope"}')
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "mlproj: error: backend slurm: partition 'gpu-nope' does not exist (partitions: debug)"
    )
    assert mlproj_json("runs") == []


def test_python_api_runs_on_slurm(tmp_path: Path, home: Home, capfd: pytest.CaptureFixture[str]) -> None:
    import mlproj as api

    project = write_project(
        tmp_path / "p",
        "name: a\nentry_points:\n  main:\n    parameters:\n      x: float\n    command: echo x={x}\n",
    )
    submitted = api.run(str(project), parameters={"x": 0.5}, backend="slurm", backend_config={"time": "5"})
    assert submitted.get_status() == "Finished"
    assert capfd.readouterr().out == "x=0.5\n"
    assert submitted.get_record()["backend"] == "slurm"
    background = api.run(str(project), parameters={"x": 1}, backend="slurm", synchronous=False)
    assert background.wait() is True


PIPELINE = """
type: pipeline
name: on-slurm
settings:
  backend: slurm
  backend_config: {{time: "5"}}
jobs:
  prepare:
    command: echo prepared > ${{{{outputs.data}}}}/d.txt
    backend: local
    outputs:
      data: {{type: uri_folder}}
  train:
    command: cat ${{{{inputs.d}}}}/d.txt > ${{{{outputs.model}}}}/m.txt; echo job=$SLURM_JOB_ID {extra}
    inputs:
      d: ${{{{parent.jobs.prepare.outputs.data}}}}
    outputs:
      model: {{type: uri_folder}}
"""


def test_a_pipeline_prepares_here_and_trains_on_slurm(tmp_path: Path, home: Home) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(PIPELINE.format(extra=""))
    done = mlproj("run", str(pipeline), "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["status"], record["backend"]) == ("Finished", "slurm")
    steps = {step["step"]: step for step in record["steps"]}
    assert (steps["prepare"]["backend"], steps["prepare"]["job_id"]) == ("local", None)
    train = steps["train"]
    assert (train["backend"], train["backend_state"], train["status"]) == ("slurm", "COMPLETED", "Finished")
    assert train["backend_config"] == {"time": "5"}
    assert Path(train["log_path"]).read_text() == f"job={train['job_id']}\n"
    assert (Path(train["outputs"]["model"]) / "m.txt").read_text() == "prepared\n"
    assert "TimeLimit=00:05:00" in scontrol(train["job_id"])


def test_canceling_a_pipeline_cancels_its_slurm_job(tmp_path: Path, home: Home) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(PIPELINE.format(extra="; sleep 300"))
    done = mlproj("run", str(pipeline), "-d")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()

    def train() -> dict[str, object]:
        return next(s for s in status(run_id)["steps"] if s["step"] == "train")  # type: ignore[attr-defined]

    wait_until(lambda: train()["status"] == "Running", timeout=120)
    job = str(train()["job_id"])
    assert mlproj("cancel", run_id, "--grace", "1").returncode == 0
    assert status(run_id)["status"] == "Canceled"
    assert train()["status"] == "Canceled"
    wait_until(lambda: "JobState=RUNNING" not in scontrol(job), timeout=60)


def test_a_bad_step_backend_config_names_the_step(tmp_path: Path, home: Home) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "type: pipeline\njobs:\n  a:\n    command: echo hi\n    backend: slurm\n"
        "    backend_config: {partition: nope}\n"
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"mlproj: error: {pipeline}: jobs.a: backend slurm: partition 'nope' does not exist "
        "(partitions: debug)"
    )
    assert mlproj_json("runs") == []


def test_the_job_gets_the_mlflow_run_and_ends_it(
    tmp_path: Path, home: Home, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    command = "echo id=$MLFLOW_RUN_ID uri=$MLFLOW_TRACKING_URI exp=$MLFLOW_EXPERIMENT_ID"
    project = write_project(tmp_path / "p", f"name: s\nentry_points:\n  main:\n    command: {command!r}\n")
    done = mlproj("run", str(project), "-b", "slurm", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    expected = f"id={record['mlflow_run_id']} uri={mlflow_server.uri} exp={record['mlflow_experiment_id']}"
    assert Path(record["log_path"]).read_text().splitlines() == [expected]
    run = mlflow_server.run(record["mlflow_run_id"])
    assert run["info"]["status"] == "FINISHED"
    assert run["tags"]["mlflow.project.backend"] == "slurm"
