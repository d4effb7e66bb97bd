"""Supervision with real process trees: cancel, Ctrl-C, timeouts, lost supervisors, leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlproj.home import Home
from mlproj.runs.store import Store
from tests.helpers import alive, command_project, mlproj, mlproj_json, read_pids, wait_until

# A tree: the main shell starts a child shell, which starts a grandchild `sleep` that escapes into a
# session of its own (setsid) and ignores SIGTERM. Every PID is written to pids.txt.
TREE = (
    "echo $$ >> {out}; "
    "bash -c 'echo $$ >> {out}; "
    'setsid bash -c "trap \\"\\" TERM; echo \\$\\$ >> {out}; sleep 300" & sleep 300\' & '
    "echo started; sleep 300"
)


def tree_project(tmp_path: Path) -> tuple[Path, Path]:
    pids = tmp_path / "pids.txt"
    return command_project(tmp_path / "tree", TREE.format(out=pids)), pids


def start_detached(project: Path, *args: str) -> str:
    done = mlproj("run", str(project), "-d", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def status_of(run_id: str) -> str:
    return str(mlproj_json("status", run_id)["status"])


@pytest.mark.slow
def test_cancel_ends_children_and_grandchildren(tmp_path: Path, home: Home) -> None:
    project, pids_file = tree_project(tmp_path)
    run_id = start_detached(project)
    wait_until(lambda: pids_file.exists() and len(read_pids(pids_file)) == 3)
    pids = read_pids(pids_file)
    assert all(alive(pid) for pid in pids)
    done = mlproj("cancel", run_id[:8], "--grace", "1")
    assert done.returncode == 0, done.stderr
    assert "now Canceled" in done.stdout
    record = mlproj_json("status", run_id)
    assert record["status"] == "Canceled"
    assert record["error"] == "canceled by mlproj cancel"
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10)
    # Cancelling again says it had already ended, and succeeds.
    again = mlproj("cancel", run_id)
    assert again.returncode == 0
    assert "already ended: Canceled" in again.stdout
    assert mlproj("wait", run_id).returncode == 130


@pytest.mark.slow
def test_kill_9_of_the_supervisor_is_reconciled(tmp_path: Path, home: Home) -> None:
    project, pids_file = tree_project(tmp_path)
    run_id = start_detached(project)
    wait_until(lambda: pids_file.exists() and len(read_pids(pids_file)) == 3)
    record = Store.open(home).get(run_id)
    assert record.supervisor_pid is not None
    os.kill(record.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not alive(record.supervisor_pid or 0), timeout=10)
    reconciled = mlproj_json("status", run_id)
    assert reconciled["status"] == "Failed"
    assert "supervising process" in reconciled["error"] and "is gone" in reconciled["error"]
    wait_until(lambda: not any(alive(pid) for pid in read_pids(pids_file)), timeout=10)
    assert mlproj("wait", run_id, "--no-show-output").returncode == 1


def test_a_reused_pid_is_not_taken_for_the_supervisor(tmp_path: Path, home: Home) -> None:
    """A record naming a live PID whose start time does not match is reconciled, the PID not signalled."""
    project = command_project(tmp_path / "p", "sleep 300")
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        run_id = start_detached(project)
        wait_until(lambda: status_of(run_id) == "Running")
        store = Store.open(home)
        real = store.get(run_id)
        store.update(run_id, supervisor_pid=bystander.pid, supervisor_identity="boot:1")
        os.kill(real.supervisor_pid or 0, signal.SIGKILL)
        assert status_of(run_id) == "Failed"
        assert bystander.poll() is None  # never signalled
        wait_until(lambda: not alive(real.pid or 0), timeout=10)
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.slow
def test_ctrl_c_in_the_foreground_cancels_the_tree(tmp_path: Path, home: Home) -> None:
    project, pids_file = tree_project(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: pids_file.exists() and len(read_pids(pids_file)) == 3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # a second Ctrl-C skips the waiting
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    record = json.loads(out)
    assert record["status"] == "Canceled"
    assert record["error"] == "canceled by Ctrl-C"
    wait_until(lambda: not any(alive(pid) for pid in read_pids(pids_file)), timeout=10)


def test_sigterm_to_a_foreground_run_cancels_it(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo up; sleep 300")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "up\n"
    proc.terminate()
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    (record,) = mlproj_json("runs")
    assert record["status"] == "Canceled"
    assert "SIGTERM" in record["error"]


def test_run_timeout_cancels_and_exits_124(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "sleep 300")
    started = time.monotonic()
    done = mlproj("run", str(project), "--timeout", "0.5", "--json")
    assert done.returncode == 124, done.stderr
    assert time.monotonic() - started < 60
    record = json.loads(done.stdout)
    assert record["status"] == "Canceled"
    assert record["error"] == "timed out after 0.5 s"


def test_leftovers_in_the_process_group_are_ended(tmp_path: Path, home: Home) -> None:
    pid_file = tmp_path / "bg.pid"
    project = command_project(tmp_path / "p", f"sleep 300 & echo $! > {pid_file}; echo main done")
    done = mlproj("run", str(project))
    assert done.returncode == 0, done.stderr
    wait_until(lambda: not alive(int(pid_file.read_text())), timeout=10)


def test_wait_timeout_and_exit_codes(tmp_path: Path, home: Home) -> None:
    slow = command_project(tmp_path / "slow", "sleep 300")
    run_id = start_detached(slow)
    done = mlproj("wait", run_id, "--timeout", "0.3")
    assert done.returncode == 124
    assert "still" in done.stderr
    assert status_of(run_id) in ("Queued", "Running")  # wait --timeout leaves the run alone
    mlproj("cancel", run_id, "--grace", "1")
    failing = command_project(tmp_path / "failing", "echo bye; exit 7")
    run_id = start_detached(failing)
    done = mlproj("wait", run_id)
    assert done.returncode == 7
    assert done.stdout == "bye\n"


def test_logs_follow_streams_until_the_end(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "for i in 1 2 3; do echo line $i; sleep 0.2; done")
    run_id = start_detached(project)
    done = mlproj("logs", run_id, "-f")
    assert done.returncode == 0
    assert done.stdout == "line 1\nline 2\nline 3\n"
    assert status_of(run_id) == "Finished"


def test_output_survives_the_supervisor_being_killed(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo before; sleep 300")
    run_id = start_detached(project)
    log = Path(mlproj_json("status", run_id)["log_path"])
    wait_until(lambda: log.read_text() == "before\n")
    record = Store.open(home).get(run_id)
    os.kill(record.supervisor_pid or 0, signal.SIGKILL)
    wait_until(lambda: status_of(run_id) == "Failed")
    assert mlproj("logs", run_id).stdout == "before\n"


@pytest.mark.slow
def test_twenty_detached_runs_at_once(tmp_path: Path, home: Home) -> None:
    good = command_project(tmp_path / "good", "echo ok")
    bad = command_project(tmp_path / "bad", "exit 3")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mlproj", "run", str(good if i % 2 else bad), "-d", "--run-name", f"r{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(20)
    ]
    run_ids = {}
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        run_ids[out.strip()] = i
    assert len(run_ids) == 20
    for run_id, i in run_ids.items():
        assert mlproj("wait", run_id, "--no-show-output", timeout=120).returncode == (0 if i % 2 else 3)
    records = {r["run_id"]: r for r in mlproj_json("runs", "--limit", "50")}
    assert set(records) == set(run_ids)
    for run_id, i in run_ids.items():
        assert records[run_id]["status"] == ("Finished" if i % 2 else "Failed")
        assert records[run_id]["run_name"] == f"r{i}"


def test_a_detached_supervisor_ignores_a_folder_named_mlproj_where_it_was_started(
    tmp_path: Path, home: Home
) -> None:
    """`python -m` imports from the working directory first: a caller standing in a folder that holds
    another `mlproj` (this repository, a project's own package) must not hand it to the supervisor."""
    decoy = tmp_path / "decoy"
    (decoy / "mlproj").mkdir(parents=True)
    (decoy / "mlproj" / "__init__.py").write_text("raise SystemExit('the wrong mlproj was imported')\n")
    project = command_project(tmp_path / "p", "echo from the right one")
    script = Path(sys.executable).with_name("mlproj")  # the console script: it does not look in the cwd
    started = subprocess.run(
        [str(script), "run", str(project), "-d"], cwd=decoy, capture_output=True, text=True, check=True
    )
    run_id = started.stdout.strip()
    done = mlproj("wait", run_id)
    assert done.returncode == 0, done.stderr
    assert "from the right one" in done.stdout
