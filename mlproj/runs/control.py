"""What other shells do to a run: reconcile it, cancel it, wait for it, follow its log."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlproj import process
from mlproj.execution.ladder import climb, rungs
from mlproj.proctree import RunProcesses, remove_cgroup
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store

FOLLOW_POLL = 0.1  # how often a follower reads the log
STATUS_POLL = 0.25  # how often a follower or waiter reads the run's status
CANCEL_MARGIN = 10.0  # beyond the grace period, how long `cancel` waits for the supervisor


def run_processes(record: RunRecord) -> RunProcesses:
    """How to find the processes of a recorded run: its cgroup, or its main process (identity-checked)
    and its environment marker."""
    leader = process.Proc(record.pid, record.pid_identity) if record.pid and record.pid_identity else None
    return RunProcesses(record.run_id, cgroup=Path(record.cgroup) if record.cgroup else None, leader=leader)


def end_processes(record: RunRecord, grace: float = process.LEFTOVER_GRACE) -> None:
    """End every process of a run that its supervisor no longer watches: SIGTERM, SIGKILL after `grace`."""
    target = run_processes(record)
    climb(target, rungs(grace))
    remove_cgroup(target.cgroup)


def reconcile(store: Store, record: RunRecord) -> RunRecord:
    """A run whose supervisor is gone becomes `Failed` with the reason; its processes are ended.

    A pipeline step is supervised by its pipeline's supervisor: it is reconciled with its pipeline,
    whose unfinished steps end with it."""
    if record.is_final:
        return record
    if record.kind == "step" and record.parent_run_id:
        parent = store.get(record.parent_run_id)
        if not parent.is_final:
            reconcile(store, parent)
        current = store.get(record.run_id)
        if current.is_final or not store.get(record.parent_run_id).is_final:
            return current
        return _lose(store, current, "its pipeline's supervisor is gone")  # a leftover of an old bug
    if process.is_alive(record.supervisor_pid, record.supervisor_identity):
        return record
    if record.supervisor_pid is None and record.created_at and time.time() - record.created_at < 5:
        return record  # being created right now: its supervisor has not recorded itself yet
    record = store.get(record.run_id)  # it may have ended just before its supervisor exited
    if record.is_final:
        return record
    if record.job_id and record.backend != "local":
        return _reconcile_job(store, record)
    reason = (
        f"the supervising process (pid {record.supervisor_pid}) is gone: mlproj was killed "
        "or the machine restarted; what was left of the run's processes was ended"
    )
    if record.kind == "pipeline":
        for step in store.list_runs(parent_run_id=record.run_id):
            if not step.is_final:
                _lose(
                    store, step, f"the pipeline's supervising process (pid {record.supervisor_pid}) is gone"
                )
    return _lose(store, record, reason)


def _reconcile_job(store: Store, record: RunRecord) -> RunRecord:
    """A cluster's job whose supervisor is gone: the cluster says what became of it. A job still
    queued or running goes on (its run follows the cluster's state); one the cluster forgot fails."""
    from mlproj.backends import get_backend
    from mlproj.errors import MlprojError

    try:
        backend = get_backend(record.backend)
        state = backend.job_state(record)
    except MlprojError as exc:
        return _lose(store, record, f"its backend cannot be asked about job {record.job_id}: {exc}")
    if state is None:
        return _lose(store, record, f"the cluster no longer knows {backend.describe_job(record)}")
    if not state.status.is_final:
        if state.native != record.backend_state:
            store.update(record.run_id, backend_state=state.native)
        if state.started and record.status in (RunStatus.QUEUED, RunStatus.PREPARING):
            store.transition(record.run_id, RunStatus.RUNNING, started_at=time.time())
        return store.get(record.run_id)
    backend.collect_logs(record)
    error = state.reason
    if state.status is RunStatus.FAILED and error is None and state.exit_code:
        error = f"the command exited with code {state.exit_code}"
    if record.status is RunStatus.CANCEL_REQUESTED and state.status is RunStatus.CANCELED:
        error = "canceled by mlproj cancel"
    now = time.time()
    store.transition(
        record.run_id,
        state.status,
        exit_code=state.exit_code,
        error=error,
        backend_state=state.native,
        started_at=record.started_at or now,
        ended_at=now,
    )
    return store.get(record.run_id)


def _lose(store: Store, record: RunRecord, reason: str) -> RunRecord:
    """End what is left of a run whose supervisor is gone and record why: `Failed` if it had started,
    `Skipped` if it was still waiting for its turn (a pipeline step)."""
    end_processes(record)
    _cleanup_outside(record)
    waiting = record.kind == "step" and record.status in (RunStatus.NOT_STARTED, RunStatus.QUEUED)
    status = RunStatus.SKIPPED if waiting else RunStatus.FAILED
    if waiting:
        reason = f"never started: {reason}"
    store.transition(record.run_id, status, error=reason, ended_at=time.time())
    return store.get(record.run_id)


def _cleanup_outside(record: RunRecord, grace: float = process.LEFTOVER_GRACE) -> None:
    """What the run left outside its process tree is released too: a container, a cluster's job."""
    from mlproj.backends import get_backend
    from mlproj.envs import get_manager
    from mlproj.errors import MlprojError

    with contextlib.suppress(MlprojError):
        get_manager(record.env_manager or "local").cleanup(record.run_id)
    if record.job_id and record.backend != "local":
        try:
            get_backend(record.backend).cancel_job(record, grace)
        except MlprojError:
            return


def _supervised(store: Store, record: RunRecord) -> bool:
    """Whether someone still supervises the run (a step: its pipeline's supervisor)."""
    if record.kind == "step" and record.parent_run_id:
        record = store.get(record.parent_run_id)
    return process.is_alive(record.supervisor_pid, record.supervisor_identity)


def end_unsupervised(store: Store, run_id: str, status: RunStatus, error: str) -> RunRecord:
    """End a run that no supervisor took over (Ctrl-C before it started), with its pipeline steps."""
    now = time.time()
    for step in store.steps_of(run_id):
        store.transition(step.run_id, status, error=error, ended_at=now)
    store.transition(run_id, status, error=error, ended_at=now)
    return store.get(run_id)


def find_run(store: Store, run_id_or_prefix: str) -> RunRecord:
    """Resolve a run ID or prefix and reconcile it."""
    return reconcile(store, store.resolve(run_id_or_prefix))


@dataclass(frozen=True)
class CancelOutcome:
    record: RunRecord
    already_final: bool


def cancel(store: Store, record: RunRecord, grace: float = process.DEFAULT_GRACE) -> CancelOutcome:
    """Ask the supervisor to stop the run (SIGTERM, SIGKILL after `grace`) and wait until it has."""
    record = reconcile(store, record)
    if record.is_final:
        return CancelOutcome(record, already_final=True)
    store.update(record.run_id, grace=grace)
    store.transition(record.run_id, RunStatus.CANCEL_REQUESTED)
    deadline = time.monotonic() + grace + CANCEL_MARGIN
    while time.monotonic() < deadline:
        current = reconcile(store, store.get(record.run_id))
        if current.is_final:
            return CancelOutcome(current, already_final=current.status is not RunStatus.CANCELED)
        if not _supervised(store, current):  # a cluster's job followed without a supervisor
            break
        time.sleep(0.05)
    # Nobody stopped it: end the processes (and the cluster's job) ourselves and record it.
    current = store.get(record.run_id)
    _cleanup_outside(current, grace)  # a cluster's job first: it is told it was canceled
    end_processes(current, 0.0)
    for step in store.steps_of(record.run_id):
        if not step.is_final:
            _cleanup_outside(step, grace)
            end_processes(step, 0.0)
            store.transition(
                step.run_id, RunStatus.CANCELED, error="canceled by mlproj cancel", ended_at=time.time()
            )
    supervised = current.job_id is None or _supervised(store, current)
    why = (
        "the supervisor did not respond; its processes were killed" if supervised else "its job was canceled"
    )
    store.transition(
        record.run_id, RunStatus.CANCELED, error=f"canceled by mlproj cancel ({why})", ended_at=time.time()
    )
    return CancelOutcome(store.get(record.run_id), already_final=False)


def wait(
    store: Store, run_id: str, timeout: float | None = None, on_poll: Callable[[], None] | None = None
) -> RunRecord | None:
    """The run's final record, or None if `timeout` seconds pass first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = reconcile(store, store.get(run_id))
        if record.is_final:
            return record
        if deadline is not None and time.monotonic() >= deadline:
            return None
        if on_poll is not None:
            on_poll()
        time.sleep(STATUS_POLL)


def follow(
    store: Store,
    run_id: str,
    write: Callable[[bytes], None],
    *,
    follow: bool = True,
    timeout: float | None = None,
) -> RunRecord | None:
    """Write the run's log; with `follow`, keep writing until it ends (None if `timeout` passes first)."""
    record = store.get(run_id)
    log_path = Path(record.log_path) if record.log_path else None
    position = 0

    def pump() -> None:
        nonlocal position
        if log_path is None or not log_path.exists():
            return
        with log_path.open("rb") as log:
            log.seek(position)
            data = log.read()
        if data:
            position += len(data)
            write(data)

    if not follow:
        pump()
        return record
    deadline = None if timeout is None else time.monotonic() + timeout
    next_status = 0.0
    while True:
        pump()
        if time.monotonic() >= next_status:
            record = reconcile(store, store.get(run_id))
            if record.is_final:
                pump()
                return record
            next_status = time.monotonic() + STATUS_POLL
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(FOLLOW_POLL)
