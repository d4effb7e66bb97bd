"""Reconciliation: what any command that reads a run makes of it when its supervisor may be gone. Runs
are recorded straight into a real store; supervisors are this test process (alive) or a `sleep` that
was started and killed here (gone); a cluster's job is answered by a test backend; time is a fake clock."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest

import mlproj.execution.ladder
import mlproj.execution.reconcile
from mlproj.backends import BACKENDS
from mlproj.backends.workload import JobState
from mlproj.errors import MlprojError, RunNotFoundError
from mlproj.execution.reconcile import (
    end_processes,
    environments_in_use,
    find_run,
    reconcile,
    run_processes,
)
from mlproj.process import Proc, identity
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store
from tests.fakes import FakeClock, FakeClusterBackend, insert_run, install_fake_backend

GONE_REASON = (
    "the supervising process (pid {pid}) is gone: mlproj was killed "
    "or the machine restarted; what was left of the run's processes was ended"
)


class JobBackend(FakeClusterBackend):
    """A cluster that answers for jobs whose supervisor is gone: `states` by job ID (absent: the cluster
    forgot the job), or `failure` raised; it notes what it was asked to do."""

    states: ClassVar[dict[str, JobState]] = {}
    failure: ClassVar[MlprojError | None] = None
    asked: ClassVar[list[str]] = []
    canceled: ClassVar[list[tuple[str, float]]] = []
    collected: ClassVar[list[str]] = []

    def job_state(self, record: RunRecord) -> JobState | None:
        self.asked.append(record.job_id or "")
        if self.failure is not None:
            raise self.failure
        return self.states.get(record.job_id or "")

    def cancel_job(self, record: RunRecord, grace: float) -> None:
        self.canceled.append((record.job_id or "", grace))

    def collect_logs(self, record: RunRecord) -> None:
        self.collected.append(record.job_id or "")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One fake clock for reconciliation and the ladder; `fake` and `fake-cluster` (JobBackend) backends."""
    fake = install_fake_backend(monkeypatch)
    monkeypatch.setattr(mlproj.execution.reconcile, "time", fake)
    monkeypatch.setitem(BACKENDS, "fake-cluster", ("tests.test_reconcile", "JobBackend"))
    monkeypatch.setattr(JobBackend, "states", {})
    monkeypatch.setattr(JobBackend, "failure", None)
    monkeypatch.setattr(JobBackend, "asked", [])
    monkeypatch.setattr(JobBackend, "canceled", [])
    monkeypatch.setattr(JobBackend, "collected", [])
    return fake


@pytest.fixture
def gone() -> dict[str, Any]:
    """Supervisor fields naming a process that has exited (a `sleep` started and killed here)."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        found = identity(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert found is not None
    assert identity(proc.pid) is None
    return {"supervisor_pid": proc.pid, "supervisor_identity": found}


@pytest.fixture
def alive() -> dict[str, Any]:
    """Supervisor fields naming this test process."""
    return {"supervisor_pid": os.getpid(), "supervisor_identity": identity(os.getpid())}


def gone_reason(supervisor: dict[str, Any]) -> str:
    return GONE_REASON.format(pid=supervisor["supervisor_pid"])


# --- the supervisor ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.SKIPPED]
)
def test_a_final_run_is_returned_unchanged(
    store: Store, clock: FakeClock, gone: dict[str, Any], status: RunStatus
) -> None:
    record = insert_run(store, clock, status=status, **gone)
    assert reconcile(store, record) is record
    assert store.get(record.run_id) == record


def test_a_run_whose_supervisor_is_alive_is_left_alone(
    store: Store, clock: FakeClock, alive: dict[str, Any]
) -> None:
    record = insert_run(store, clock, **alive)
    assert reconcile(store, record) == record
    assert store.get(record.run_id) == record


def test_a_run_whose_supervisor_is_gone_fails_with_the_reason(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    record = insert_run(store, clock, started_at=clock.now - 30.0, **gone)
    result = reconcile(store, record)
    assert (result.status, result.error) == (RunStatus.FAILED, gone_reason(gone))
    assert (result.started_at, result.ended_at) == (clock.now - 30.0, clock.now)
    assert store.get(record.run_id) == result


@pytest.mark.parametrize("status", [RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.CANCEL_REQUESTED])
def test_an_unstarted_or_stopping_run_whose_supervisor_is_gone_fails_too(
    store: Store, clock: FakeClock, gone: dict[str, Any], status: RunStatus
) -> None:
    record = insert_run(store, clock, status=status, **gone)
    result = reconcile(store, record)
    assert (result.status, result.error) == (RunStatus.FAILED, gone_reason(gone))


def test_a_supervisor_pid_now_running_another_program_counts_as_gone(store: Store, clock: FakeClock) -> None:
    """The PID is this very process, but not the one recorded (another start time): it was reused."""
    record = insert_run(store, clock, supervisor_pid=os.getpid(), supervisor_identity="0:0")
    result = reconcile(store, record)
    assert (result.status, result.error) == (RunStatus.FAILED, GONE_REASON.format(pid=os.getpid()))


@pytest.mark.parametrize(("age", "left_alone"), [(0.0, True), (4.9, True), (5.0, False), (3600.0, False)])
def test_a_run_created_less_than_5_seconds_ago_without_a_supervisor_is_left_alone(
    store: Store, clock: FakeClock, age: float, left_alone: bool
) -> None:
    record = insert_run(store, clock, status=RunStatus.NOT_STARTED, created_at=clock.now - age)
    result = reconcile(store, record)
    if left_alone:
        assert result == record
    else:
        assert result.status is RunStatus.FAILED
        assert result.error == (
            "the supervising process never took the run over: mlproj was killed or the machine "
            "restarted; what was left of the run's processes was ended"
        )


def test_a_young_run_whose_recorded_supervisor_is_gone_is_not_spared(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    record = insert_run(store, clock, created_at=clock.now - 1.0, **gone)
    assert reconcile(store, record).status is RunStatus.FAILED


def test_a_run_that_ended_just_before_its_supervisor_exited_keeps_its_ending(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    """The record in hand is stale: the store already says how the run ended."""
    stale = insert_run(store, clock, **gone)
    store.transition(stale.run_id, RunStatus.FINISHED, exit_code=0, ended_at=clock.now - 1.0)
    result = reconcile(store, stale)
    assert (result.status, result.exit_code, result.error) == (RunStatus.FINISHED, 0, None)
    assert result.ended_at == clock.now - 1.0


# --- pipelines and their steps ----------------------------------------------------------------------------


def pipeline_with_steps(
    store: Store, clock: FakeClock, supervisor: dict[str, Any], status: RunStatus = RunStatus.RUNNING
) -> tuple[RunRecord, dict[RunStatus, RunRecord]]:
    """A pipeline run and one step in each of Finished, Running, Queued and NotStarted."""
    pipeline = insert_run(store, clock, kind=RunKind.PIPELINE, status=status, **supervisor)
    steps = {
        step_status: insert_run(
            store,
            clock,
            kind=RunKind.STEP,
            status=step_status,
            parent_run_id=pipeline.run_id,
            step=step_status.value.lower(),
        )
        for step_status in (RunStatus.FINISHED, RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.NOT_STARTED)
    }
    return pipeline, steps


def test_a_pipeline_whose_supervisor_is_gone_fails_its_unfinished_steps(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    pipeline, steps = pipeline_with_steps(store, clock, gone)
    result = reconcile(store, pipeline)
    assert (result.status, result.error) == (RunStatus.FAILED, gone_reason(gone))
    why = f"the pipeline's supervising process (pid {gone['supervisor_pid']}) is gone"
    after = {status: store.get(step.run_id) for status, step in steps.items()}
    assert after[RunStatus.FINISHED] == steps[RunStatus.FINISHED]
    assert (after[RunStatus.RUNNING].status, after[RunStatus.RUNNING].error) == (RunStatus.FAILED, why)
    for waiting in (RunStatus.QUEUED, RunStatus.NOT_STARTED):
        assert (after[waiting].status, after[waiting].error) == (RunStatus.SKIPPED, f"never started: {why}")
        assert after[waiting].ended_at == clock.now


def test_a_step_is_reconciled_through_its_pipeline(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    pipeline, steps = pipeline_with_steps(store, clock, gone)
    result = reconcile(store, steps[RunStatus.RUNNING])
    why = f"the pipeline's supervising process (pid {gone['supervisor_pid']}) is gone"
    assert (result.status, result.error) == (RunStatus.FAILED, why)
    parent = store.get(pipeline.run_id)
    assert (parent.status, parent.error) == (RunStatus.FAILED, gone_reason(gone))
    assert store.get(steps[RunStatus.QUEUED].run_id).status is RunStatus.SKIPPED


def test_a_step_of_a_supervised_pipeline_is_left_alone(
    store: Store, clock: FakeClock, alive: dict[str, Any]
) -> None:
    """A step has no supervisor of its own: its pipeline's counts."""
    pipeline, steps = pipeline_with_steps(store, clock, alive)
    for step in steps.values():
        assert reconcile(store, step) == step
    assert store.get(pipeline.run_id) == pipeline


@pytest.mark.parametrize(
    ("status", "ending", "error"),
    [
        (RunStatus.RUNNING, RunStatus.FAILED, "its pipeline's supervisor is gone"),
        (RunStatus.QUEUED, RunStatus.SKIPPED, "never started: its pipeline's supervisor is gone"),
    ],
)
def test_an_unfinished_step_of_an_ended_pipeline_ends_too(
    store: Store, clock: FakeClock, alive: dict[str, Any], status: RunStatus, ending: RunStatus, error: str
) -> None:
    pipeline = insert_run(store, clock, kind=RunKind.PIPELINE, status=RunStatus.FAILED, **alive)
    step = insert_run(store, clock, kind=RunKind.STEP, status=status, parent_run_id=pipeline.run_id, step="s")
    result = reconcile(store, step)
    assert (result.status, result.error, result.ended_at) == (ending, error, clock.now)
    assert store.get(pipeline.run_id) == pipeline


# --- a cluster's job ---------------------------------------------------------------------------------------


def job(store: Store, clock: FakeClock, supervisor: dict[str, Any], **fields: Any) -> RunRecord:
    return insert_run(store, clock, **{"backend": "fake-cluster", "job_id": "J-7", **supervisor, **fields})


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.PREPARING])
def test_a_job_still_pending_stays_queued_with_the_cluster_state(
    store: Store, clock: FakeClock, gone: dict[str, Any], status: RunStatus
) -> None:
    JobBackend.states["J-7"] = JobState(RunStatus.QUEUED, "PENDING")
    record = job(store, clock, gone, status=status)
    result = reconcile(store, record)
    assert (result.status, result.backend_state, result.started_at) == (status, "PENDING", None)
    assert (result.error, result.ended_at) == (None, None)
    assert JobBackend.asked == ["J-7"]
    assert JobBackend.canceled == []


def test_a_queued_job_the_cluster_started_becomes_running(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    JobBackend.states["J-7"] = JobState(RunStatus.RUNNING, "RUNNING")
    record = job(store, clock, gone, status=RunStatus.QUEUED, backend_state="PENDING")
    result = reconcile(store, record)
    assert (result.status, result.backend_state) == (RunStatus.RUNNING, "RUNNING")
    assert result.started_at == clock.now
    assert result.ended_at is None


def test_a_running_job_goes_on_unchanged(store: Store, clock: FakeClock, gone: dict[str, Any]) -> None:
    JobBackend.states["J-7"] = JobState(RunStatus.RUNNING, "RUNNING")
    record = job(store, clock, gone, backend_state="RUNNING", started_at=clock.now - 30.0)
    assert reconcile(store, record) == record
    assert JobBackend.canceled == []
    assert JobBackend.collected == []


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (JobState(RunStatus.FINISHED, "COMPLETED", exit_code=0), None),
        (JobState(RunStatus.FAILED, "FAILED", exit_code=3), "the command exited with code 3"),
        (
            JobState(RunStatus.FAILED, "TIMEOUT", exit_code=0, reason="the job reached its time limit"),
            "the job reached its time limit",
        ),
        (JobState(RunStatus.FAILED, "OUT_OF_MEMORY", exit_code=137, reason="out of memory"), "out of memory"),
        (
            JobState(RunStatus.CANCELED, "CANCELLED", reason="canceled on the cluster (CANCELLED)"),
            "canceled on the cluster (CANCELLED)",
        ),
    ],
)
def test_a_job_that_ended_is_recorded_as_the_cluster_says(
    store: Store, clock: FakeClock, gone: dict[str, Any], state: JobState, error: str | None
) -> None:
    JobBackend.states["J-7"] = state
    record = job(store, clock, gone, backend_state="RUNNING", started_at=clock.now - 30.0)
    result = reconcile(store, record)
    assert (result.status, result.exit_code, result.error) == (state.status, state.exit_code, error)
    assert result.backend_state == state.native
    assert (result.started_at, result.ended_at) == (clock.now - 30.0, clock.now)
    assert JobBackend.collected == ["J-7"]  # its output is brought into the run's log
    assert JobBackend.canceled == []  # nothing left to cancel


def test_a_queued_job_that_ended_unseen_gets_both_times_now(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    JobBackend.states["J-7"] = JobState(RunStatus.FINISHED, "COMPLETED", exit_code=0)
    result = reconcile(store, job(store, clock, gone, status=RunStatus.QUEUED))
    assert (result.status, result.started_at, result.ended_at) == (RunStatus.FINISHED, clock.now, clock.now)


def test_a_job_that_ended_unseen_keeps_the_clusters_own_times(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    """docs/decisions.md: a cluster job's times are the cluster's own, also when the supervisor that
    would have recorded them is gone."""
    started, ended = clock.now - 500.0, clock.now - 400.0
    state = JobState(RunStatus.FINISHED, "COMPLETED", exit_code=0, started_at=started, ended_at=ended)
    JobBackend.states["J-7"] = state
    result = reconcile(store, job(store, clock, gone, status=RunStatus.QUEUED))
    assert (result.status, result.started_at, result.ended_at) == (RunStatus.FINISHED, started, ended)


def test_a_queued_job_found_running_starts_when_the_cluster_started_it(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    JobBackend.states["J-7"] = JobState(RunStatus.RUNNING, "RUNNING", started_at=clock.now - 500.0)
    result = reconcile(store, job(store, clock, gone, status=RunStatus.QUEUED))
    assert (result.status, result.started_at) == (RunStatus.RUNNING, clock.now - 500.0)


def test_a_job_canceled_as_asked_says_so(store: Store, clock: FakeClock, gone: dict[str, Any]) -> None:
    JobBackend.states["J-7"] = JobState(RunStatus.CANCELED, "CANCELLED", reason="canceled on the cluster")
    result = reconcile(store, job(store, clock, gone, status=RunStatus.CANCEL_REQUESTED))
    assert (result.status, result.error) == (RunStatus.CANCELED, "canceled by mlproj cancel")


def test_a_job_the_cluster_forgot_fails(store: Store, clock: FakeClock, gone: dict[str, Any]) -> None:
    result = reconcile(store, job(store, clock, gone))
    assert (result.status, result.error) == (
        RunStatus.FAILED,
        "the cluster no longer knows fake-cluster job J-7",
    )
    assert result.ended_at == clock.now
    assert JobBackend.canceled == [("J-7", 2.0)]  # whatever is left of it is released


def test_a_backend_that_cannot_answer_fails_the_run_with_its_reason(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    JobBackend.failure = MlprojError("scontrol: connection refused")
    result = reconcile(store, job(store, clock, gone))
    assert (result.status, result.error) == (
        RunStatus.FAILED,
        "its backend cannot be asked about job J-7: scontrol: connection refused",
    )


def test_a_job_of_an_unknown_backend_fails_with_the_reason(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    result = reconcile(store, job(store, clock, gone, backend="nowhere"))
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("its backend cannot be asked about job J-7: unknown backend 'nowhere'")


def test_the_cluster_is_not_asked_about_a_supervised_job(
    store: Store, clock: FakeClock, alive: dict[str, Any]
) -> None:
    record = job(store, clock, alive)
    assert reconcile(store, record) == record
    assert JobBackend.asked == []


# --- environments, finding runs --------------------------------------------------------------------------


def test_environments_in_use_are_those_of_runs_really_unfinished(
    store: Store, clock: FakeClock, alive: dict[str, Any], gone: dict[str, Any]
) -> None:
    insert_run(store, clock, env_fingerprint="fp-a", env_path="/envs/a", **alive)
    lost = insert_run(store, clock, env_fingerprint="fp-b", env_path="/envs/b", **gone)
    insert_run(store, clock, status=RunStatus.FINISHED, env_fingerprint="fp-c", env_path="/envs/c", **alive)
    insert_run(store, clock, status=RunStatus.QUEUED, env_path="/envs/d", **alive)
    insert_run(store, clock)  # no environment at all
    assert environments_in_use(store) == {"fp-a", "/envs/a", "/envs/d"}
    assert store.get(lost.run_id).status is RunStatus.FAILED  # reconciled on the way


def test_no_environment_is_in_use_in_an_empty_store(store: Store, clock: FakeClock) -> None:
    assert environments_in_use(store) == set()


def test_find_run_resolves_an_id_or_a_prefix_and_reconciles(
    store: Store, clock: FakeClock, gone: dict[str, Any]
) -> None:
    record = insert_run(store, clock, **gone)
    by_prefix = find_run(store, record.run_id[:6].upper())
    assert by_prefix.run_id == record.run_id
    assert by_prefix.status is RunStatus.FAILED
    assert find_run(store, record.run_id) == by_prefix


@pytest.mark.parametrize("text", ["abc", "zzzzzz", "abcd-1234", ""])
def test_find_run_refuses_what_is_not_a_run_id_prefix(store: Store, clock: FakeClock, text: str) -> None:
    with pytest.raises(RunNotFoundError) as info:
        find_run(store, text)
    assert str(info.value) == (
        f"run {text!r}: no run has this name; expected a run ID (or a prefix of at least 4 hex "
        "characters), a run name or last"
    )


def test_find_run_names_an_unknown_prefix(store: Store, clock: FakeClock) -> None:
    insert_run(store, clock, run_id="1" * 32)
    with pytest.raises(RunNotFoundError) as info:
        find_run(store, "ffff")
    assert str(info.value) == f"no run with ID 'ffff' in {store.home.db_file}"


def test_find_run_lists_the_runs_an_ambiguous_prefix_matches(store: Store, clock: FakeClock) -> None:
    first, second = "abcd" + "0" * 28, "abcd" + "1" * 28
    insert_run(store, clock, run_id=second, status=RunStatus.FINISHED)
    insert_run(store, clock, run_id=first, status=RunStatus.FINISHED)
    with pytest.raises(RunNotFoundError) as info:
        find_run(store, "abcd")
    assert str(info.value) == f"run ID prefix 'abcd' is ambiguous: {first}, {second}"
    assert find_run(store, "abcd1").run_id == second


# --- a run's processes -------------------------------------------------------------------------------------


def test_run_processes_name_the_leader_only_with_its_identity(store: Store, clock: FakeClock) -> None:
    with_leader = insert_run(store, clock, pid=4242, pid_identity="b:1")
    without = insert_run(store, clock, pid=4242)
    assert run_processes(with_leader).leader == Proc(4242, "b:1")
    assert run_processes(with_leader).run_id == with_leader.run_id
    assert run_processes(without).leader is None
    assert run_processes(without).cgroup is None


def test_run_processes_use_the_run_cgroup(store: Store, clock: FakeClock, tmp_path: Path) -> None:
    record = insert_run(store, clock, cgroup=str(tmp_path / "cg"))
    assert run_processes(record).cgroup == tmp_path / "cg"


def test_ending_the_processes_of_a_run_whose_process_is_gone_does_nothing(
    store: Store, clock: FakeClock, gone: dict[str, Any], tmp_path: Path
) -> None:
    record = insert_run(
        store,
        clock,
        pid=gone["supervisor_pid"],
        pid_identity=gone["supervisor_identity"],
        cgroup=str(tmp_path / "no-such-cgroup"),
    )
    start = clock.now
    end_processes(record)
    end_processes(record, 0.0)
    assert clock.now == start  # nothing was running: no rung was climbed, nothing waited for


def test_ending_the_processes_of_a_run_stops_its_live_leader(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `sleep` in a session of its own stands for the run's main process: SIGTERM ends it."""
    import time

    monkeypatch.setattr(mlproj.execution.ladder, "time", time)  # a real process dies in real time
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        record = insert_run(store, clock, pid=proc.pid, pid_identity=identity(proc.pid))
        end_processes(record, grace=5.0)
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
