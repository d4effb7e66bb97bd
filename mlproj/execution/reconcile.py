"""The truth about a run whose supervisor may be gone: reconciled by any command that reads it (design.md
§3), its processes ended and what it ran elsewhere (a container, a cluster's job) released."""

from __future__ import annotations

import time

from mlproj import process
from mlproj.runs.status import RunKind, RunStatus

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from mlproj.proctree import RunProcesses
    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store


def run_processes(record: RunRecord) -> RunProcesses:
    """How to find the processes of a recorded run: its cgroup, or its main process (identity-checked)
    and its environment marker."""
    from mlproj.proctree import RunProcesses

    leader = process.Proc(record.pid, record.pid_identity) if record.pid and record.pid_identity else None
    if not record.cgroup:
        return RunProcesses(record.run_id, cgroup=None, leader=leader)
    from pathlib import Path

    return RunProcesses(record.run_id, cgroup=Path(record.cgroup), leader=leader)


def end_processes(record: RunRecord, grace: float = process.LEFTOVER_GRACE) -> None:
    """End every process of a run that its supervisor no longer watches: SIGTERM, SIGKILL after `grace`."""
    from mlproj.execution.ladder import climb, rungs
    from mlproj.proctree import remove_cgroup

    target = run_processes(record)
    climb(target, rungs(grace))
    remove_cgroup(target.cgroup)


def reconcile(store: Store, record: RunRecord) -> RunRecord:
    """A run whose supervisor is gone becomes `Failed` with the reason; its processes are ended.

    A pipeline step is supervised by its pipeline's supervisor: it is reconciled with its pipeline,
    whose unfinished steps end with it. A final run whose MLflow end still waits (its tracking server
    was away) sends it now, if the server answers."""
    if record.is_final:
        return _send_tracking(store, record) if record.tracking_pending is not None else record
    if record.kind is RunKind.STEP and record.parent_run_id:
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
    if record.job_id:  # a cluster's job: the cluster says what became of it
        return _reconcile_job(store, record)
    supervisor = _supervisor_words(record)
    reason = (
        f"the {supervisor}: mlproj was killed or the machine restarted; what was left of the run's "
        "processes was ended"
    )
    if record.kind is RunKind.PIPELINE:
        for step in store.list_runs(parent_run_id=record.run_id):
            if not step.is_final:
                _lose(store, step, f"the pipeline's {supervisor}")
    return _lose(store, record, reason)


def _send_tracking(store: Store, record: RunRecord) -> RunRecord:
    from mlproj.tracking.runs import send_pending

    return store.get(record.run_id) if send_pending(store, [record]) else record


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
            store.transition(record.run_id, RunStatus.RUNNING, started_at=state.started_at or time.time())
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
        started_at=state.started_at or record.started_at or now,  # the cluster's own times first
        ended_at=state.ended_at or now,
    )
    return store.get(record.run_id)


def _supervisor_words(record: RunRecord) -> str:
    """What became of the run's supervisor, for the reason a run is ended."""
    if record.supervisor_pid is None:
        return "supervising process never took the run over"
    return f"supervising process (pid {record.supervisor_pid}) is gone"


def _lose(store: Store, record: RunRecord, reason: str) -> RunRecord:
    """End what is left of a run whose supervisor is gone and record why: `Failed` if it had started,
    `Skipped` if it was still waiting for its turn (a pipeline step)."""
    end_processes(record)
    cleanup_outside(record)
    waiting = record.kind is RunKind.STEP and record.status in (RunStatus.NOT_STARTED, RunStatus.QUEUED)
    status = RunStatus.SKIPPED if waiting else RunStatus.FAILED
    if waiting:
        reason = f"never started: {reason}"
    store.transition(record.run_id, status, error=reason, ended_at=time.time())
    ended = store.get(record.run_id)
    return _send_tracking(store, ended) if ended.tracking_pending is not None else ended


def cleanup_outside(record: RunRecord, grace: float = process.LEFTOVER_GRACE) -> None:
    """What the run left outside its process tree is released too: a container, a cluster's job."""
    from mlproj.backends import get_backend
    from mlproj.errors import MlprojError

    try:
        get_backend(record.backend).cancel_job(record, grace)
    except MlprojError:  # an unknown backend, or one that cannot be reached: nothing more to release
        return


def supervised(store: Store, record: RunRecord) -> bool:
    """Whether someone still supervises the run (a step: its pipeline's supervisor)."""
    if record.kind is RunKind.STEP and record.parent_run_id:
        record = store.get(record.parent_run_id)
    return process.is_alive(record.supervisor_pid, record.supervisor_identity)


def end_unsupervised(store: Store, run_id: str, status: RunStatus, error: str) -> RunRecord:
    """End a run that no supervisor took over (Ctrl-C before it started), with its pipeline steps."""
    now = time.time()
    for step in store.steps_of(run_id):
        store.transition(step.run_id, status, error=error, ended_at=now)
    store.transition(run_id, status, error=error, ended_at=now)
    return store.get(run_id)


def environments_in_use(store: Store) -> set[str]:
    """Fingerprints and environment paths of the runs that are really unfinished (reconciled first)."""
    unfinished = [r for r in store.unfinished() if not reconcile(store, r).is_final]
    return {value for r in unfinished for value in (r.env_fingerprint, r.env_path) if value}


def find_run(store: Store, run_id_or_prefix: str, *, ids_only: bool = False) -> RunRecord:
    """Resolve a run (its ID, a prefix, a name or `last`; `ids_only`: an ID or a prefix) and
    reconcile it."""
    return reconcile(store, store.resolve(run_id_or_prefix, ids_only=ids_only))
