"""What other shells do to a run: reconcile it, cancel it, wait for it, follow its log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlproj import process
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store

FOLLOW_POLL = 0.1  # how often a follower reads the log
STATUS_POLL = 0.25  # how often a follower or waiter reads the run's status
CANCEL_MARGIN = 10.0  # beyond the grace period, how long `cancel` waits for the supervisor


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


def _lose(store: Store, record: RunRecord, reason: str) -> RunRecord:
    """End what is left of a run whose supervisor is gone and record why: `Failed` if it had started,
    `Skipped` if it was still waiting for its turn (a pipeline step)."""
    process.end_run_processes(record.run_id, record.pid, process.LEFTOVER_GRACE)
    _cleanup_outside(record)
    waiting = record.kind == "step" and record.status in (RunStatus.NOT_STARTED, RunStatus.QUEUED)
    status = RunStatus.SKIPPED if waiting else RunStatus.FAILED
    if waiting:
        reason = f"never started: {reason}"
    store.transition(record.run_id, status, error=reason, ended_at=time.time())
    return store.get(record.run_id)


def _cleanup_outside(record: RunRecord) -> None:
    """What the run's environment left outside its process tree (a container) is released too."""
    from mlproj.envs import get_manager
    from mlproj.errors import MlprojError

    try:
        get_manager(record.env_manager or "local").cleanup(record.run_id)
    except MlprojError:
        return


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
        time.sleep(0.05)
    # The supervisor did not answer: end the processes ourselves and record the cancellation.
    process.end_run_processes(record.run_id, record.pid, 0.0)
    _cleanup_outside(record)
    store.transition(
        record.run_id,
        RunStatus.CANCELED,
        error="canceled by mlproj cancel (the supervisor did not respond; its processes were killed)",
        ended_at=time.time(),
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
