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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from mlproj import process
from mlproj.errors import MlprojError
from mlproj.execution.ladder import LEFTOVERS, Stop, climb
from mlproj.home import Home
from mlproj.pipelines.plan import URI_INPUTS, Bindings, PipelineOptions, PipelinePlan, StepPlan
from mlproj.proctree import RunProcesses, make_cgroup, mechanism, remove_cgroup
from mlproj.runs.outcome import TIMED_OUT
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store
from mlproj.runs.supervisor import Canceled, InterruptCounter, SignalFlags, run_build_step, stop_for

REFRESH = 0.25  # how often the view and the pipeline's cancel flag are looked at
_FAILED = (RunStatus.FAILED, RunStatus.CANCELED, RunStatus.SKIPPED)


class PipelineView(Protocol):
    """What a person sees while a pipeline runs in the foreground."""

    def event(self, line: str) -> None: ...

    def refresh(self, steps: list[RunRecord]) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Stop:
    reason: str
    interactive: bool

    @property
    def step_reason(self) -> str:
        """Why the steps stop: the pipeline's timeout cancels them (their own timeout fails them)."""
        return f"canceled: the pipeline {self.reason}" if self.reason.startswith(TIMED_OUT) else self.reason


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
        self._stop: _Stop | None = None
        self._next_poll = 0.0
        self._log_lock = threading.Lock()
        self.latest: dict[str, RunRecord] = {}  # each step's latest attempt
        self.first_failure: RunRecord | None = None
        self.crashed: str | None = None
        self._running: dict[str, threading.Thread] = {}
        self.dedicated = dedicated
        self.cgroup: Path | None = None  # for the environment builds

    def run(self) -> RunRecord:
        previous = self.flags.install()
        try:
            return self._run()
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
        self.latest = {r.step or "": r for r in self.store.steps_of(self.run_id)}
        try:
            self._build_environments(plan)
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
        except Exception as exc:  # never leave steps running behind a scheduler that failed
            self._abandon(f"the pipeline's scheduler failed: {type(exc).__name__}: {exc}")
        return self._finish(plan)

    def _abandon(self, error: str) -> None:
        """Stop every running step, wait for their supervisors, and end the steps that did not run."""
        self.crashed = error
        self._stop = _Stop(error, False)
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

    # --- environments ----------------------------------------------------------------------------

    def _build_environments(self, plan: PipelinePlan) -> None:
        """Each distinct environment the steps need, built once (or found in the cache) before any
        step starts; the builds' output goes to the pipeline's log."""
        from mlproj.envs import get_manager
        from mlproj.envs.build import prepare_environment

        wanted: dict[str, StepPlan] = {}
        from mlproj.backends import get_backend

        for step_plan in plan.steps.values():
            spec = step_plan.env_spec
            if spec is None or not get_manager(step_plan.env_manager).cached:
                continue
            if not get_backend(step_plan.backend).prepares_environment:
                continue  # the cluster builds it
            wanted.setdefault(spec.fingerprint(step_plan.env_manager), step_plan)
        if not wanted:
            return
        base_env = {**os.environ, process.RUN_ID_VARIABLE: self.run_id}
        marked = False

        def mark_preparing() -> None:
            nonlocal marked
            if not marked:
                self.store.transition(self.run_id, RunStatus.PREPARING)
                marked = True

        def check_cancel() -> None:
            stop = self._check_stop()
            if stop is not None:
                raise Canceled(stop.reason)

        for step_plan in wanted.values():
            assert step_plan.env_spec is not None  # noqa: S101 - filtered above
            prepared = prepare_environment(
                self.home,
                step_plan.env_manager,
                step_plan.env_spec,
                base_env,
                run_step=lambda build_step: run_build_step(
                    self.run_id,
                    build_step,
                    base_env,
                    self.log_path,
                    self._status,
                    self._build_stop,
                    self.cgroup,
                ),
                on_build=mark_preparing,
                on_status=self._status,
                check_cancel=check_cancel,
                rebuild=plan.options.rebuild_env,
            )
            what = "reused" if prepared.reused else "built"
            self.log_event(f"environment {step_plan.env_manager} {prepared.fingerprint} {what}")

    def _build_stop(self) -> Stop | None:
        stop = self._check_stop()
        return None if stop is None else stop_for(stop.reason, process.LEFTOVER_GRACE, False)

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
                    self._cancel_pending(pending, self._stop.step_reason)
                    pending = []
            if self._stop is None:
                pending = self._start_ready(plan, pending, running, done, halted)
            try:
                name, final = done.get(timeout=0.05 if running else REFRESH)
            except queue.Empty:
                name = ""
            while name:
                running.pop(name).join()
                self.latest[name] = final
                halted = self._after(plan, name, final, pending, running, done) or halted
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
            if self.view is not None and time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + REFRESH
                self.view.refresh(self._latest_records())

    def _start_ready(
        self,
        plan: PipelinePlan,
        pending: list[str],
        running: dict[str, threading.Thread],
        done: queue.Queue[tuple[str, RunRecord]],
        halted: bool,
    ) -> list[str]:
        still = []
        for name in pending:
            upstream = plan.pipeline.steps[name].upstream()
            blocked = [up for up in sorted(upstream) if self.latest[up].status in _FAILED]
            if blocked:
                up = self.latest[blocked[0]]
                self._skip(name, f"upstream step {up.step} {up.status.value}")
                continue
            ready = all(self.latest[up].status is RunStatus.FINISHED for up in upstream)
            if not ready or halted or len(running) >= plan.max_parallel:
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
        pending: list[str],
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
            from mlproj.pipelines.submit import new_step_record

            parent = self.store.get(self.run_id)
            retry = new_step_record(plan, parent, name, attempt + 1)
            retry = retry.evolve(reason=f"ran: retry {attempt + 1} of {step.retries + 1}")
            self.latest[name] = self.store.insert(retry)
            self._start(plan, name, running, done)
            return False
        self.log_event(f"{name}: {final.status.value}" + (f": {final.error}" if final.error else ""))
        if self._stop is not None:
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
        assert self.plan is not None  # noqa: S101
        return [latest[name] for name in self.plan.pipeline.order() if name in latest]

    # --- stopping ----------------------------------------------------------------------------------

    def _check_stop(self, deadline: float | None = None) -> _Stop | None:
        if self.ctrl_c.pressed():
            return _Stop("canceled by Ctrl-C", True)
        if self.flags.stop_signal:
            return _Stop(f"canceled: the supervisor received {self.flags.stop_signal}", False)
        if deadline is not None and time.time() >= deadline:
            return _Stop(f"{TIMED_OUT} {self.store.get(self.run_id).timeout:g} s", False)
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + REFRESH
            if self.store.get(self.run_id).status is RunStatus.CANCEL_REQUESTED:
                return _Stop("canceled by mlproj cancel", False)
        return None

    def step_stop(self) -> tuple[str, bool] | None:
        """For the steps' supervisors: (reason, interactive) once the pipeline is being stopped."""
        stop = self._stop
        return None if stop is None else (stop.step_reason, stop.interactive)

    # --- the end -----------------------------------------------------------------------------------

    def _finish(self, plan: PipelinePlan) -> RunRecord:
        steps = self._latest_records()
        now = time.time()
        outputs = {}
        for out_name, binding in plan.pipeline.outputs.items():
            from mlproj.pipelines.spec import bindings

            (ref,) = bindings(binding)
            producer = self.latest.get(ref[2])
            if producer is not None and producer.status is RunStatus.FINISHED and ref[4] in producer.outputs:
                outputs[out_name] = producer.outputs[ref[4]]
        if self.crashed is not None:
            status, error = RunStatus.FAILED, self.crashed
        elif self._stop is not None:
            status, error = RunStatus.CANCELED, self._stop.reason
        elif any(step.status is not RunStatus.FINISHED for step in steps):
            status = RunStatus.FAILED
            failed = self.first_failure or next(s for s in steps if s.status is not RunStatus.FINISHED)
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
    from mlproj.ui.text import format_duration

    return format_duration(record.duration_s)


def replan(home: Home, record: RunRecord) -> PipelinePlan:
    """The plan of a recorded pipeline run, from the run's copy of its pipeline file (a detached
    supervisor, or `resume`)."""
    from mlproj.pipelines.plan import plan_pipeline
    from mlproj.pipelines.spec import load_pipeline
    from mlproj.sources import FetchedSource

    data = dict((record.request or {}).get("pipeline") or {})
    options_data = dict(data.get("options") or {})
    file = Path(data["file"])
    pipeline = load_pipeline(Path(data["snapshot"]), as_file=file)
    options = PipelineOptions(
        uri=options_data.get("uri") or str(file),
        version=options_data.get("version"),
        inputs=dict(options_data.get("inputs") or {}),
        env_manager=options_data.get("env_manager"),
        experiment=record.experiment,
        run_name=record.run_name,
        tags=dict(record.tags),
        max_parallel=data.get("max_parallel"),
        force_rerun=bool(data.get("force_rerun")),
        continue_on_step_failure=bool(data.get("continue_on_step_failure")),
        timeout=record.timeout,
        caller_dir=Path(options_data.get("caller_dir") or file.parent),
        run_id=record.run_id,
        rebuild_env=bool(options_data.get("rebuild_env")),
        resume_from=options_data.get("resume_from"),
        backend=options_data.get("backend"),
        backend_config=options_data.get("backend_config"),
    )
    source = FetchedSource(
        uri=record.uri or str(file),
        path=file,
        version=record.version,
        commit=record.commit,
        subdirectory=None,
        is_git=False,
    )
    run_dir = Path(record.run_dir or home.run_dir(record.run_id))
    plan = plan_pipeline(source, options, home, record.run_id, run_dir, pipeline=pipeline, materialize=True)
    return replace(plan, uri=record.uri or plan.uri)


class StepWorker:
    """Runs one attempt of one step in a worker thread: binds its values, decides reuse, runs it."""

    def __init__(
        self,
        owner: PipelineSupervisor,
        plan: PipelinePlan,
        name: str,
        record: RunRecord,
        upstream: dict[tuple[str, str], str],
    ) -> None:
        self.owner = owner
        self.plan = plan
        self.name = name
        self.record = record
        self.upstream = upstream
        self.parameters: dict[str, str] = {}

    def run(self) -> RunRecord:
        store = Store.open(self.owner.home)
        try:
            try:
                return self._run(store)
            except MlprojError as exc:
                store.transition(self.record.run_id, RunStatus.FAILED, error=str(exc), ended_at=time.time())
            except Exception as exc:  # never leave a step unfinished
                error = f"internal error: {type(exc).__name__}: {exc}"
                store.transition(self.record.run_id, RunStatus.FAILED, error=error, ended_at=time.time())
            return store.get(self.record.run_id)
        finally:
            store.close()

    def _run(self, store: Store) -> RunRecord:
        from mlproj.pipelines.hashing import ContentHasher
        from mlproj.pipelines.reuse import decide
        from mlproj.pipelines.spec import bindings as spec_bindings

        plan, step_plan = self.plan, self.plan.steps[self.name]
        step = step_plan.step
        attempt = self.record.attempt or 1
        folder = Path(self.record.run_dir or "")
        own = {out: str(plan.output_path(self.name, out, attempt)) for out in step.outputs}
        hasher = ContentHasher(store)
        bindings = Bindings(
            parent_inputs=plan.inputs,
            upstream_outputs=self.upstream,
            own_outputs=own,
            content=hasher.content_key,
            uri_inputs=frozenset(n for n, i in plan.pipeline.inputs.items() if i.type in URI_INPUTS),
        )
        bindings.bind_step_inputs(step)
        parts: dict[str, str] = {"definition": _definition(step_plan)}
        # The step run's `parameters` (design.md §5): its entry point's, or a command step's inputs.
        self.parameters = {name: value for name, (value, _key) in bindings.step_inputs.items()}
        if step_plan.entry_point is not None:
            command = self._project_command(bindings, hasher, parts)
        else:
            assert step.command is not None  # noqa: S101 - a command step has a command
            command, _key = bindings.render_command(step.command)
            for ref in spec_bindings(step.command):  # pipeline values written into the command itself
                if ref[0] == "parent":
                    parts[".".join(ref)] = bindings.lookup(ref)[1]
        for input_name, (_value, key) in bindings.step_inputs.items():
            parts[f"inputs.{input_name}"] = key
        parts["code"] = self._code_part(step_plan, hasher)
        parts["environment"] = _environment_part(step_plan)
        refuse = None
        if attempt > 1:
            refuse = f"retry {attempt} of {step.retries + 1}"
        elif plan.force_rerun:
            refuse = "--force-rerun"
        elif not step.allow_reuse:
            refuse = "allow_reuse is false"
        resumed = self._resumed(store) if attempt == 1 else None
        if resumed is not None:
            return self._reuse(store, resumed, parts, f"reused from {resumed.run_id} (resume)")
        decision = decide(
            store,
            parts,
            step.outputs,
            pipeline_uri=plan.uri,
            step=self.name,
            pipeline_run_id=plan.run_id,
            refuse=refuse,
        )
        if decision.reuse is not None:
            return self._reuse(store, decision.reuse, parts, decision.reason, decision.key)
        return self._execute(store, command, folder, own, parts, decision.key, decision.reason)

    def _project_command(self, bindings: Bindings, hasher: Any, parts: dict[str, str]) -> str:
        from mlproj.params import render_command
        from mlproj.pipelines.plan import resolve_step_parameters

        step_plan = self.plan.steps[self.name]
        assert step_plan.entry_point is not None  # noqa: S101
        resolved_values = {p: bindings.resolve(v) for p, v in step_plan.step.parameters.items()}
        given = {p: value for p, (value, _key) in resolved_values.items()}
        own_outputs = Path(self.record.run_dir or "") / "outputs"  # made when the step starts
        try:
            resolved = resolve_step_parameters(step_plan, given, self.plan.pipeline.folder, own_outputs)
        except MlprojError as exc:
            raise MlprojError(f"{step_plan.key}.parameters: {exc}") from None
        declared = step_plan.entry_point.parameters
        for param, value in resolved.values.items():
            key = resolved_values[param][1] if param in resolved_values else f"default:{value}"
            if param in declared and declared[param].type == "path" and not key.startswith("<outputs."):
                key = hasher.content_key(resolved.rendered[param])
            parts[f"parameters.{param}"] = key
        self.parameters = dict(resolved.values)
        return str(render_command(step_plan.entry_point, resolved))

    def _code_part(self, step_plan: StepPlan, hasher: Any) -> str:
        if step_plan.code_ref is not None:  # a Git project: its commit says what its content is
            return step_plan.code_ref
        if step_plan.work_dir is None:
            return "none"
        return str(hasher.content_key(str(step_plan.work_dir)))

    def _resumed(self, store: Store) -> RunRecord | None:
        """With `resume`, the step run that finished this step in the resumed run, if its outputs exist."""
        from mlproj.pipelines.reuse import outputs_exist

        earlier = self.plan.options.resume_from
        if not earlier:
            return None
        finished = [
            r for r in store.steps_of(earlier) if r.step == self.name and r.status is RunStatus.FINISHED
        ]
        if not finished:
            return None
        producer = finished[-1]
        if not outputs_exist(producer.outputs, self.plan.steps[self.name].step.outputs):
            return None
        return store.get(producer.reused_from) if producer.reused_from else producer

    def _reuse(
        self, store: Store, producer: RunRecord, parts: dict[str, str], reason: str, key: str | None = None
    ) -> RunRecord:
        from mlproj.pipelines.reuse import make_key

        now = time.time()
        store.transition(
            self.record.run_id,
            RunStatus.FINISHED,
            parameters=self.parameters,
            reused_from=producer.run_id,
            outputs=dict(producer.outputs),
            reuse_key=key or make_key(parts),
            reuse_parts=parts,
            reason=reason,
            started_at=now,
            ended_at=now,
        )
        return store.get(self.record.run_id)

    def _execute(
        self,
        store: Store,
        command: str,
        folder: Path,
        own: dict[str, str],
        parts: dict[str, str],
        key: str,
        reason: str,
    ) -> RunRecord:
        from mlproj.launch import shell
        from mlproj.runs.supervisor import Supervisor

        step_plan = self.plan.steps[self.name]
        folder.mkdir(parents=True, exist_ok=True)
        for out, path in own.items():
            target = Path(path)
            (target.parent if step_plan.step.outputs[out] == "uri_file" else target).mkdir(
                parents=True, exist_ok=True
            )
        work_dir = step_plan.work_dir or folder
        request = {
            "argv": [shell(), "-c", command],
            "cwd": str(work_dir),
            "project_dir": str(work_dir),
            "env": {"MLPROJ_PIPELINE_RUN_ID": self.plan.run_id, "MLPROJ_STEP": self.name},
            "env_spec": step_plan.env_spec.to_dict() if step_plan.env_spec else None,
            "rebuild_env": False,
            "backend_config": dict(step_plan.backend_config),
        }
        store.update(
            self.record.run_id,
            parameters=self.parameters,
            command=command,
            request=request,
            outputs=own,
            reuse_key=key,
            reuse_parts=parts,
            reason=reason,
        )
        stopping = self.owner.step_stop()
        if stopping is not None:
            store.transition(self.record.run_id, RunStatus.CANCELED, error=stopping[0], ended_at=time.time())
            return store.get(self.record.run_id)
        store.transition(self.record.run_id, RunStatus.QUEUED)
        self.owner.log_event(f"{self.name}: Running ({reason})")

        def check_outputs() -> str | None:
            for out, path in own.items():
                if step_plan.step.outputs[out] == "uri_file" and not Path(path).is_file():
                    return f"the step did not write its output {out!r} ({path})"
            return None

        def external_stop() -> tuple[str, bool] | None:
            return self.owner.step_stop()

        return Supervisor(
            store,
            self.record.run_id,
            check_outputs=check_outputs,
            external_stop=external_stop,
            flags=self.owner.flags,
        ).run()


def _definition(step_plan: StepPlan) -> str:
    """The step's own definition, hashed: what it runs and what it declares."""
    import hashlib
    import json

    step = step_plan.step
    body: dict[str, Any] = {"type": step.type, "outputs": dict(step.outputs)}
    if step_plan.entry_point is not None:
        entry_point = step_plan.entry_point
        body["entry_point"] = entry_point.name
        body["command"] = entry_point.command
        body["parameters"] = {n: [p.type, p.default] for n, p in entry_point.parameters.items()}
    else:
        body["command"] = step.command
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _environment_part(step_plan: StepPlan) -> str:
    spec = step_plan.env_spec
    fingerprint = spec.fingerprint(step_plan.env_manager) if spec is not None else "-"
    return f"{step_plan.env_manager}:{fingerprint}"
