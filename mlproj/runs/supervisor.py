"""The supervisor: starts a recorded run's workload, watches it, stops it, and records how it ended.

A foreground `mlproj run` is its own supervisor; `--detach` hands the run to `mlproj.runs.supervise`
in a background process. Either way, the supervisor records its identity on the run first, so that a
run whose supervisor has died can be told apart from one still running (see `reconcile`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from mlproj import process
from mlproj.errors import MlprojError
from mlproj.home import Home
from mlproj.runs.outcome import TIMED_OUT
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store
from mlproj.workload import Workload

if TYPE_CHECKING:
    from mlproj.envs.base import EnvManager

OutputSink = Callable[[bytes], None]
CANCEL_POLL = 0.25  # how often the store is checked for a cancel request from another shell
OUTPUT_INTERVAL = 0.05  # how often new output is copied from the run log to the terminal
_STOP_SIGNALS = ("SIGTERM", "SIGHUP")


class _Stop:
    """Why and how the workload is being stopped: a ladder of (signal, seconds to wait) stages."""

    def __init__(self, reason: str, ladder: list[tuple[int, float]]) -> None:
        self.reason = reason
        self.ladder = ladder
        self.stage = -1
        self.deadline = 0.0

    def advance(self, workload: Workload) -> None:
        self.stage = min(self.stage + 1, len(self.ladder) - 1)
        sig, wait = self.ladder[self.stage]
        workload.signal(sig)
        self.deadline = time.monotonic() + wait

    def escalate(self, workload: Workload) -> None:
        self.stage = len(self.ladder) - 2
        self.advance(workload)


class _Canceled(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Supervisor:
    def __init__(
        self,
        store: Store,
        run_id: str,
        output: OutputSink | None = None,
        on_status: Callable[[str | None], None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.output = output
        self.on_status = on_status
        self._interrupts = 0
        self._stop_signal: str | None = None
        self._log_offset = 0

    # --- signals ---------------------------------------------------------------------------------

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        self._interrupts += 1

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signal.Signals(signum).name

    def _install_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {signal.SIGINT: signal.signal(signal.SIGINT, self._on_interrupt)}
        for name in _STOP_SIGNALS:
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, self._on_stop_signal)
        return previous

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> RunRecord:
        previous = self._install_handlers()
        try:
            return self._run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _run(self) -> RunRecord:
        me = os.getpid()
        self.store.update(self.run_id, supervisor_pid=me, supervisor_identity=process.identity(me))
        record = self.store.get(self.run_id)
        if record.is_final:
            return record
        request = dict(record.request or {})
        log_path = Path(record.log_path or self.store.home.run_dir(self.run_id) / "output.log")
        try:
            exec_request, manager = self._prepare(record, request, log_path)
            self._log_offset = log_path.stat().st_size if log_path.exists() else 0
            workload = manager.launch(self.run_id, exec_request, request)
        except _Canceled as canceled:
            self.store.transition(
                self.run_id, RunStatus.CANCELED, error=canceled.reason, ended_at=time.time()
            )
            return self.store.get(self.run_id)
        except Exception as exc:  # the run is never left unfinished by a failure to start it
            if isinstance(exc, MlprojError):
                error = str(exc)
            elif isinstance(exc, OSError):
                error = f"cannot start the command: {exc}"
            else:
                error = f"cannot start the command: {type(exc).__name__}: {exc}"
            self.store.transition(self.run_id, RunStatus.FAILED, error=error, ended_at=time.time())
            return self.store.get(self.run_id)
        finally:
            self._status(None)
        started = time.time()
        pid = workload.pid
        moved = self.store.transition(
            self.run_id,
            RunStatus.RUNNING,
            pid=pid,
            pid_identity=None if pid is None else process.identity(pid),
            started_at=started,
        )
        if not moved:  # canceled (or reconciled) while we were starting it
            self.store.update(self.run_id, pid=pid, started_at=started)
        return self._watch(workload, record, log_path, started, canceled_early=not moved)

    def _prepare(
        self, record: RunRecord, request: dict[str, Any], log_path: Path
    ) -> tuple[process.ExecRequest, EnvManager]:
        """The workload's environment: built (while the run is `Preparing`) or taken from the cache."""
        from mlproj.envs import get_manager
        from mlproj.envs.build import prepare_environment
        from mlproj.envs.envspec import EnvSpec

        base_env = dict(os.environ)
        base_env[process.RUN_ID_VARIABLE] = self.run_id
        spec_data = request.get("env_spec")
        prepared = prepare_environment(
            self.store.home,
            record.env_manager or "local",
            EnvSpec.from_dict(spec_data) if spec_data else None,
            base_env,
            run_step=lambda step: self._run_build_step(step, base_env, log_path),
            on_build=self._mark_preparing,
            on_status=self._status,
            check_cancel=self._raise_if_stopped,
            rebuild=bool(request.get("rebuild_env")),
        )
        if prepared.fingerprint is not None:
            self.store.update(
                self.run_id,
                env_path=prepared.prefix,
                env_fingerprint=prepared.fingerprint,
                env_reused=prepared.reused,
            )
        env = {**base_env, **prepared.variables, **request.get("env", {})}
        if prepared.prefix is not None:
            env.pop("PYTHONHOME", None)
        env[process.RUN_DIR_VARIABLE] = str(log_path.parent)
        env.setdefault("PYTHONUNBUFFERED", "1")
        exec_request = process.ExecRequest(
            argv=request["argv"], cwd=Path(request["cwd"]), env=env, log_path=log_path
        )
        return exec_request, get_manager(prepared.manager)

    # --- environment builds -------------------------------------------------------------------------

    def _mark_preparing(self) -> None:
        self.store.transition(self.run_id, RunStatus.PREPARING)

    def _status(self, text: str | None) -> None:
        if self.on_status is not None:
            self.on_status(text)

    def _raise_if_stopped(self) -> None:
        stop = self._check_stop(None, time.monotonic())
        if stop is not None:
            raise _Canceled(stop.reason)

    def _run_build_step(self, step: Any, base_env: dict[str, str], log_path: Path) -> Any:
        """Run one program of an environment build, its output appended to the run log; cancelable."""
        from mlproj.envs.build import StepResult

        with log_path.open("ab") as log:
            log.write(f"mlproj: {step.description}: {' '.join(step.argv)}\n".encode())
        start = log_path.stat().st_size
        proc = process.spawn(
            process.ExecRequest(argv=step.argv, cwd=step.cwd, env={**base_env, **step.env}, log_path=log_path)
        )
        next_poll = time.monotonic() + CANCEL_POLL
        waiter = process.Waiter(proc)
        with log_path.open("rb") as log:
            log.seek(start)
            while True:
                returncode = waiter.wait(OUTPUT_INTERVAL * 2)
                lines = log.read().decode("utf-8", errors="replace").strip().splitlines()
                if lines:
                    self._status(f"{step.description}: {lines[-1][:100]}")
                if returncode is not None:
                    break
                stop = self._check_stop(None, next_poll)
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + CANCEL_POLL
                if stop is not None:
                    process.end_run_processes(
                        self.run_id, proc.pid, min(stop.ladder[0][1], process.LEFTOVER_GRACE)
                    )
                    proc.wait()
                    waiter.close()
                    raise _Canceled(stop.reason)
        waiter.close()
        with log_path.open("rb") as log:
            log.seek(start)
            tail = log.read()[-4000:].decode("utf-8", errors="replace")
        return StepResult(returncode, "\n".join(tail.strip().splitlines()[-5:]))

    def _watch(
        self, workload: Workload, record: RunRecord, log_path: Path, started: float, canceled_early: bool
    ) -> RunRecord:
        stop: _Stop | None = None
        if canceled_early:
            stop = self._begin_stop("canceled before it started", interactive=False)
            stop.advance(workload)
        deadline = started + record.timeout if record.timeout else None
        next_poll = time.monotonic() + CANCEL_POLL
        with log_path.open("rb") as log:
            log.seek(self._log_offset)
            while True:
                returncode = workload.wait(OUTPUT_INTERVAL)
                self._pump(log)
                if returncode is not None:
                    break
                if stop is None:
                    stop = self._check_stop(deadline, next_poll)
                    if stop is not None:
                        stop.advance(workload)
                    elif time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + CANCEL_POLL
                elif self._interrupts > 1:
                    stop.escalate(workload)
                    self._interrupts = 1
                elif time.monotonic() >= stop.deadline:
                    stop.advance(workload)
            if stop is None:
                workload.finish(None, process.LEFTOVER_GRACE)
            else:
                workload.finish(stop.ladder[stop.stage][0], max(0.0, stop.deadline - time.monotonic()))
            self._pump(log)
        return self._record_end(returncode, stop)

    def _check_stop(self, deadline: float | None, next_poll: float) -> _Stop | None:
        if self._interrupts:
            return self._begin_stop("canceled by Ctrl-C", interactive=True)
        if self._stop_signal:
            return self._begin_stop(
                f"canceled: the supervisor received {self._stop_signal}", interactive=False
            )
        if deadline is not None and time.time() >= deadline:
            timeout = self.store.get(self.run_id).timeout
            return self._begin_stop(f"{TIMED_OUT} {timeout:g} s", interactive=False)
        if time.monotonic() >= next_poll:
            current = self.store.get(self.run_id)
            if current.status is RunStatus.CANCEL_REQUESTED:
                return self._begin_stop("canceled by mlproj cancel", interactive=False)
        return None

    def _begin_stop(self, reason: str, interactive: bool) -> _Stop:
        self.store.transition(self.run_id, RunStatus.CANCEL_REQUESTED)
        grace = self.store.get(self.run_id).grace
        grace = process.DEFAULT_GRACE if grace is None else grace
        ladder = [(int(signal.SIGTERM), grace), (int(signal.SIGKILL), process.KILL_WAIT)]
        if interactive:
            ladder.insert(0, (int(signal.SIGINT), process.INTERRUPT_TIMEOUT))
        return _Stop(reason, ladder)

    def _pump(self, log: Any) -> None:
        data = log.read()
        if data and self.output is not None:
            try:
                self.output(data)
            except OSError:  # the reader went away (`mlproj run … | head`): the run goes on
                self.output = None

    def _record_end(self, returncode: int, stop: _Stop | None) -> RunRecord:
        ended = time.time()
        code = process.exit_status(returncode)
        if stop is not None:
            status, error = RunStatus.CANCELED, stop.reason
        elif returncode == 0:
            status, error = RunStatus.FINISHED, None
        else:
            status, error = RunStatus.FAILED, process.describe_exit(returncode)
        self.store.transition(self.run_id, status, exit_code=code, error=error, ended_at=ended)
        return self.store.get(self.run_id)


def supervise(home: Home, run_id: str, output: OutputSink | None = None) -> RunRecord:
    """Supervise a recorded run in this process until it ends; returns its final record."""
    store = Store.open(home)
    try:
        return Supervisor(store, run_id, output).run()
    finally:
        store.close()
