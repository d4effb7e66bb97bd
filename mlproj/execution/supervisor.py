"""The supervisor: starts a recorded run's workload, watches it, stops it, and records how it ended.

A foreground `mlproj run` is its own supervisor; `--detach` hands the run to `mlproj.submit.detached`
in a background process. Either way, the supervisor records its identity on the run first, so that a
run whose supervisor has died can be told apart from one still running (see `reconcile`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from mlproj import process
from mlproj.errors import MlprojError
from mlproj.execution.builds import run_build_step
from mlproj.execution.ladder import LEFTOVERS, Stop, rungs
from mlproj.execution.signals import Canceled, InterruptCounter, SignalFlags
from mlproj.home import Home
from mlproj.proctree import make_cgroup, mechanism, remove_cgroup
from mlproj.runs.outcome import TIMED_OUT
from mlproj.runs.record import RunRecord
from mlproj.runs.request import RunRequest
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.backends.base import Launch
    from mlproj.backends.workload import Workload

OutputSink = Callable[[bytes], None]
CANCEL_POLL = 0.25  # how often the store is checked for a cancel request from another shell
OUTPUT_INTERVAL = 0.05  # how often new output is copied from the run log to the terminal
REAP_INTERVAL = 1.0  # how often a subreaper collects the orphans it adopted that have exited


def stop_for(reason: str, grace: float, *, interactive: bool) -> Stop:
    """A stop of a run: SIGTERM, then SIGKILL after `grace`; SIGINT first when a person pressed Ctrl-C."""
    return Stop(reason, rungs(grace, interactive=interactive))


class Supervisor:
    def __init__(
        self,
        store: Store,
        run_id: str,
        output: OutputSink | None = None,
        on_status: Callable[[str | None], None] | None = None,
        *,
        check_outputs: Callable[[], str | None] | None = None,
        external_stop: Callable[[], tuple[str, bool] | None] | None = None,
        dedicated: bool = False,
        flags: SignalFlags | None = None,
    ) -> None:
        """`check_outputs`, called when the workload exits 0, returns why the run failed nonetheless
        (a pipeline step that did not write a declared output), or None. `external_stop` returns
        (reason, interactive) once whoever runs this supervisor wants the run stopped (a pipeline
        being canceled), or None. `dedicated`: this process exists to supervise the run (a detached
        supervisor, or `mlproj run` in the foreground), and adopts the orphans the run leaves. `flags`:
        the signal flags of whoever installed the handlers (a pipeline's), else this supervisor's own."""
        self.store = store
        self.run_id = run_id
        self.output = output
        self.on_status = on_status
        self._built: str | None = None  # "environment built in 3.3 s (uv, 12 packages)", once built
        self._own_flags = flags is None
        self.flags = flags or SignalFlags()
        self.ctrl_c = InterruptCounter(self.flags)
        self.check_outputs = check_outputs
        self.external_stop = external_stop
        self._log_offset = 0
        self._next_poll = 0.0
        self._awaiting_start = False
        self._launched_as: RunStatus | None = None
        self._native: str | None = None
        self.dedicated = dedicated
        self.cgroup: Path | None = None
        self._next_reap = 0.0
        self.started = 0.0  # when the workload starts (its environment ready), for its timeout

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> RunRecord:
        previous = self.flags.install() if self._own_flags else {}
        try:
            record = self._run()
            if record.tracking_pending is not None:  # its MLflow run's end: sent now, or kept for later
                from mlproj.tracking.runs import report_end

                record = report_end(self.store, record)
            return record
        finally:
            self.flags.restore(previous)

    def _run(self) -> RunRecord:
        me = os.getpid()
        self.store.update(self.run_id, supervisor_pid=me, supervisor_identity=process.identity(me))
        record = self.store.get(self.run_id)
        if record.is_final:
            return record
        log_path = Path(record.log_path or self.store.home.run_dir(self.run_id) / "output.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()  # a cluster's job may create it only when it starts
        if self.dedicated and mechanism() == "tree":
            process.become_subreaper()
        self.cgroup = make_cgroup(self.run_id)
        if self.cgroup is not None:
            self.store.update(self.run_id, cgroup=str(self.cgroup))
        try:
            workload = self._launch(record, log_path)
        except Canceled as canceled:
            remove_cgroup(self.cgroup)
            self.store.transition(
                self.run_id, RunStatus.CANCELED, error=canceled.reason, ended_at=time.time()
            )
            return self.store.get(self.run_id)
        except Exception as exc:  # noqa: BLE001 - the run is never left unfinished by a failure to start it
            remove_cgroup(self.cgroup)
            self.store.transition(
                self.run_id, RunStatus.FAILED, error=_start_error(exc), ended_at=time.time()
            )
            return self.store.get(self.run_id)
        finally:
            self._status(None)
        if record.mlflow_run_id is not None:  # what was sent while the workload started: answered now
            from mlproj.tracking.runs import settle, tag_image

            settle()
            if workload.image_id is not None:
                tag_image(record, workload.image_id)
        pid = workload.pid
        if workload.job_id is not None:
            self._native = workload.native_state
            self.store.update(self.run_id, job_id=workload.job_id, backend_state=self._native)
        if pid is not None:
            self.store.update(self.run_id, pid=pid, pid_identity=process.identity(pid))
        moved = True
        if not workload.started:  # a cluster's job waiting for its scheduler: Queued until it starts
            current = self.store.get(self.run_id).status
            moved = current is RunStatus.QUEUED or self.store.transition(self.run_id, RunStatus.QUEUED)
            self._awaiting_start = True
        elif self._launched_as is not RunStatus.RUNNING:
            moved = self.store.transition(self.run_id, RunStatus.RUNNING, started_at=self.started)
        return self._watch(workload, record, log_path, self.started, canceled_early=not moved)

    def _launch(self, record: RunRecord, log_path: Path) -> Workload:
        """Prepare the environment, then start the workload unless the run was canceled meanwhile. The
        run starts (`started`: its timeout counts from there) once its environment is ready."""
        from mlproj.backends import get_backend

        request = record.request
        if not isinstance(request, RunRequest):
            raise MlprojError(f"run {record.run_id} has no request to execute")
        backend = get_backend(request.backend)
        launch = self._prepare(record, request, log_path, build=backend.prepares_environment)
        if self._built is not None:  # what the build took: in the log after the build's output, and
            with log_path.open("ab") as log:  # as the last line of the build's display
                log.write(f"mlproj: {self._built}\n".encode())
            self._status(self._built)
        self._log_offset = log_path.stat().st_size if log_path.exists() else 0
        self.started = time.time()
        if not self._claim_start(queued=backend.queues):
            raise Canceled(self._canceled_reason())
        return backend.launch(launch)

    def _claim_start(self, *, queued: bool) -> bool:
        """Decide, in one compare-and-set, that the workload starts: a run canceled while it was being
        prepared never starts. A workload that starts at once is recorded `Running` now (its PID follows);
        a cluster's job (`queued`) stays `Queued` until the cluster starts it."""
        self._launched_as = None
        if not queued:
            if self.store.transition(self.run_id, RunStatus.RUNNING, started_at=self.started):
                self._launched_as = RunStatus.RUNNING
                return True
            return False
        current = self.store.get(self.run_id).status
        if current is RunStatus.PREPARING:
            return self.store.transition(self.run_id, RunStatus.QUEUED)
        return current in (RunStatus.QUEUED, RunStatus.NOT_STARTED)

    def _canceled_reason(self) -> str:
        stop = self._check_stop(None)
        return stop.reason if stop is not None and stop.reason else "canceled before it started"

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

    def _prepare(self, record: RunRecord, request: RunRequest, log_path: Path, *, build: bool) -> Launch:
        """The workload's environment: built (while the run is `Preparing`) or taken from the cache.
        Without `build`, the backend has the cluster build it (`portable`) from the run's environment."""
        from mlproj.backends.base import Launch
        from mlproj.envs import get_manager
        from mlproj.envs.base import PreparedEnv
        from mlproj.envs.build import prepare_environment

        base_env = dict(os.environ)
        base_env[process.RUN_ID_VARIABLE] = self.run_id
        manager = get_manager(request.env_manager)
        if build:
            prepared = prepare_environment(
                self.store.home,
                request.env_manager,
                request.env_spec,
                base_env,
                run_step=lambda step: run_build_step(
                    self.run_id, step, base_env, log_path, self._status, self._poll_stop, self.cgroup
                ),
                on_build=self._mark_preparing,
                on_status=self._status,
                check_cancel=self._raise_if_stopped,
                rebuild=request.rebuild_env,
            )
        else:
            prepared = PreparedEnv(manager=request.env_manager)
        self._built = prepared.built_line()
        if prepared.fingerprint is not None:
            self.store.update(
                self.run_id,
                env_path=prepared.prefix,
                env_fingerprint=prepared.fingerprint,
                env_reused=prepared.reused,
            )
        env = {**base_env, **prepared.variables, **request.env}
        if prepared.prefix is not None:
            env.pop("PYTHONHOME", None)
        env[process.RUN_DIR_VARIABLE] = str(log_path.parent)
        env.setdefault("PYTHONUNBUFFERED", "1")
        exec_request = process.ExecRequest(
            argv=request.argv,
            cwd=Path(request.cwd),
            env=env,
            log_path=log_path,
            cgroup=self.cgroup,
            adopts=self.dedicated,
        )
        spec = request.env_spec
        return Launch(
            record=record,
            request=request,
            process=exec_request,
            container=None if spec is None else manager.container(spec, Path(request.cwd), log_path.parent),
            portable=None if build else manager.portable(spec),
        )

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
            raise Canceled(stop.reason or "canceled")

    def _poll_stop(self) -> Stop | None:
        return self._check_stop(None)

    def _watch(
        self, workload: Workload, record: RunRecord, log_path: Path, started: float, *, canceled_early: bool
    ) -> RunRecord:
        """Follow the workload until its main process exits and nothing it left runs. A stop (cancel,
        Ctrl-C, SIGTERM, timeout) climbs the ladder; once the main process has exited, whatever is left
        climbs the rest of it (or, after a run that ended on its own, the leftovers' ladder)."""
        stop: Stop | None = None
        if canceled_early:
            stop = self._begin_stop("canceled before it started", interactive=False)
            stop.advance(workload)
        deadline = started + record.timeout if record.timeout else None
        self._next_poll = time.monotonic() + CANCEL_POLL
        returncode: int | None = None
        cleanup: Stop | None = None  # the ladder after the main process exited
        with log_path.open("rb") as log:
            log.seek(self._log_offset)
            while True:
                if returncode is None:
                    returncode = workload.wait(OUTPUT_INTERVAL)
                    if returncode is not None:
                        exited_at = time.time()  # the end, before whatever cleaning up takes
                        cleanup = stop or Stop(None, LEFTOVERS)
                else:
                    time.sleep(process.POLL_INTERVAL)
                self._pump(log)
                self._note_progress(workload)
                self._reap()
                if cleanup is not None:
                    if not workload.alive() or cleanup.exhausted:
                        break
                    if cleanup.due or self.ctrl_c.pressed():
                        cleanup.advance(workload)
                    continue
                if stop is None:
                    stop = self._check_stop(deadline)
                    if stop is not None:
                        stop.advance(workload)
                elif stop.due or self.ctrl_c.pressed():
                    stop.advance(workload)  # on the last rung, SIGKILL again
            workload.release()
            remove_cgroup(self.cgroup)
            self._pump(log)
        code = 1 if returncode is None else returncode  # the loop ends only after the exit
        return self._record_end(code, stop, workload, workload.ended_at or exited_at)

    def _reap(self) -> None:
        """A subreaper collects the orphans it adopted once they have exited."""
        if self.dedicated and time.monotonic() >= self._next_reap:
            self._next_reap = time.monotonic() + REAP_INTERVAL
            process.reap_adopted()

    def _check_stop(self, deadline: float | None) -> Stop | None:
        """Why the run must stop now, or None. The store is read at most every CANCEL_POLL seconds."""
        if self._own_flags and self.ctrl_c.pressed():
            return self._begin_stop("canceled by Ctrl-C", interactive=True)
        if self._own_flags and self.flags.stop_signal:
            return self._begin_stop(
                f"canceled: the supervisor received {self.flags.stop_signal}", interactive=False
            )
        if self.external_stop is not None:  # whoever owns the signals (a pipeline) decides, and says why
            wanted = self.external_stop()
            if wanted is not None:
                self.ctrl_c.handled = self.flags.interrupts  # the presses so far began this stop
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

    def _begin_stop(self, reason: str, *, interactive: bool) -> Stop:
        self.store.transition(self.run_id, RunStatus.CANCEL_REQUESTED)
        grace = self.store.get(self.run_id).grace
        return stop_for(reason, process.DEFAULT_GRACE if grace is None else grace, interactive=interactive)

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
        elif stop is not None and stop.reason is not None:
            status, error = RunStatus.CANCELED, stop.reason
            if stop.reason.startswith(TIMED_OUT) and self.store.get(self.run_id).kind is RunKind.STEP:
                status = RunStatus.FAILED  # a pipeline step's timeout fails the step (and may be retried)
        elif returncode == 0:
            problem = self.check_outputs() if self.check_outputs is not None else None
            status, error = (RunStatus.FINISHED, None) if problem is None else (RunStatus.FAILED, problem)
        else:
            status, error = RunStatus.FAILED, process.describe_exit(returncode)
        self.store.transition(self.run_id, status, exit_code=code, error=error, ended_at=ended)
        return self.store.get(self.run_id)


def _start_error(exc: Exception) -> str:
    if isinstance(exc, MlprojError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot start the command: {exc}"
    return f"cannot start the command: {type(exc).__name__}: {exc}"


def supervise(
    home: Home, run_id: str, output: OutputSink | None = None, *, dedicated: bool = False
) -> RunRecord:
    """Supervise a recorded run in this process until it ends; returns its final record."""
    store = Store.open(home)
    try:
        return Supervisor(store, run_id, output, dedicated=dedicated).run()
    finally:
        store.close()
