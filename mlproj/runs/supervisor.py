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
from collections.abc import Callable, Mapping
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
    from mlproj.envs.base import BuildStep, EnvManager
    from mlproj.envs.build import StepResult

OutputSink = Callable[[bytes], None]
CANCEL_POLL = 0.25  # how often the store is checked for a cancel request from another shell
OUTPUT_INTERVAL = 0.05  # how often new output is copied from the run log to the terminal
_STOP_SIGNALS = ("SIGTERM", "SIGHUP")


class Stop:
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

    @classmethod
    def ladder_for(cls, reason: str, grace: float, interactive: bool) -> Stop:
        """SIGTERM, then SIGKILL after `grace`; SIGINT first when a person pressed Ctrl-C."""
        ladder = [(int(signal.SIGTERM), grace), (int(signal.SIGKILL), process.KILL_WAIT)]
        if interactive:
            ladder.insert(0, (int(signal.SIGINT), process.INTERRUPT_TIMEOUT))
        return cls(reason, ladder)


class Canceled(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignalFlags:
    """What Ctrl-C (SIGINT) and SIGTERM/SIGHUP asked of a supervisor, noted by its handlers (installed
    only in the main thread) and acted on by its loop."""

    def __init__(self) -> None:
        self._interrupts = 0
        self._stop_signal: str | None = None

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

    @staticmethod
    def _restore_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Supervisor(SignalFlags):
    def __init__(
        self,
        store: Store,
        run_id: str,
        output: OutputSink | None = None,
        on_status: Callable[[str | None], None] | None = None,
        *,
        check_outputs: Callable[[], str | None] | None = None,
        external_stop: Callable[[], tuple[str, bool] | None] | None = None,
    ) -> None:
        """`check_outputs`, called when the workload exits 0, returns why the run failed nonetheless
        (a pipeline step that did not write a declared output), or None. `external_stop` returns
        (reason, interactive) once whoever runs this supervisor wants the run stopped (a pipeline
        being canceled), or None."""
        self.store = store
        self.run_id = run_id
        self.output = output
        self.on_status = on_status
        super().__init__()
        self.check_outputs = check_outputs
        self.external_stop = external_stop
        self._log_offset = 0
        self._next_poll = 0.0
        self._awaiting_start = False
        self._native: str | None = None

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> RunRecord:
        previous = self._install_handlers()
        try:
            return self._run()
        finally:
            self._restore_handlers(previous)

    def _run(self) -> RunRecord:
        me = os.getpid()
        self.store.update(self.run_id, supervisor_pid=me, supervisor_identity=process.identity(me))
        record = self.store.get(self.run_id)
        if record.is_final:
            return record
        request = dict(record.request or {})
        log_path = Path(record.log_path or self.store.home.run_dir(self.run_id) / "output.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()  # a cluster's job may create it only when it starts
        try:
            from mlproj.backends import get_backend

            backend = get_backend(record.backend or "local")
            exec_request, manager = self._prepare(record, request, log_path, backend.prepares_environment)
            self._log_offset = log_path.stat().st_size if log_path.exists() else 0
            workload = backend.launch(record, exec_request, request, manager)
        except Canceled as canceled:
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
        if workload.job_id is not None:
            self._native = workload.native_state
            self.store.update(self.run_id, job_id=workload.job_id, backend_state=self._native)
        if workload.started:
            moved = self.store.transition(
                self.run_id,
                RunStatus.RUNNING,
                pid=pid,
                pid_identity=None if pid is None else process.identity(pid),
                started_at=started,
            )
            if not moved:  # canceled (or reconciled) while we were starting it
                self.store.update(self.run_id, pid=pid, started_at=started)
        else:  # a cluster's job waiting for its scheduler: Queued until it starts
            current = self.store.get(self.run_id).status
            moved = current is RunStatus.QUEUED or self.store.transition(self.run_id, RunStatus.QUEUED)
            self._awaiting_start = True
        return self._watch(workload, record, log_path, started, canceled_early=not moved)

    def _note_progress(self, workload: Workload) -> None:
        """A cluster job's state: recorded when it changes; `Running` once it has started."""
        native = workload.native_state
        if native is not None and native != self._native:
            self._native = native
            self.store.update(self.run_id, backend_state=native)
        if self._awaiting_start and workload.started:
            self._awaiting_start = False
            self.store.transition(
                self.run_id, RunStatus.RUNNING, started_at=workload.started_at or time.time()
            )

    def _prepare(
        self, record: RunRecord, request: dict[str, Any], log_path: Path, build: bool = True
    ) -> tuple[process.ExecRequest, EnvManager]:
        """The workload's environment: built (while the run is `Preparing`) or taken from the cache.
        Without `build`, the backend has the cluster build it from the run's environment spec."""
        from mlproj.envs import get_manager
        from mlproj.envs.base import PreparedEnv
        from mlproj.envs.build import prepare_environment
        from mlproj.envs.envspec import EnvSpec

        base_env = dict(os.environ)
        base_env[process.RUN_ID_VARIABLE] = self.run_id
        spec_data = request.get("env_spec")
        if build:
            prepared = prepare_environment(
                self.store.home,
                record.env_manager or "local",
                EnvSpec.from_dict(spec_data) if spec_data else None,
                base_env,
                run_step=lambda step: run_build_step(
                    self.run_id, step, base_env, log_path, self._status, self._poll_stop
                ),
                on_build=self._mark_preparing,
                on_status=self._status,
                check_cancel=self._raise_if_stopped,
                rebuild=bool(request.get("rebuild_env")),
            )
        else:
            prepared = PreparedEnv(manager=record.env_manager or "local")
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
        self._next_poll = 0.0  # waiting for a lock: look at the store now
        stop = self._poll_stop()
        if stop is not None:
            raise Canceled(stop.reason)

    def _poll_stop(self) -> Stop | None:
        return self._check_stop(None)

    def _watch(
        self, workload: Workload, record: RunRecord, log_path: Path, started: float, canceled_early: bool
    ) -> RunRecord:
        stop: Stop | None = None
        if canceled_early:
            stop = self._begin_stop("canceled before it started", interactive=False)
            stop.advance(workload)
        deadline = started + record.timeout if record.timeout else None
        self._next_poll = time.monotonic() + CANCEL_POLL
        with log_path.open("rb") as log:
            log.seek(self._log_offset)
            while True:
                returncode = workload.wait(OUTPUT_INTERVAL)
                self._pump(log)
                self._note_progress(workload)
                if returncode is not None:
                    exited_at = time.time()  # the end, before whatever cleaning up takes
                    break
                if stop is None:
                    stop = self._check_stop(deadline)
                    if stop is not None:
                        stop.advance(workload)
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
        return self._record_end(returncode, stop, workload, workload.ended_at or exited_at)

    def _check_stop(self, deadline: float | None) -> Stop | None:
        """Why the run must stop now, or None. The store is read at most every CANCEL_POLL seconds."""
        if self._interrupts:
            return self._begin_stop("canceled by Ctrl-C", interactive=True)
        if self._stop_signal:
            return self._begin_stop(
                f"canceled: the supervisor received {self._stop_signal}", interactive=False
            )
        if self.external_stop is not None:
            wanted = self.external_stop()
            if wanted is not None:
                return self._begin_stop(wanted[0], interactive=wanted[1])
        if deadline is not None and time.time() >= deadline:
            timeout = self.store.get(self.run_id).timeout
            return self._begin_stop(f"{TIMED_OUT} {timeout:g} s", interactive=False)
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + CANCEL_POLL
            current = self.store.get(self.run_id)
            if current.status is RunStatus.CANCEL_REQUESTED:
                return self._begin_stop("canceled by mlproj cancel", interactive=False)
        return None

    def _begin_stop(self, reason: str, interactive: bool) -> Stop:
        self.store.transition(self.run_id, RunStatus.CANCEL_REQUESTED)
        grace = self.store.get(self.run_id).grace
        return Stop.ladder_for(reason, process.DEFAULT_GRACE if grace is None else grace, interactive)

    def _pump(self, log: Any) -> None:
        data = log.read()
        if data and self.output is not None:
            try:
                self.output(data)
            except OSError:  # the reader went away (`mlproj run … | head`): the run goes on
                self.output = None

    def _record_end(self, returncode: int, stop: Stop | None, workload: Workload, ended: float) -> RunRecord:
        code = process.exit_status(returncode)
        if workload.started_at is not None and not self._awaiting_start:  # the cluster's own start time
            self.store.update(self.run_id, started_at=workload.started_at)
        error: str | None
        ending = workload.end() if stop is None else None
        if ending is not None:  # the cluster says how it ended: canceled there, a time limit, forgotten
            status, error = ending
        elif stop is not None:
            status, error = RunStatus.CANCELED, stop.reason
            if stop.reason.startswith(TIMED_OUT) and self.store.get(self.run_id).kind == "step":
                status = RunStatus.FAILED  # a pipeline step's timeout fails the step (and may be retried)
        elif returncode == 0:
            problem = self.check_outputs() if self.check_outputs is not None else None
            status, error = (RunStatus.FINISHED, None) if problem is None else (RunStatus.FAILED, problem)
        else:
            status, error = RunStatus.FAILED, process.describe_exit(returncode)
        self.store.transition(self.run_id, status, exit_code=code, error=error, ended_at=ended)
        return self.store.get(self.run_id)


def run_build_step(
    run_id: str,
    step: BuildStep,
    base_env: Mapping[str, str],
    log_path: Path,
    on_status: Callable[[str | None], None],
    poll_stop: Callable[[], Stop | None],
) -> StepResult:
    """Run one program of an environment build, its output appended to `log_path`; `poll_stop` is
    asked between reads, and a stop ends the program's tree and raises `Canceled`."""
    from mlproj.envs.build import StepResult

    with log_path.open("ab") as log:
        log.write(f"mlproj: {step.description}: {' '.join(step.argv)}\n".encode())
    start = log_path.stat().st_size
    proc = process.spawn(
        process.ExecRequest(argv=step.argv, cwd=step.cwd, env={**base_env, **step.env}, log_path=log_path)
    )
    waiter = process.Waiter(proc)
    try:
        with log_path.open("rb") as log:
            log.seek(start)
            while True:
                returncode = waiter.wait(OUTPUT_INTERVAL * 2)
                lines = log.read().decode("utf-8", errors="replace").strip().splitlines()
                if lines:
                    on_status(f"{step.description}: {lines[-1][:100]}")
                if returncode is not None:
                    break
                stop = poll_stop()
                if stop is not None:
                    process.end_run_processes(
                        run_id, proc.pid, min(stop.ladder[0][1], process.LEFTOVER_GRACE)
                    )
                    proc.wait()
                    raise Canceled(stop.reason)
    finally:
        waiter.close()
    with log_path.open("rb") as log:
        log.seek(start)
        tail = log.read()[-4000:].decode("utf-8", errors="replace")
    return StepResult(returncode, "\n".join(tail.strip().splitlines()[-5:]))


def supervise(home: Home, run_id: str, output: OutputSink | None = None) -> RunRecord:
    """Supervise a recorded run in this process until it ends; returns its final record."""
    store = Store.open(home)
    try:
        return Supervisor(store, run_id, output).run()
    finally:
        store.close()
