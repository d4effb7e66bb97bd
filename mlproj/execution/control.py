"""What other shells do to a run: cancel it, wait for it, follow its log (each reads it reconciled)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mlproj.execution.reconcile import cleanup_outside, end_processes, reconcile, supervised
from mlproj.process import DEFAULT_GRACE
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store
from mlproj.structs import dataclass

FOLLOW_POLL = 0.1  # how often a follower reads the log
STATUS_POLL = 0.25  # how often a follower or waiter reads the run's status
CANCEL_MARGIN = 10.0  # beyond the grace period, how long `cancel` waits for the supervisor


@dataclass(frozen=True)
class CancelOutcome:
    record: RunRecord
    already_final: bool


def cancel(store: Store, record: RunRecord, grace: float = DEFAULT_GRACE) -> CancelOutcome:
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
        if not supervised(store, current):  # a cluster's job followed without a supervisor
            break
        time.sleep(0.05)
    # Nobody stopped it: end the processes (and the cluster's job) ourselves and record it.
    current = store.get(record.run_id)
    cleanup_outside(current, grace)  # a cluster's job first: it is told it was canceled
    end_processes(current, 0.0)
    for step in store.steps_of(record.run_id):
        if not step.is_final:
            cleanup_outside(step, grace)
            end_processes(step, 0.0)
            store.transition(
                step.run_id, RunStatus.CANCELED, error="canceled by mlproj cancel", ended_at=time.time()
            )
    if current.job_id is not None and not supervised(store, current):
        why = "its job was canceled"
    elif current.supervisor_pid is None:
        why = "no supervisor had taken it over"
    else:
        why = "the supervisor did not respond; its processes were killed"
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
    steps: bool = False,
    lines: Callable[[str | None, bytes], None] | None = None,
) -> RunRecord | None:
    """Write the run's log; with `follow`, keep writing until it ends (None if `timeout` passes first).
    With `steps`, a pipeline's steps' output comes too, each line after its step's name. With
    `lines`, whole lines go to it instead, each with its step's name (None: the run's own log)."""
    record = store.get(run_id)
    log_path = Path(record.log_path) if record.log_path else None
    position = 0
    own = _Lines(None, lines) if lines is not None else None
    step_logs = _StepLogs(store, run_id, write, lines) if steps and record.kind is RunKind.PIPELINE else None

    def pump(*, final: bool = False) -> None:
        nonlocal position
        if step_logs is not None:
            step_logs.pump(final=final)
        if log_path is None or not log_path.exists():
            return
        with log_path.open("rb") as log:
            log.seek(position)
            data = log.read()
        if data:
            position += len(data)
        if own is not None:
            own.feed(data, final=final)
        elif data:
            write(data)

    if not follow:
        pump(final=True)
        return record
    deadline = None if timeout is None else time.monotonic() + timeout
    next_status = 0.0
    while True:
        pump()
        if time.monotonic() >= next_status:
            record = reconcile(store, store.get(run_id))
            if record.is_final:
                pump(final=True)
                return record
            next_status = time.monotonic() + STATUS_POLL
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(FOLLOW_POLL)


class _Lines:
    """Whole lines of one log as it grows, to `sink` with the step they belong to."""

    def __init__(self, step: str | None, sink: Callable[[str | None, bytes], None]) -> None:
        self.step, self.sink, self.partial = step, sink, b""

    def feed(self, data: bytes, *, final: bool = False) -> None:
        *whole, self.partial = (self.partial + data).split(b"\n")
        if final and self.partial:
            whole, self.partial = [*whole, self.partial], b""
        for line in whole:
            self.sink(self.step, line)


class _StepLogs:
    """A pipeline's steps' logs, read as they grow: whole lines, each after its step's name (or, with
    `lines`, to it with the step's name)."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        write: Callable[[bytes], None],
        lines: Callable[[str | None, bytes], None] | None = None,
    ) -> None:
        self.store, self.run_id = store, run_id
        self.positions: dict[str, int] = {}
        self.readers: dict[str, _Lines] = {}
        self.sink = lines or (lambda step, line: write(f"[{step}] ".encode() + line + b"\n"))

    def pump(self, *, final: bool = False) -> None:
        for step in self.store.steps_of(self.run_id):
            if not step.log_path or step.reused_from:
                continue
            path = Path(step.log_path)
            if not path.exists():
                continue
            with path.open("rb") as log:
                log.seek(self.positions.get(step.run_id, 0))
                data = log.read()
            self.positions[step.run_id] = self.positions.get(step.run_id, 0) + len(data)
            reader = self.readers.setdefault(step.run_id, _Lines(step.step, self.sink))
            reader.feed(data, final=final)
