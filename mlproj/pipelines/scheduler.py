"""The pipeline supervisor: builds the environments, then runs the DAG with a ready queue.

One scheduler for every case: sequential execution is `max_parallel: 1`. Each step is a run of its
own (kind `step`, its pipeline as parent), executed in a worker thread of this process by the same
`Supervisor` that runs projects, so statuses, logs, timeouts and process-tree cleanup are the same.

Failure semantics (design.md §6): a failed step (after its `retries`) fails the pipeline and its
downstream steps end `Skipped`; without `continue_on_step_failure` no new step starts once a step has
failed (steps already running finish), with it independent branches go on. Canceling the pipeline
(`mlproj cancel`, Ctrl-C, SIGTERM, `--timeout`) stops every running step and records `Canceled` for
it and for every step that had not started.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mlproj import process
from mlproj.errors import MlprojError
from mlproj.execution.ladder import LEFTOVERS, Stop, climb, rungs
from mlproj.execution.signals import Canceled, InterruptCounter, SignalFlags
from mlproj.pipelines.controls import Controls
from mlproj.pipelines.environments import build_environments
from mlproj.pipelines.plan import PipelinePlan
from mlproj.pipelines.records import replan
from mlproj.pipelines.worker import StepWorker
from mlproj.process import DEFAULT_GRACE
from mlproj.proctree import RunProcesses, make_cgroup, mechanism, remove_cgroup
from mlproj.runs.outcome import TIMED_OUT
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Protocol

    class PipelineView(Protocol):
        """What a person sees while a pipeline runs in the foreground."""

        def event(self, line: str) -> None: ...

        redraws: bool  # redrawn while the pipeline runs (a terminal's board), or only events (plain lines)

        def refresh(self, steps: list[RunRecord]) -> None: ...

        def close(self) -> None: ...


REFRESH = 0.25  # how often the view and the pipeline's cancel flag are looked at
_FAILED = (RunStatus.FAILED, RunStatus.CANCELED, RunStatus.SKIPPED)


def step_reason(reason: str) -> str:
    """Why the steps stop: the pipeline's timeout cancels them (their own timeout fails them)."""
    return f"canceled: the pipeline {reason}" if reason.startswith(TIMED_OUT) else reason


def _stop(reason: str, *, interactive: bool = False) -> Stop:
    """The pipeline's stop: its steps' supervisors climb this ladder (with the pipeline's grace)."""
    return Stop(reason, rungs(DEFAULT_GRACE, interactive=interactive))


class PipelineSupervisor:
    def __init__(
        self,
        store: Store,
        run_id: str,
        plan: PipelinePlan | None = None,
        view: PipelineView | None = None,
        on_status: Callable[[str | None], None] | None = None,
        *,
        dedicated: bool = False,
    ) -> None:
        """`dedicated`: this process exists to supervise the pipeline (detached, or `mlproj run` in the
        foreground) and adopts the orphans its steps leave."""
        self.store = store
        self.home = store.home
        self.run_id = run_id
        self.plan = plan
        self.view = view
        self.on_status = on_status
        self.flags = SignalFlags()  # the steps' supervisors share them
        self.ctrl_c = InterruptCounter(self.flags)
        self._stop: Stop | None = None
        self._next_poll = 0.0
        self._log_lock = threading.Lock()
        self.latest: dict[str, RunRecord] = {}  # each step's latest attempt
        self.first_failure: RunRecord | None = None
        self.crashed: str | None = None
        self._running: dict[str, threading.Thread] = {}
        self.dedicated = dedicated
        self.cgroup: Path | None = None  # for the environment builds
        self.early: dict[str, str] = {}  # steps to end now, with why (a sweep's early termination)
        self._upstream: dict[str, set[str]] = {}  # each step's upstream steps (its bindings, read once)

    def run(self) -> RunRecord:
        previous = self.flags.install()
        try:
            record = self._run()
            if record.mlflow_run_id is not None:  # the MLflow runs' ends: sent now, or kept for later
                from mlproj.tracking.runs import report_end

                record = report_end(self.store, record, self.store.steps_of(self.run_id))
            return record
        finally:
            self.flags.restore(previous)
            if self.view is not None:
                self.view.close()

    # --- the run ---------------------------------------------------------------------------------

    def _run(self) -> RunRecord:
        me = os.getpid()
        self.store.update(self.run_id, supervisor_pid=me, supervisor_identity=process.identity(me))
        record = self.store.get(self.run_id)
        if record.is_final:
            return record
        self.log_path = Path(record.log_path or self.home.run_dir(self.run_id) / "output.log")
        if self.dedicated and mechanism() == "tree":
            process.become_subreaper()
        self.cgroup = make_cgroup(self.run_id)
        if self.cgroup is not None:
            self.store.update(self.run_id, cgroup=str(self.cgroup))
        try:
            return self._plan_and_run(record)
        finally:
            self._sweep()

    def _sweep(self) -> None:
        """What the steps left behind once every step has ended: the pipeline's own cgroup (its builds),
        and, for a dedicated supervisor without cgroups, the orphans it adopted."""
        supervisor = os.getpid() if self.dedicated and self.cgroup is None else None
        climb(RunProcesses(self.run_id, cgroup=self.cgroup, supervisor=supervisor), LEFTOVERS)
        remove_cgroup(self.cgroup)
        if self.dedicated:
            process.reap_adopted()

    def _plan_and_run(self, record: RunRecord) -> RunRecord:
        try:
            plan = self.plan or replan(self.home, record)
        except MlprojError as exc:
            return self._end_unstarted(RunStatus.FAILED, f"cannot plan the pipeline: {exc}")
        self.plan = plan
        self.controls = Controls(self, plan)
        self.latest = {r.step or "": r for r in self.store.steps_of(self.run_id)}
        try:
            build_environments(
                self.home,
                plan,
                self.log_path,
                self.cgroup,
                stop_reason=self._stop_reason,
                on_build=self._mark_preparing,
                on_status=self._status,
                log_event=self.log_event,
            )
        except Canceled as canceled:
            return self._end_unstarted(RunStatus.CANCELED, canceled.reason)
        except MlprojError as exc:
            return self._end_unstarted(RunStatus.FAILED, str(exc))
        finally:
            self._status(None)
        self.started = time.time()
        self.store.transition(self.run_id, RunStatus.RUNNING, started_at=self.started)
        try:
            self._schedule(plan, record)
        except Exception as exc:  # noqa: BLE001 - never leave steps running behind a scheduler that failed
            self._abandon(f"the pipeline's scheduler failed: {type(exc).__name__}: {exc}")
        return self._finish(plan)

    def _abandon(self, error: str) -> None:
        """Stop every running step, wait for their supervisors, and end the steps that did not run."""
        self.crashed = error
        self._stop = _stop(error)
        for thread in list(self._running.values()):
            thread.join()
        for step in self.store.steps_of(self.run_id):
            if not step.is_final:
                self.store.transition(step.run_id, RunStatus.CANCELED, error=error, ended_at=time.time())
        self.latest = {r.step or "": r for r in self.store.steps_of(self.run_id)}

    def _end_unstarted(self, status: RunStatus, error: str) -> RunRecord:
        """The pipeline ends before any step started: every step ends with it."""
        now = time.time()
        step_status = RunStatus.CANCELED if status is RunStatus.CANCELED else RunStatus.SKIPPED
        for step in self.store.steps_of(self.run_id):
            self.store.transition(step.run_id, step_status, error=error, ended_at=now)
        self.store.transition(self.run_id, status, error=error, ended_at=now)
        self.log_event(f"pipeline {status.value}: {error}")
        return self.store.get(self.run_id)

    def _stop_reason(self) -> str | None:
        stop = self._check_stop()
        return None if stop is None else stop.reason

    def _mark_preparing(self) -> None:
        if self.store.get(self.run_id).status is not RunStatus.PREPARING:
            self.store.transition(self.run_id, RunStatus.PREPARING)

    # --- scheduling --------------------------------------------------------------------------------

    def _schedule(self, plan: PipelinePlan, record: RunRecord) -> None:
        done: queue.Queue[tuple[str, RunRecord]] = queue.Queue()
        order = list(plan.pipeline.order())
        pending = [name for name in order if not self.latest[name].is_final]
        running = self._running
        halted = False  # a step failed and the pipeline does not continue past failures
        deadline = self.started + record.timeout if record.timeout else None
        next_refresh = 0.0
        while pending or running:
            if self._stop is None:
                self._stop = self._check_stop(deadline)
                if self._stop is not None:
                    self.log_event(f"stopping: {self._stop.reason}")
                    grace = self.store.get(self.run_id).grace
                    for name in running:  # the steps stop with the grace period the pipeline was given
                        self.store.update(self.latest[name].run_id, grace=grace)
                    self._cancel_pending(
                        [*pending, *self.controls.active()], step_reason(self._stop.reason or "")
                    )
                    pending = []
            if self._stop is None:
                self.controls.poll(running)  # sweeps: early termination, their timeout
                pending = self._start_ready(plan, pending, running, done, halted=halted)
            try:
                name, final = done.get(timeout=0.05 if running else REFRESH)
            except queue.Empty:
                name = ""
            while name:
                running.pop(name).join()
                self.latest[name] = final
                halted = self._after(plan, name, final, running, done) or halted
                pending += self.controls.after(name)  # a loop's next iteration, or its end
                try:
                    name, final = done.get_nowait()
                except queue.Empty:
                    name = ""
            if halted and not running and pending:
                failed = self.first_failure
                why = f"the pipeline stopped after step {failed.step} failed" if failed else "stopped"
                for skipped in pending:
                    self._skip(skipped, why)
                pending = []
            if (
                self.view is not None
                and getattr(self.view, "redraws", True)
                and time.monotonic() >= next_refresh
            ):
                # A board of many steps costs more to build: it is redrawn less often.
                next_refresh = time.monotonic() + max(REFRESH, len(self.latest) / 1000)
                self.view.refresh(self._latest_records())

    def _start_ready(
        self,
        plan: PipelinePlan,
        pending: list[str],
        running: dict[str, threading.Thread],
        done: queue.Queue[tuple[str, RunRecord]],
        *,
        halted: bool,
    ) -> list[str]:
        still: list[str] = []
        for index, name in enumerate(pending):
            if len(running) >= plan.max_parallel and not halted:
                # Nothing more can start this turn: the rest wait (a loop's thousand iterations are
                # not looked at after each one that ends).
                still += pending[index:]
                break
            if self.latest[name].is_final:  # a step of an if_else block not taken
                continue
            upstream = self._upstream.get(name)
            if upstream is None:
                upstream = self._upstream[name] = plan.pipeline.steps[name].upstream()
            blocked = [up for up in sorted(upstream) if self.latest[up].status in _FAILED]
            not_taken = self.controls.not_taken
            if blocked and all(up in not_taken for up in blocked):
                # A step that reads what a block not taken makes, or waits only for such blocks, is not
                # run either; one that only waits for it among others (a pipeline job's steps) runs.
                needed = plan.pipeline.steps[name].producers() & set(blocked)
                if needed or upstream <= not_taken:
                    not_taken.add(name)
                    self._skip(name, f"not run: upstream step {blocked[0]} is on a branch not taken")
                    continue
                blocked = []
            if blocked:
                up = self.latest[blocked[0]]
                self._skip(name, f"upstream step {up.step} {up.status.value}")
                continue
            ready = all(self.latest[up].status is RunStatus.FINISHED or up in not_taken for up in upstream)
            if ready and not halted and self.controls.is_control(name):
                added = self.controls.begin(name)  # decided here; a loop's iterations are steps
                still += self._start_ready(plan, added, running, done, halted=halted)  # now, not next turn
                continue
            full = len(running) >= plan.max_parallel or self.controls.at_limit(name, running)
            if not ready or halted or full:
                still.append(name)
                continue
            self._start(plan, name, running, done)
        return still

    def _start(
        self,
        plan: PipelinePlan,
        name: str,
        running: dict[str, threading.Thread],
        done: queue.Queue[tuple[str, RunRecord]],
    ) -> None:
        record = self.latest[name]
        upstream = {
            (up, out): path
            for up in plan.pipeline.steps[name].upstream()
            for out, path in self.latest[up].outputs.items()
        }
        worker = StepWorker(self, plan, name, record, upstream)
        thread = threading.Thread(target=lambda: done.put((name, worker.run())), name=f"step-{name}")
        running[name] = thread
        thread.start()

    def _after(
        self,
        plan: PipelinePlan,
        name: str,
        final: RunRecord,
        running: dict[str, threading.Thread],
        done: queue.Queue[tuple[str, RunRecord]],
    ) -> bool:
        """Handle a step run that ended; True when the pipeline must stop starting steps."""
        step = plan.pipeline.steps[name]
        attempt = final.attempt or 1
        if final.status is RunStatus.FINISHED:
            self.log_event(
                f"{name}: {final.reason}" if final.reused_from else f"{name}: Finished in {_seconds(final)}"
            )
            return False
        if final.status is RunStatus.FAILED and attempt <= step.retries and self._stop is None:
            self.log_event(
                f"{name}: Failed (attempt {attempt} of {step.retries + 1}): {final.error}; retrying"
            )
            from mlproj.pipelines.records import new_step_record

            parent = self.store.get(self.run_id)
            retry = new_step_record(plan, parent, name, attempt + 1)
            retry = retry.evolve(reason=f"ran: retry {attempt + 1} of {step.retries + 1}")
            self.latest[name] = self.store.insert(retry)
            self._start(plan, name, running, done)
            return False
        self.log_event(f"{name}: {final.status.value}" + (f": {final.error}" if final.error else ""))
        if self._stop is not None or name in self.controls.trials:  # a sweep goes on without a trial
            return False
        if self.first_failure is None:
            self.first_failure = final
        return not plan.continue_on_step_failure

    def _skip(self, name: str, why: str) -> None:
        record = self.latest[name]
        self.store.transition(record.run_id, RunStatus.SKIPPED, error=why, reason=why, ended_at=time.time())
        self.latest[name] = self.store.get(record.run_id)
        self.log_event(f"{name}: Skipped: {why}")

    def _cancel_pending(self, pending: list[str], reason: str) -> None:
        for name in pending:
            record = self.latest[name]
            self.store.transition(record.run_id, RunStatus.CANCELED, error=reason, ended_at=time.time())
            self.latest[name] = self.store.get(record.run_id)

    def _latest_records(self) -> list[RunRecord]:
        latest: dict[str, RunRecord] = {}
        for record in self.store.steps_of(self.run_id):
            latest[record.step or ""] = record  # oldest first: the last attempt wins
        from mlproj.pipelines.model import display_order

        order = display_order(self.plan.pipeline.order()) if self.plan is not None else list(latest)
        return [latest[name] for name in order if name in latest]

    # --- stopping ----------------------------------------------------------------------------------

    def _check_stop(self, deadline: float | None = None) -> Stop | None:
        if self.ctrl_c.pressed():
            return _stop("canceled by Ctrl-C", interactive=True)
        if self.flags.stop_signal:
            return _stop(f"canceled: the supervisor received {self.flags.stop_signal}")
        if deadline is not None and time.time() >= deadline:
            return _stop(f"{TIMED_OUT} {self.store.get(self.run_id).timeout:g} s")
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + REFRESH
            if self.store.get(self.run_id).status is RunStatus.CANCEL_REQUESTED:
                return _stop("canceled by mlproj cancel")
        return None

    def step_stop(self, name: str | None = None) -> tuple[str, bool] | None:
        """For the steps' supervisors: (reason, interactive) once the pipeline is being stopped, or once
        the step `name` is (a sweep's early termination)."""
        stop = self._stop
        if stop is not None:
            return step_reason(stop.reason or ""), stop.interactive
        early = self.early.get(name or "")
        return None if early is None else (early, False)

    def stop_step(self, name: str, reason: str) -> None:
        """End one running step (its supervisor sees it through `step_stop`)."""
        self.early.setdefault(name, reason)

    def check_step(self, record: RunRecord, store: Store) -> str | None:
        return self.controls.check(record, store)

    def step_env(self, name: str) -> dict[str, str]:
        return self.controls.env(name)

    # --- the end -----------------------------------------------------------------------------------

    def _finish(self, plan: PipelinePlan) -> RunRecord:
        for name in self.controls.active():  # a loop the scheduler left: it stopped, or halted
            record = self.latest[name]
            if record.is_final:
                continue
            if self._stop is None and self.first_failure is not None:
                why = f"the pipeline stopped after step {self.first_failure.step} failed"
                self.store.transition(record.run_id, RunStatus.FAILED, error=why, ended_at=time.time())
            else:
                self.store.transition(
                    record.run_id, RunStatus.CANCELED, error="the pipeline stopped", ended_at=time.time()
                )
        steps = self._latest_records()
        not_taken = self.controls.not_taken | self.controls.trials  # a sweep's trials: its node says
        now = time.time()
        outputs = {}
        for out_name, binding in plan.pipeline.outputs.items():
            from mlproj.pipelines.model import bindings, job_output

            (ref,) = bindings(binding)
            step, output = job_output(ref) or ("", "")
            producer = self.latest.get(step)
            if producer is not None and producer.status is RunStatus.FINISHED and output in producer.outputs:
                outputs[out_name] = producer.outputs[output]
        if self.crashed is not None:
            status, error = RunStatus.FAILED, self.crashed
        elif self._stop is not None:
            status, error = RunStatus.CANCELED, self._stop.reason or "canceled"
        elif any(step.status is not RunStatus.FINISHED and step.step not in not_taken for step in steps):
            status = RunStatus.FAILED
            failed = self.first_failure or next(
                s for s in steps if s.status is not RunStatus.FINISHED and s.step not in not_taken
            )
            error = f"step {failed.step} {failed.status.value}" + (
                f": {failed.error}" if failed.error else ""
            )
        else:
            status, error = RunStatus.FINISHED, None
        self.store.update(self.run_id, outputs=outputs)
        self.store.transition(self.run_id, status, error=error, ended_at=now)
        self.log_event(f"pipeline {status.value}" + (f": {error}" if error else ""))
        if self.view is not None:
            self.view.refresh(steps)
        return self.store.get(self.run_id)

    # --- output ------------------------------------------------------------------------------------

    def _status(self, text: str | None) -> None:
        if self.on_status is not None:
            self.on_status(text)

    def log_event(self, line: str) -> None:
        """An event: into the pipeline's log (what `logs` and `wait` show) and to the view."""
        with self._log_lock:
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(f"mlproj: {line}\n")
            if self.view is not None:
                self.view.event(line)


def _seconds(record: RunRecord) -> str:
    from mlproj.ui.console import format_duration

    return format_duration(record.duration_s)
