"""The supervisor's rules with a fake workload and a fake clock (tests/fakes.py): how a run ends, which
signals a stop sends and when, in milliseconds. The same rules are checked against real process trees
in test_supervision.py and test_stopping.py."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from mlproj.execution.supervisor import Supervisor
from mlproj.process import DEFAULT_GRACE, KILL_WAIT, LEFTOVER_GRACE
from mlproj.runs.outcome import TIMED_OUT
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store
from tests.fakes import FakeBackend, FakeClock, FakeWorkload, Script, install_fake_backend, record_run

TERM, KILL, INT = int(signal.SIGTERM), int(signal.SIGKILL), int(signal.SIGINT)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return install_fake_backend(monkeypatch)


def supervise(store: Store, tmp_path: Path, script: Script, **record: Any) -> tuple[RunRecord, FakeWorkload]:
    """Record a run of `script`, supervise it to its end; its final record and its workload."""
    final = supervise_only(store, tmp_path, script, **record)
    return final, FakeBackend.launched[-1]


def duration(record: RunRecord) -> float:
    assert record.started_at is not None and record.ended_at is not None
    return record.ended_at - record.started_at


def supervise_only(store: Store, tmp_path: Path, script: Script, **record: Any) -> RunRecord:
    command = f"fake-{len(FakeBackend.scripts)}"
    FakeBackend.scripts[command] = script
    run = record_run(store, tmp_path, command, **record)
    return Supervisor(store, run.run_id).run()


def test_an_exit_of_0_is_finished(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    final, workload = supervise(store, tmp_path, Script(exit_code=0, runs_for=3.0))
    assert (final.status, final.exit_code, final.error) == (RunStatus.FINISHED, 0, None)
    assert workload.signals == []
    assert workload.released
    assert duration(final) == pytest.approx(3.0, abs=0.06)


def test_another_exit_code_fails_with_it(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    final, _ = supervise(store, tmp_path, Script(exit_code=3, runs_for=0.5))
    assert (final.status, final.exit_code) == (RunStatus.FAILED, 3)
    assert final.error == "the command exited with code 3"


def test_a_cancel_from_another_shell_climbs_the_ladder(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    """`mlproj cancel` asks through the store; the supervisor sees it within CANCEL_POLL and sends
    SIGTERM, then SIGKILL after the run's grace to a workload that ignores SIGTERM."""
    asked: list[float] = []

    def cancel_at_2(elapsed: float) -> None:
        if elapsed >= 2.0 and not asked:
            asked.append(elapsed)
            store.transition(run_id[0], RunStatus.CANCEL_REQUESTED)

    run_id: list[str] = []
    FakeBackend.scripts["hang"] = Script(runs_for=1000.0, ignores=(TERM,), on_wait=cancel_at_2)
    run = record_run(store, tmp_path, "hang", grace=4.0)
    run_id.append(run.run_id)
    final = Supervisor(store, run.run_id).run()
    (workload,) = FakeBackend.launched
    (term_at, term), (kill_at, kill) = workload.signals
    assert (term, kill) == (TERM, KILL)
    assert 2.0 <= term_at <= 2.0 + 0.25 + 0.06  # within CANCEL_POLL of the request
    assert kill_at - term_at == pytest.approx(4.0, abs=0.06)  # the run's grace
    assert (final.status, final.error) == (RunStatus.CANCELED, "canceled by mlproj cancel")
    assert final.exit_code == 128 + KILL


def test_a_workload_that_stops_on_sigterm_gets_nothing_more(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    def cancel(elapsed: float) -> None:
        run_id = FakeBackend.launched[0].run_id
        if elapsed >= 1.0 and store.get(run_id).status is RunStatus.RUNNING:
            store.transition(run_id, RunStatus.CANCEL_REQUESTED)

    script = Script(runs_for=1000.0, dies_after=0.5, on_wait=cancel)
    FakeBackend.scripts["polite"] = script
    run = record_run(store, tmp_path, "polite")
    final = Supervisor(store, run.run_id).run()
    (workload,) = FakeBackend.launched
    assert [sig for _, sig in workload.signals] == [TERM]
    assert (final.status, final.exit_code) == (RunStatus.CANCELED, 128 + TERM)


def test_the_timeout_cancels_a_run_and_fails_a_step(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    project, workload = supervise(store, tmp_path, Script(runs_for=1000.0), timeout=5.0)
    assert project.status is RunStatus.CANCELED
    assert project.error == f"{TIMED_OUT} 5 s"
    ((term_at, term),) = workload.signals
    assert term == TERM
    assert term_at == pytest.approx(5.0, abs=0.06)
    step, _ = supervise(store, tmp_path, Script(runs_for=1000.0), timeout=5.0, kind=RunKind.STEP)
    assert (step.status, step.error) == (RunStatus.FAILED, f"{TIMED_OUT} 5 s")  # a step may be retried


def test_leftovers_of_a_finished_run_climb_their_own_ladder(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    """The main process exited 0 and left something running that ignores SIGTERM: SIGTERM, SIGKILL
    after LEFTOVER_GRACE; the run is still Finished."""
    final, workload = supervise(
        store, tmp_path, Script(runs_for=1.0, leftover=True, leftover_ignores=(TERM,))
    )
    (term_at, term), (kill_at, kill) = workload.signals
    assert (term, kill) == (TERM, KILL)
    assert term_at == pytest.approx(1.0, abs=0.06)
    assert kill_at - term_at == pytest.approx(LEFTOVER_GRACE, abs=0.06)
    assert (final.status, final.exit_code) == (RunStatus.FINISHED, 0)


def test_a_missing_output_fails_a_run_that_exited_0(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    FakeBackend.scripts["ok"] = Script()
    run = record_run(store, tmp_path, "ok")
    final = Supervisor(store, run.run_id, check_outputs=lambda: "output model was not written").run()
    assert (final.status, final.error, final.exit_code) == (
        RunStatus.FAILED,
        "output model was not written",
        0,
    )


def test_a_workload_that_cannot_start_fails_the_run(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    final = supervise_only(store, tmp_path, Script(fails_to_start=PermissionError(13, "Permission denied")))
    assert FakeBackend.launched == []
    assert final.status is RunStatus.FAILED
    assert final.error == "cannot start the command: [Errno 13] Permission denied"
    assert final.ended_at is not None


def test_a_run_canceled_before_it_starts_never_starts(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    FakeBackend.scripts["never"] = Script()
    run = record_run(store, tmp_path, "never")
    store.transition(run.run_id, RunStatus.CANCEL_REQUESTED)
    final = Supervisor(store, run.run_id).run()
    assert FakeBackend.launched == []
    assert (final.status, final.error) == (RunStatus.CANCELED, "canceled by mlproj cancel")
    assert final.started_at is None


def test_sigterm_to_the_supervisor_cancels(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    supervisor: list[Supervisor] = []

    def sigterm_at_1(elapsed: float) -> None:
        if elapsed >= 1.0:
            supervisor[0].flags.stop_signal = "SIGTERM"

    FakeBackend.scripts["term"] = Script(runs_for=1000.0, on_wait=sigterm_at_1)
    run = record_run(store, tmp_path, "term")
    supervisor.append(Supervisor(store, run.run_id))
    final = supervisor[0].run()
    assert (final.status, final.error) == (RunStatus.CANCELED, "canceled: the supervisor received SIGTERM")
    assert [sig for _, sig in FakeBackend.launched[0].signals] == [TERM]


def test_ctrl_c_sends_sigint_first_and_each_further_press_climbs_a_rung(
    store: Store, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_INTERRUPT_TIMEOUT", "30")
    supervisor: list[Supervisor] = []
    presses = {1.0: 1, 2.0: 2}  # elapsed → presses so far

    def press(elapsed: float) -> None:
        for at, count in presses.items():
            if elapsed >= at:
                supervisor[0].flags.interrupts = max(supervisor[0].flags.interrupts, count)

    FakeBackend.scripts["stubborn"] = Script(runs_for=1000.0, ignores=(INT, TERM), on_wait=press)
    run = record_run(store, tmp_path, "stubborn")
    supervisor.append(Supervisor(store, run.run_id))
    final = supervisor[0].run()
    sent = FakeBackend.launched[0].signals
    assert [sig for _, sig in sent] == [INT, TERM, KILL]
    assert sent[0][0] == pytest.approx(1.0, abs=0.06)
    assert sent[1][0] == pytest.approx(2.0, abs=0.06)  # the second press: SIGTERM now, not after 30 s
    assert sent[2][0] - sent[1][0] == pytest.approx(DEFAULT_GRACE, abs=0.06)
    assert (final.status, final.error) == (RunStatus.CANCELED, "canceled by Ctrl-C")


def test_a_stop_that_cannot_kill_ends_after_the_last_rung(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    """A leftover that outlives SIGKILL (a process stuck in the kernel): the supervisor does not wait for
    ever; after SIGKILL's own wait it records the run."""
    script = Script(runs_for=0.1, leftover=True, leftover_ignores=(TERM,), unkillable_leftover=True)
    final, workload = supervise(store, tmp_path, script)
    (term_at, term), (kill_at, kill) = workload.signals
    assert (term, kill) == (TERM, KILL)
    assert kill_at - term_at == pytest.approx(LEFTOVER_GRACE, abs=0.06)
    assert clock.now - workload.began == pytest.approx(0.1 + LEFTOVER_GRACE + KILL_WAIT, abs=0.1)
    assert final.status is RunStatus.FINISHED


def test_a_queued_cluster_job_is_queued_then_running(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    seen: list[tuple[RunStatus, str | None]] = []

    def note(elapsed: float) -> None:
        current = store.get(FakeBackend.launched[0].run_id)
        if not seen or seen[-1] != (current.status, current.backend_state):
            seen.append((current.status, current.backend_state))

    script = Script(queued_for=3.0, runs_for=2.0, on_wait=note)
    final, _ = supervise(store, tmp_path, script, backend="fake-cluster")
    assert seen[0] == (RunStatus.QUEUED, "PENDING")
    assert (RunStatus.RUNNING, "RUNNING") in seen
    assert (final.status, final.job_id, final.backend_state) == (RunStatus.FINISHED, "fake-1", "RUNNING")
    assert duration(final) == pytest.approx(2.0, abs=0.06)


def test_a_job_that_is_not_started_on_a_backend_that_does_not_queue_is_stopped(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    """A backend that says nothing of queues was recorded Running at launch: a workload that then says
    it has not started cannot go back to Queued, and is stopped rather than left in a status that lies."""
    final, workload = supervise(store, tmp_path, Script(queued_for=3.0, runs_for=2.0))
    assert workload.signals and workload.signals[0][1] == TERM
    assert final.status is RunStatus.CANCELED


def test_how_a_cluster_says_a_job_ended_wins(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    script = Script(exit_code=1, runs_for=1.0, ending=(RunStatus.CANCELED, "canceled on the cluster"))
    final, _ = supervise(store, tmp_path, script, backend="fake-cluster")
    assert (final.status, final.error) == (RunStatus.CANCELED, "canceled on the cluster")


def test_the_run_starts_when_its_environment_is_ready(
    store: Store, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/decisions.md: building the environment is not part of the timeout, nor of the run's time."""
    prepare = Supervisor._prepare

    def slow_build(self: Supervisor, *args: Any, **kwargs: Any) -> Any:
        clock.advance(30.0)  # an environment build of 30 seconds
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(Supervisor, "_prepare", slow_build)
    begun = clock.now
    final, workload = supervise(store, tmp_path, Script(runs_for=1000.0), timeout=5.0)
    assert final.started_at == pytest.approx(begun + 30.0, abs=0.06)
    assert (final.status, final.error) == (RunStatus.CANCELED, f"{TIMED_OUT} 5 s")
    ((term_at, term),) = workload.signals
    assert term == TERM
    assert term_at == pytest.approx(5.0, abs=0.06)  # 5 s of the workload, not of the build
    assert duration(final) == pytest.approx(5.0, abs=0.1)
