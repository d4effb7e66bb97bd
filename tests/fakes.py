"""A fake workload, its backend, and a fake clock: the supervisor's and the scheduler's rules run in
milliseconds, with no process started (tox's fake executor is the model). What a workload does is a
`Script` in fake seconds; the clock moves only when the supervisor waits or sleeps.

These fakes stand in for processes, nothing else: the store, the records, the ladder and the supervisor
are the real ones. The real-process tests (test_supervision, test_stopping) check the same rules
against real process trees.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mlproj.backends import BACKENDS
from mlproj.backends.base import Backend, Launch
from mlproj.backends.workload import Workload
from mlproj.runs.record import RunRecord
from mlproj.runs.request import RunRequest
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store, new_run_id


class FakeClock:
    """`time` for the supervisor and the ladder: fake seconds that pass only when someone waits."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


class Script:
    """What a fake workload does: runs `runs_for` seconds and exits with `exit_code`; a signal it does
    not ignore ends it `dies_after` seconds later (SIGKILL at once, always). With `leftover`, something
    it started keeps running after it exited, until a signal the leftover does not ignore. `on_wait` is
    called with the clock's time whenever the supervisor waits (to cancel from "another shell")."""

    def __init__(
        self,
        *,
        exit_code: int = 0,
        exit_codes: tuple[int, ...] = (),
        runs_for: float = 0.0,
        ignores: tuple[int, ...] = (),
        dies_after: float = 0.0,
        leftover: bool = False,
        leftover_ignores: tuple[int, ...] = (),
        unkillable_leftover: bool = False,
        fails_to_start: BaseException | None = None,
        on_wait: Callable[[float], None] | None = None,
        queued_for: float = 0.0,
        native_states: tuple[str, str] = ("PENDING", "RUNNING"),
        ending: tuple[RunStatus, str | None] | None = None,
    ) -> None:
        self.exit_codes = exit_codes  # one per start, for a step retried (then `exit_code`)
        self.starts = 0
        self.exit_code, self.runs_for, self.ignores, self.dies_after = (
            exit_code,
            runs_for,
            ignores,
            dies_after,
        )
        self.leftover, self.leftover_ignores = leftover, leftover_ignores
        self.unkillable_leftover = unkillable_leftover  # a process stuck in the kernel: SIGKILL waits
        self.fails_to_start, self.on_wait = fails_to_start, on_wait
        self.queued_for, self.native_states, self.ending = queued_for, native_states, ending


class FakeWorkload(Workload):
    def __init__(self, run_id: str, clock: FakeClock, script: Script) -> None:
        self.run_id, self.clock, self.script = run_id, clock, script
        self.began = clock.now
        self.main_end: float | None = self.began + script.queued_for + script.runs_for
        script.starts += 1
        codes = script.exit_codes
        self.code = codes[script.starts - 1] if script.starts <= len(codes) else script.exit_code
        self.leftover_alive = script.leftover
        self.signals: list[tuple[float, int]] = []  # (fake seconds since the start, signal)
        self.released = False
        if script.queued_for:
            self.job_id = "fake-1"

    # A cluster's job, when the script queues it.
    @property
    def started(self) -> bool:
        return self.clock.now >= self.began + self.script.queued_for

    @property
    def native_state(self) -> str | None:
        if not self.script.queued_for:
            return None
        return self.script.native_states[1 if self.started else 0]

    def end(self) -> tuple[RunStatus, str | None] | None:
        return self.script.ending

    def wait(self, timeout: float) -> int | None:
        if self.script.on_wait is not None:
            self.script.on_wait(self.clock.now - self.began)
        if self.main_end is not None and self.main_end <= self.clock.now + timeout:
            self.clock.advance(self.main_end - self.clock.now)
            return self.code
        self.clock.advance(timeout)
        return None

    def signal(self, sig: int) -> None:
        self.signals.append((round(self.clock.now - self.began, 3), sig))
        running = self.main_end is None or self.main_end > self.clock.now
        if running and (sig == signal.SIGKILL or sig not in self.script.ignores):
            delay = 0.0 if sig == signal.SIGKILL else self.script.dies_after
            end = self.clock.now + delay
            if self.main_end is None or end < self.main_end:
                self.main_end, self.code = end, -sig
        kills_leftover = sig == signal.SIGKILL and not self.script.unkillable_leftover
        if self.leftover_alive and (
            kills_leftover or sig not in (*self.script.leftover_ignores, signal.SIGKILL)
        ):
            self.leftover_alive = False

    def alive(self) -> bool:
        return self.leftover_alive

    def release(self) -> None:
        self.released = True


class FakeBackend(Backend):
    """Runs the `Script` registered under the request's command."""

    name = "fake"
    scripts: ClassVar[dict[str, Script]] = {}
    launched: ClassVar[list[FakeWorkload]] = []
    clock: ClassVar[FakeClock] = FakeClock()

    def launch(self, launch: Launch) -> Workload:
        script = self.scripts[launch.request.command]
        if script.fails_to_start is not None:
            raise script.fails_to_start
        workload = FakeWorkload(launch.record.run_id, self.clock, script)
        self.launched.append(workload)
        return workload


class FakeClusterBackend(FakeBackend):
    """A cluster's scheduler starts its jobs when it sees fit: runs are `Queued` until then."""

    name = "fake-cluster"
    queues = True


def install_fake_backend(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The fake backend registered as `fake`, with no scripts yet, and a fresh clock in place of the
    supervisor's and the ladder's `time`."""
    import mlproj.execution.ladder
    import mlproj.execution.supervisor

    clock = FakeClock()
    monkeypatch.setattr(FakeBackend, "clock", clock)
    monkeypatch.setattr(FakeBackend, "scripts", {})
    monkeypatch.setattr(FakeBackend, "launched", [])
    monkeypatch.setitem(BACKENDS, "fake", ("tests.fakes", "FakeBackend"))
    monkeypatch.setitem(BACKENDS, "fake-cluster", ("tests.fakes", "FakeClusterBackend"))
    monkeypatch.setattr(mlproj.execution.supervisor, "time", clock)
    monkeypatch.setattr(mlproj.execution.ladder, "time", clock)
    return clock


def record_run(
    store: Store,
    tmp_path: Path,
    command: str,
    *,
    kind: RunKind = RunKind.PROJECT,
    timeout: float | None = None,
    grace: float | None = None,
    backend: str = "fake",
    **extra: Any,
) -> RunRecord:
    """A queued run of `command` on the fake backend, as the planner records one."""
    run_id = new_run_id()
    run_dir = store.home.run_dir(run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "output.log").touch()
    record = RunRecord(
        run_id=run_id,
        kind=kind,
        status=RunStatus.QUEUED,
        uri=str(tmp_path),
        entry_point="main",
        env_manager="local",
        backend=backend,
        log_path=str(run_dir / "output.log"),
        run_dir=str(run_dir),
        command=command,
        timeout=timeout,
        grace=grace,
        request=RunRequest(command=command, cwd=str(tmp_path), backend=backend),
        **extra,
    )
    return store.insert(record)


def run_fake_pipeline(
    store: Store, pipeline: Path, **options: Any
) -> tuple[RunRecord, dict[str, list[RunRecord]]]:
    """Plan, record and supervise `pipeline` in this process, its steps on the fake backend (their
    commands name their scripts); the pipeline's final record and each step's attempts."""
    from mlproj.pipelines.options import PipelineOptions
    from mlproj.pipelines.plan import plan_run
    from mlproj.pipelines.records import record_pipeline
    from mlproj.pipelines.scheduler import PipelineSupervisor

    plan = plan_run(PipelineOptions(uri=str(pipeline), backend="fake", **options), store.home)
    record = record_pipeline(store, plan)
    final = PipelineSupervisor(store, record.run_id, plan).run()
    attempts: dict[str, list[RunRecord]] = {}
    for step in store.steps_of(record.run_id):
        attempts.setdefault(step.step or "", []).append(step)
    return final, attempts


def insert_run(store: Store, clock: FakeClock, **fields: Any) -> RunRecord:
    """A run recorded a minute ago (fake time), Running on the fake backend unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "run_id": new_run_id(),
        "status": RunStatus.RUNNING,
        "backend": "fake",
        "created_at": clock.now - 60.0,
    }
    values.update(fields)
    return store.insert(RunRecord(**values))
