"""Stopping runs: only our own processes are ever signalled, none escapes, and Ctrl-C, cancel and
timeouts climb the same ladder (interrupt → terminate → kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlproj import submit
from mlproj.execution.reconcile import end_processes
from mlproj.execution.supervisor import Supervisor
from mlproj.home import Home
from mlproj.process import Proc, identity, signal_process
from mlproj.proctree import TRACKING_VARIABLE, mechanism
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store, new_run_id
from tests.clusters import need
from tests.helpers import alive, command_project, mlproj, mlproj_json, wait_until

# A grandchild that escapes every way a process can: a subshell that exits at once (so it is
# re-parented), `setsid` (a session and process group of its own), `env -i` (no MLPROJ_RUN_ID), and
# SIGTERM ignored.
ESCAPING = "(env -i setsid sh -c 'trap \"\" TERM; echo $$ > {pid_file}; exec sleep 300' &); sleep 300"


def stranger() -> subprocess.Popen[bytes]:
    """A process that is not ours, in a session and process group of its own."""
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# --- a reused PID is never signalled ----------------------------------------------------------------------


def test_signal_process_checks_the_identity_first() -> None:
    proc = stranger()
    try:
        assert not signal_process(Proc(proc.pid, "boot:1"), signal.SIGTERM)  # the PID, another start time
        assert proc.poll() is None
        assert signal_process(Proc(proc.pid, identity(proc.pid) or ""), signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_ourselves_and_a_gone_process_are_never_signalled() -> None:
    assert not signal_process(Proc(os.getpid(), identity(os.getpid()) or ""), signal.SIGTERM)
    assert not signal_process(Proc(dead_pid(), "boot:1"), signal.SIGTERM)


def lost_record(home: Home, pid: int, **changes: object) -> RunRecord:
    """A Running run whose supervisor is gone and whose recorded main process had `pid` once."""
    store = Store.open(home)
    record = RunRecord(
        run_id=new_run_id(),
        status=RunStatus.RUNNING,
        created_at=time.time() - 60,
        started_at=time.time() - 60,
        supervisor_pid=dead_pid(),
        supervisor_identity="boot:1",
        pid=pid,
        pid_identity="boot:2",  # the process recorded: it started at another time than the one there now
        **changes,  # type: ignore[arg-type]
    )
    store.insert(record)
    return record


def test_the_cleanup_of_a_lost_run_spares_a_process_that_took_its_pid(home: Home) -> None:
    """The recorded PID (and process group) now belong to another program: `status` reconciles the run
    and leaves that program alone."""
    other = stranger()
    try:
        record = lost_record(home, other.pid)
        reconciled = mlproj_json("status", record.run_id)
        assert reconciled["status"] == "Failed"
        assert other.poll() is None
        end_processes(Store.open(home).get(record.run_id), 0.0)  # cancel's fallback: the same function
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


# --- nothing escapes --------------------------------------------------------------------------------------


def start_escaping_run(tmp_path: Path, tracking: str) -> tuple[str, Path]:
    pid_file = tmp_path / "grandchild.pid"
    project = command_project(tmp_path / "p", ESCAPING.format(pid_file=pid_file))
    done = mlproj("run", str(project), "-d", env={TRACKING_VARIABLE: tracking})
    assert done.returncode == 0, done.stderr
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip())
    return done.stdout.strip(), pid_file


@pytest.mark.parametrize("tracking", ["auto", "tree"])
def test_cancel_ends_a_grandchild_that_escaped_group_session_and_marker(
    tmp_path: Path, home: Home, tracking: str
) -> None:
    run_id, pid_file = start_escaping_run(tmp_path, tracking)
    grandchild = int(pid_file.read_text())
    assert alive(grandchild)
    done = mlproj("cancel", run_id, "--grace", "0.5", env={TRACKING_VARIABLE: tracking})
    assert done.returncode == 0, done.stderr
    assert mlproj_json("status", run_id)["status"] == "Canceled"
    wait_until(lambda: not alive(grandchild), timeout=10)


def test_a_killed_supervisors_escaped_grandchild_is_ended_from_the_runs_cgroup(
    tmp_path: Path, home: Home
) -> None:
    need("cgroup", None if mechanism() == "cgroup" else "no cgroup v2 tree is writable here")
    run_id, pid_file = start_escaping_run(tmp_path, "auto")
    grandchild = int(pid_file.read_text())
    record = Store.open(home).get(run_id)
    assert record.cgroup is not None
    os.kill(record.supervisor_pid or 0, signal.SIGKILL)
    wait_until(lambda: not alive(record.supervisor_pid or 0), timeout=10)
    assert mlproj_json("status", run_id)["status"] == "Failed"
    wait_until(lambda: not alive(grandchild), timeout=10)
    assert not Path(record.cgroup).exists()


# --- Ctrl-C climbs the same ladder as cancel --------------------------------------------------------------

WORKER = """
import signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
def note(signum, frame):
    log.write(signal.Signals(signum).name + "\\n")
    if signum == signal.SIGTERM or len(sys.argv) < 3:
        sys.exit(0)
signal.signal(signal.SIGTERM, note)
if len(sys.argv) > 2:
    signal.signal(signal.SIGINT, note)
log.write("up\\n")
while True:
    time.sleep(0.05)
"""


def foreground(project: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def test_after_ctrl_c_a_background_worker_gets_sigterm(tmp_path: Path, home: Home) -> None:
    """Background jobs of a shell ignore SIGINT: once the shell has exited, the worker it left gets
    the next rung, SIGTERM, not SIGKILL straight away."""
    signals = tmp_path / "signals.txt"
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "worker.py").write_text(WORKER)
    project = command_project(tmp_path / "p", f"{sys.executable} worker.py {signals} & wait")
    proc = foreground(project, MLPROJ_INTERRUPT_TIMEOUT="0.5")
    wait_until(lambda: signals.exists() and "up" in signals.read_text())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(out)["status"] == "Canceled"
    assert signals.read_text().split() == ["up", "SIGTERM"]


def test_each_further_ctrl_c_climbs_a_rung_at_once(tmp_path: Path, home: Home) -> None:
    """With a minute between SIGINT and SIGTERM, a second Ctrl-C brings SIGTERM now."""
    signals = tmp_path / "signals.txt"
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "worker.py").write_text(WORKER)
    project = command_project(tmp_path / "p", f"exec {sys.executable} worker.py {signals} keep-going")
    proc = foreground(project, MLPROJ_INTERRUPT_TIMEOUT="120")
    wait_until(lambda: signals.exists() and "up" in signals.read_text())
    proc.send_signal(signal.SIGINT)
    wait_until(lambda: "SIGINT" in signals.read_text())
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)  # well before the 120 s the first rung would last
    assert proc.returncode == 130, err
    assert signals.read_text().split() == ["up", "SIGINT", "SIGTERM"]


# --- a run canceled while it is prepared never starts -----------------------------------------------------


def test_a_run_canceled_before_its_workload_starts_never_starts_it(tmp_path: Path, home: Home) -> None:
    marker = tmp_path / "started"
    project = command_project(tmp_path / "p", f"touch {marker}")
    store = Store.open(home)
    record = submit.record(store, submit.plan(submit.RunOptions(uri=str(project)), home))
    assert store.transition(record.run_id, RunStatus.CANCEL_REQUESTED)  # `mlproj cancel` while Queued
    final = Supervisor(store, record.run_id).run()
    assert final.status is RunStatus.CANCELED
    assert final.pid is None and final.started_at is None
    time.sleep(0.2)
    assert not marker.exists()


def test_the_shell_is_found_as_shutil_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from mlproj import process

    (tmp_path / "bash").mkdir()  # a folder named bash is not a program
    monkeypatch.setenv("PATH", f"{tmp_path}::{os.environ['PATH']}")
    assert process.shell() == shutil.which("bash")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert process.shell() == "/bin/sh"
