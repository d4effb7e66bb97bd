"""What other shells do to a run (cancel, wait, follow), with a fake clock in place of their `time`: the
supervisor is this test process (alive) or a `sleep` started and killed here (gone), and what the
supervisor does meanwhile is played by the clock's `sleep`, so no test waits for real."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

import mlproj.execution.control
import mlproj.execution.reconcile
from mlproj.backends import BACKENDS
from mlproj.backends.workload import JobState
from mlproj.execution.control import CANCEL_MARGIN, FOLLOW_POLL, STATUS_POLL, cancel, follow, wait
from mlproj.process import identity
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store
from tests.fakes import FakeClock, FakeClusterBackend, insert_run, install_fake_backend

NOT_RESPONDING = "canceled by mlproj cancel (the supervisor did not respond; its processes were killed)"
NOT_TAKEN_OVER = "canceled by mlproj cancel (no supervisor had taken it over)"


class ShellClock(FakeClock):
    """A fake clock that runs `on_sleep(number of sleeps so far)` whenever the caller sleeps: what the
    supervisor (or the workload) does meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps = 0
        self.on_sleep: Callable[[int], None] | None = None

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        super().sleep(seconds)
        if self.on_sleep is not None:
            self.on_sleep(self.sleeps)


class ClusterBackend(FakeClusterBackend):
    """A cluster whose jobs keep running until canceled; it notes the cancellations."""

    canceled: ClassVar[list[tuple[str, float]]] = []

    def job_state(self, record: RunRecord) -> JobState | None:  # noqa: ARG002 - the Backend interface's signature
        return JobState(RunStatus.RUNNING, "RUNNING")

    def cancel_job(self, record: RunRecord, grace: float) -> None:
        self.canceled.append((record.job_id or "", grace))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ShellClock:
    """One fake clock for control, reconciliation and the ladder; the fake backends."""
    install_fake_backend(monkeypatch)
    fake = ShellClock()
    for module in (mlproj.execution.control, mlproj.execution.reconcile, mlproj.execution.ladder):
        monkeypatch.setattr(module, "time", fake)
    monkeypatch.setitem(BACKENDS, "fake-cluster", ("tests.test_control", "ClusterBackend"))
    monkeypatch.setattr(ClusterBackend, "canceled", [])
    return fake


@pytest.fixture
def alive() -> dict[str, Any]:
    """Supervisor fields naming this test process."""
    return {"supervisor_pid": os.getpid(), "supervisor_identity": identity(os.getpid())}


@pytest.fixture
def gone() -> dict[str, Any]:
    """Supervisor fields naming a process that has exited (a `sleep` started and killed here)."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        found = identity(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    return {"supervisor_pid": proc.pid, "supervisor_identity": found}


# --- cancel -------------------------------------------------------------------------------------------------


def test_cancel_of_a_final_run_changes_nothing(store: Store, clock: ShellClock) -> None:
    record = insert_run(store, clock, status=RunStatus.FINISHED, exit_code=0)
    outcome = cancel(store, record, grace=1.0)
    assert outcome.already_final
    assert outcome.record == record
    assert store.get(record.run_id) == record  # its grace is not recorded either
    assert clock.sleeps == 0


@pytest.mark.parametrize("status", [RunStatus.NOT_STARTED, RunStatus.QUEUED])
def test_cancel_of_a_waiting_run_whose_supervisor_is_gone_finds_it_failed(
    store: Store, clock: ShellClock, gone: dict[str, Any], status: RunStatus
) -> None:
    """Reading the run reconciles it first: it has already ended, without anyone to cancel it."""
    record = insert_run(store, clock, status=status, **gone)
    outcome = cancel(store, record, grace=1.0)
    assert outcome.already_final
    assert outcome.record.status is RunStatus.FAILED
    assert outcome.record.error is not None
    assert outcome.record.error.startswith(f"the supervising process (pid {gone['supervisor_pid']}) is gone")
    assert clock.sleeps == 0


def test_cancel_of_a_run_not_yet_taken_over_by_a_supervisor_cancels_it_at_once(
    store: Store, clock: ShellClock
) -> None:
    record = insert_run(store, clock, status=RunStatus.NOT_STARTED, created_at=clock.now - 1.0)
    outcome = cancel(store, record, grace=1.0)
    assert not outcome.already_final
    assert (outcome.record.status, outcome.record.error) == (RunStatus.CANCELED, NOT_TAKEN_OVER)
    assert (outcome.record.grace, outcome.record.ended_at) == (1.0, clock.now)
    assert clock.sleeps == 0  # nobody supervises it: nothing to wait for


def test_cancel_asks_the_supervisor_and_returns_what_it_recorded(
    store: Store, clock: ShellClock, alive: dict[str, Any]
) -> None:
    record = insert_run(store, clock, **alive)
    seen: list[tuple[RunStatus, float | None]] = []

    def supervisor(sleeps: int) -> None:
        current = store.get(record.run_id)
        seen.append((current.status, current.grace))
        if sleeps == 3:
            store.transition(
                record.run_id, RunStatus.CANCELED, error="canceled by mlproj cancel", exit_code=-15
            )

    clock.on_sleep = supervisor
    start = clock.now
    outcome = cancel(store, record, grace=0.5)
    assert seen == [(RunStatus.CANCEL_REQUESTED, 0.5)] * 3
    assert not outcome.already_final
    assert (outcome.record.status, outcome.record.error, outcome.record.exit_code) == (
        RunStatus.CANCELED,
        "canceled by mlproj cancel",
        -15,
    )
    assert clock.now - start == pytest.approx(0.15)


def test_a_run_that_ends_on_its_own_while_being_canceled_was_already_final(
    store: Store, clock: ShellClock, alive: dict[str, Any]
) -> None:
    record = insert_run(store, clock, **alive)

    def supervisor(sleeps: int) -> None:
        if sleeps == 2:
            store.transition(record.run_id, RunStatus.FINISHED, exit_code=0)

    clock.on_sleep = supervisor
    outcome = cancel(store, record, grace=0.5)
    assert outcome.already_final
    assert (outcome.record.status, outcome.record.exit_code) == (RunStatus.FINISHED, 0)


def test_cancel_ends_the_run_itself_when_the_supervisor_does_not_respond(
    store: Store, clock: ShellClock, alive: dict[str, Any]
) -> None:
    record = insert_run(store, clock, **alive)
    start = clock.now
    outcome = cancel(store, record, grace=0.5)
    assert not outcome.already_final
    assert (outcome.record.status, outcome.record.error) == (RunStatus.CANCELED, NOT_RESPONDING)
    waited = clock.now - start
    assert 0.5 + CANCEL_MARGIN <= waited <= 0.5 + CANCEL_MARGIN + 0.05 + 1e-6


def test_an_unresponsive_pipeline_supervisor_has_its_unfinished_steps_canceled(
    store: Store, clock: ShellClock, alive: dict[str, Any]
) -> None:
    pipeline = insert_run(store, clock, kind=RunKind.PIPELINE, **alive)
    done = insert_run(
        store, clock, kind=RunKind.STEP, parent_run_id=pipeline.run_id, status=RunStatus.FINISHED
    )
    steps = [
        insert_run(store, clock, kind=RunKind.STEP, parent_run_id=pipeline.run_id, status=status)
        for status in (RunStatus.RUNNING, RunStatus.QUEUED)
    ]
    outcome = cancel(store, pipeline, grace=0.1)
    assert (outcome.record.status, outcome.record.error) == (RunStatus.CANCELED, NOT_RESPONDING)
    for step in steps:
        after = store.get(step.run_id)
        assert (after.status, after.error) == (RunStatus.CANCELED, "canceled by mlproj cancel")
    assert store.get(done.run_id) == done


def test_cancel_of_a_cluster_job_without_a_supervisor_cancels_the_job(
    store: Store, clock: ShellClock, gone: dict[str, Any]
) -> None:
    record = insert_run(store, clock, backend="fake-cluster", job_id="J-3", backend_state="RUNNING", **gone)
    outcome = cancel(store, record, grace=4.0)
    assert not outcome.already_final
    assert (outcome.record.status, outcome.record.error) == (
        RunStatus.CANCELED,
        "canceled by mlproj cancel (its job was canceled)",
    )
    assert ClusterBackend.canceled == [("J-3", 4.0)]


# --- wait ---------------------------------------------------------------------------------------------------


def test_wait_for_a_final_run_returns_it_at_once(store: Store, clock: ShellClock) -> None:
    record = insert_run(
        store, clock, status=RunStatus.FAILED, exit_code=2, error="the command exited with code 2"
    )
    polls: list[int] = []
    assert wait(store, record.run_id, on_poll=lambda: polls.append(1)) == record
    assert (polls, clock.sleeps) == ([], 0)


def test_wait_with_a_timeout_gives_up_on_a_supervised_run(
    store: Store, clock: ShellClock, alive: dict[str, Any]
) -> None:
    record = insert_run(store, clock, **alive)
    polls: list[int] = []
    start = clock.now
    assert wait(store, record.run_id, timeout=0.2, on_poll=lambda: polls.append(1)) is None
    assert polls == [1]
    assert clock.now - start == pytest.approx(STATUS_POLL)
    assert store.get(record.run_id) == record


def test_wait_returns_the_run_once_its_supervisor_ends_it(
    store: Store, clock: ShellClock, alive: dict[str, Any]
) -> None:
    record = insert_run(store, clock, **alive)

    def supervisor(sleeps: int) -> None:
        if sleeps == 4:
            store.transition(record.run_id, RunStatus.FINISHED, exit_code=0, ended_at=clock.now)

    clock.on_sleep = supervisor
    final = wait(store, record.run_id)
    assert final is not None
    assert (final.status, final.exit_code, final.ended_at) == (RunStatus.FINISHED, 0, clock.now)
    assert clock.sleeps == 4


def test_wait_for_a_run_whose_supervisor_is_gone_returns_it_failed(
    store: Store, clock: ShellClock, gone: dict[str, Any]
) -> None:
    record = insert_run(store, clock, **gone)
    final = wait(store, record.run_id, timeout=10.0)
    assert final is not None
    assert final.status is RunStatus.FAILED
    assert clock.sleeps == 0


# --- follow -------------------------------------------------------------------------------------------------


def logged_run(store: Store, clock: FakeClock, tmp_path: Path, text: bytes, **fields: Any) -> RunRecord:
    log = tmp_path / "output.log"
    log.write_bytes(text)
    return insert_run(store, clock, log_path=str(log), **fields)


def test_follow_of_a_final_run_writes_its_whole_log(store: Store, clock: ShellClock, tmp_path: Path) -> None:
    record = logged_run(store, clock, tmp_path, b"epoch 1\nepoch 2\n", status=RunStatus.FINISHED)
    written: list[bytes] = []
    assert follow(store, record.run_id, written.append) == record
    assert b"".join(written) == b"epoch 1\nepoch 2\n"


def test_follow_without_following_writes_the_log_so_far_and_returns(
    store: Store, clock: ShellClock, tmp_path: Path, alive: dict[str, Any]
) -> None:
    record = logged_run(store, clock, tmp_path, b"so far\n", **alive)
    written: list[bytes] = []
    assert follow(store, record.run_id, written.append, follow=False) == record
    assert written == [b"so far\n"]
    assert clock.sleeps == 0


def test_follow_writes_what_is_appended_until_the_run_ends(
    store: Store, clock: ShellClock, tmp_path: Path, alive: dict[str, Any]
) -> None:
    record = logged_run(store, clock, tmp_path, b"a\n", **alive)
    log = tmp_path / "output.log"

    def workload(sleeps: int) -> None:
        if sleeps > 5:
            return
        with log.open("ab") as out:
            out.write(f"line {sleeps}\n".encode())
        if sleeps == 5:  # its last words, then it ends: the follower sees the end only later
            store.transition(record.run_id, RunStatus.FINISHED, exit_code=0)

    clock.on_sleep = workload
    written: list[bytes] = []
    final = follow(store, record.run_id, written.append)
    assert final is not None
    assert final.status is RunStatus.FINISHED
    assert b"".join(written) == b"a\n" + b"".join(f"line {n}\n".encode() for n in range(1, 6))
    assert clock.sleeps == 6  # the status is read every STATUS_POLL, the log every FOLLOW_POLL


def test_follow_with_a_timeout_gives_up_on_a_supervised_run(
    store: Store, clock: ShellClock, tmp_path: Path, alive: dict[str, Any]
) -> None:
    record = logged_run(store, clock, tmp_path, b"", **alive)
    written: list[bytes] = []
    start = clock.now
    assert follow(store, record.run_id, written.append, timeout=0.25) is None
    assert written == []
    assert 0.25 <= clock.now - start <= 0.25 + FOLLOW_POLL + 1e-6


def test_follow_of_a_run_without_its_log_file_writes_nothing(store: Store, clock: ShellClock) -> None:
    record = insert_run(store, clock, status=RunStatus.FINISHED, log_path="/nonexistent/output.log")
    written: list[bytes] = []
    assert follow(store, record.run_id, written.append) == record
    assert written == []


def test_following_a_pipeline_with_its_steps_prefixes_their_lines(store: Store, tmp_path: Path) -> None:
    """Whole lines, each after its step's name; a last line without its newline comes at the end; a
    reused step (whose log is another run's) is not shown again."""
    clock = FakeClock()
    (tmp_path / "pipeline.log").write_text("train: Running\n")
    pipeline = insert_run(
        store,
        clock,
        kind=RunKind.PIPELINE,
        status=RunStatus.FINISHED,
        log_path=str(tmp_path / "pipeline.log"),
    )
    (tmp_path / "train.log").write_text("epoch 1\nepoch 2\nlast without newline")
    (tmp_path / "old.log").write_text("from an older run\n")
    for step, log in (("train", "train.log"), ("reused", "old.log")):
        insert_run(
            store,
            clock,
            kind=RunKind.STEP,
            status=RunStatus.FINISHED,
            parent_run_id=pipeline.run_id,
            step=step,
            log_path=str(tmp_path / log),
            reused_from=pipeline.run_id if step == "reused" else None,
        )
    written: list[bytes] = []
    final = follow(store, pipeline.run_id, written.append, steps=True)
    assert final is not None and final.is_final
    text = b"".join(written).decode()
    assert text.splitlines() == [
        "[train] epoch 1",
        "[train] epoch 2",
        "train: Running",
        "[train] last without newline",
    ]
    written.clear()
    follow(store, pipeline.run_id, written.append)  # without steps: the pipeline's own log only
    assert b"".join(written) == b"train: Running\n"
