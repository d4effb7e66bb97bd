"""One attempt of one pipeline step, in a worker thread of its pipeline's supervisor: its values bound,
its reuse decided (design.md §6), and, unless reused, run as a run of its own under the same
`Supervisor` as a project run."""

from __future__ import annotations

import time
from pathlib import Path

from mlproj import process
from mlproj.errors import MlprojError
from mlproj.pipelines.bindings import URI_INPUTS, Bindings, received_outputs
from mlproj.pipelines.model import PRIMITIVE_OUTPUTS, is_file_output
from mlproj.pipelines.parallel_jobs import RUNNER_VARIABLE
from mlproj.pipelines.plan import PipelinePlan, StepPlan
from mlproj.runs.record import RunRecord
from mlproj.runs.request import RunRequest
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any, Protocol

    class StepOwner(Protocol):
        """What a step's worker needs of its pipeline's supervisor."""

        home: Home
        flags: SignalFlags

        def log_event(self, line: str) -> None: ...

        def step_stop(self, name: str | None = None) -> tuple[str, bool] | None: ...

        def check_step(self, record: RunRecord, store: Store) -> str | None: ...

        def step_env(self, name: str) -> dict[str, str]: ...

    from mlproj.execution.signals import SignalFlags
    from mlproj.home import Home
    from mlproj.pipelines.hashing import ContentHasher
    from mlproj.spec import EntryPoint, Project


class StepWorker:
    """Runs one attempt of one step in a worker thread: binds its values, decides reuse, runs it."""

    def __init__(
        self,
        owner: StepOwner,
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
            except Exception as exc:  # noqa: BLE001 - never leave a step unfinished
                error = f"internal error: {type(exc).__name__}: {exc}"
                store.transition(self.record.run_id, RunStatus.FAILED, error=error, ended_at=time.time())
            return store.get(self.record.run_id)
        finally:
            store.close()

    def _run(self, store: Store) -> RunRecord:
        from mlproj.pipelines.hashing import ContentHasher
        from mlproj.pipelines.model import bindings as spec_bindings
        from mlproj.pipelines.reuse import decide

        plan, step_plan = self.plan, self.plan.steps[self.name]
        step = step_plan.step
        attempt = self.record.attempt or 1
        folder = Path(self.record.run_dir or "")
        own = {out: str(plan.output_path(self.name, out, attempt)) for out in step.outputs}
        hasher = ContentHasher(store)
        upstream = self.upstream
        steps = plan.pipeline.steps
        if any(steps[up].outputs.get(out) in PRIMITIVE_OUTPUTS for up, out in upstream if up in steps):
            from mlproj.pipelines.controls import read_text

            def value(path: str, _kind: str) -> str:
                return read_text(path, f"{self.name}: the value in {path}").strip()

            upstream = received_outputs(steps, step, upstream, value)  # their values, not their files
        bindings = Bindings(
            parent_inputs=plan.inputs,
            upstream_outputs=upstream,
            values=frozenset(key for key, value in upstream.items() if value != self.upstream[key]),
            own_outputs=own,
            content=hasher.content_key,
            uri_inputs=frozenset(n for n, i in plan.pipeline.inputs.items() if i.type in URI_INPUTS),
        )
        bindings.bind_step_inputs(step)
        parts: dict[str, str] = {"definition": _definition(step_plan)}
        # The step run's `parameters` (design.md §5): its entry point's, or a command step's inputs.
        self.parameters = {name: value for name, (value, _key) in bindings.step_inputs.items()}
        if step_plan.project is not None and step_plan.entry_point is not None:
            command = self._project_command(step_plan.project, step_plan.entry_point, bindings, hasher, parts)
        else:
            command, _key = bindings.render_command(step.command or "")
            for ref in spec_bindings(step.command):  # pipeline values written into the command itself
                if ref[0] == "parent" and bindings.present(".".join(ref)):
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
        resumed = self._resumed(store, parts) if attempt == 1 else None
        why = f"reused from {resumed.run_id} (resume)" if resumed is not None else ""
        if resumed is not None and (reused := self._reuse(store, resumed, parts, why)) is not None:
            return reused
        decision = decide(
            store,
            parts,
            step.outputs,
            pipeline_uri=plan.uri,
            step=self.name,
            pipeline_run_id=plan.run_id,
            refuse=refuse,
        )
        producer = decision.reuse
        if producer is not None and (
            reused := self._reuse(store, producer, parts, decision.reason, decision.key)
        ):
            return reused
        why = decision.reason if producer is None else "ran: the run it would have reused was deleted (gc)"
        return self._execute(store, command, folder, own, parts, decision.key, why)

    def _project_command(
        self,
        project: Project,
        entry_point: EntryPoint,
        bindings: Bindings,
        hasher: ContentHasher,
        parts: dict[str, str],
    ) -> str:
        from mlproj.params import render_command
        from mlproj.pipelines.plan import resolve_step_parameters

        step_plan = self.plan.steps[self.name]
        resolved_values = {p: bindings.resolve(v) for p, v in step_plan.step.parameters.items()}
        given = {p: value for p, (value, _key) in resolved_values.items()}
        own_outputs = Path(self.record.run_dir or "") / "outputs"  # made when the step starts
        try:
            resolved = resolve_step_parameters(
                project, entry_point, given, self.plan.pipeline.folder, own_outputs
            )
        except MlprojError as exc:
            raise MlprojError(f"{step_plan.key}.parameters: {exc}") from None
        declared = entry_point.parameters
        for param, value in resolved.values.items():
            key = resolved_values[param][1] if param in resolved_values else f"default:{value}"
            if param in declared and declared[param].type == "path" and not key.startswith("<outputs."):
                key = hasher.content_key(resolved.rendered[param])
            parts[f"parameters.{param}"] = key
        self.parameters = dict(resolved.values)
        return render_command(entry_point, resolved)

    def _code_part(self, step_plan: StepPlan, hasher: ContentHasher) -> str:
        if step_plan.code_ref is not None:  # a Git project: its commit says what its content is
            return step_plan.code_ref
        if step_plan.work_dir is None:
            return "none"
        return str(hasher.content_key(str(step_plan.work_dir)))

    def _resumed(self, store: Store, parts: dict[str, str]) -> RunRecord | None:
        """With `resume`, the step run that finished this step in the resumed run, if its outputs exist
        (a loop's iteration or a sweep's trial: if it also had the same inputs, its key)."""
        from mlproj.pipelines.model import loop_of
        from mlproj.pipelines.reuse import make_key, outputs_exist

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
        steps = self.plan.pipeline.steps
        in_loop = loop_of(self.name, {name for name in steps if steps[name].is_control})
        if in_loop and producer.reuse_key != make_key(parts):
            return None  # the same name, other inputs (a random sweep without a seed draws anew)
        return store.get(producer.reused_from) if producer.reused_from else producer

    def _reuse(
        self, store: Store, producer: RunRecord, parts: dict[str, str], reason: str, key: str | None = None
    ) -> RunRecord | None:
        """The step, reused from `producer`; None when the producer has been deleted meanwhile (the
        step must run). Claimed in one transaction with a look at the producer: `mlproj gc` deletes a
        run's record in its own, before its folder, and keeps any run a step has claimed."""
        from mlproj.errors import RunNotFoundError
        from mlproj.pipelines.reuse import make_key

        with store.immediate():
            try:
                store.get(producer.run_id)
            except RunNotFoundError:
                return None
            store.update(self.record.run_id, reused_from=producer.run_id)
        self._track(store, reused_from=producer.mlflow_run_id or producer.run_id)
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
        from mlproj.tracking.runs import report_end

        return report_end(store, store.get(self.record.run_id))

    def _track(self, store: Store, reused_from: str | None = None) -> dict[str, str]:
        """The step's nested MLflow run, when its pipeline is tracked; the workload's variables."""
        parent = store.get(self.plan.run_id)
        if parent.mlflow_run_id is None:
            return {}
        from mlproj.tracking.runs import begin_nested

        step = store.get(self.record.run_id)
        return begin_nested(store, parent, step, self.parameters, reused_from=reused_from)

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
        from mlproj.backends import get_backend
        from mlproj.execution.supervisor import Supervisor

        step_plan = self.plan.steps[self.name]
        folder.mkdir(parents=True, exist_ok=True)
        for out, path in own.items():
            target = Path(path)
            (target.parent if is_file_output(step_plan.step.outputs[out]) else target).mkdir(
                parents=True, exist_ok=True
            )
        work_dir = step_plan.work_dir or folder
        if step_plan.step.code_copy:  # Azure ML runs a job in a snapshot of its code
            work_dir = copy_code(step_plan.work_dir, folder / "code", self.owner.home.root)
        tracking_env = self._track(store) or self.owner.step_env(self.name)
        variables = {**step_plan.step.environment_variables}
        if RUNNER_VARIABLE in variables:  # a parallel job: its runner where a container sees it too
            import shutil

            from mlproj.pipelines.parallel_jobs import RUNNER

            runner = folder / "parallel_runner.py"
            shutil.copyfile(RUNNER, runner)  # this mlproj's, whatever path a saved pipeline names
            variables[RUNNER_VARIABLE] = str(runner)
        artifacts = step_plan.step.artifacts_output
        if artifacts is not None and get_backend(step_plan.backend).copies_working_dir:
            # The job writes ./outputs in the cluster's copy of its folder: copied back when it ends.
            variables[ARTIFACTS_VARIABLE] = own[artifacts]
            command = COPY_BACK + command
        request = RunRequest(
            command=command,
            cwd=str(work_dir),
            shell=process.shell(),
            env={
                **variables,
                "MLPROJ_PIPELINE_RUN_ID": self.plan.run_id,
                "MLPROJ_STEP": self.name,
                "MLPROJ_BACKEND": step_plan.backend,
                **tracking_env,
            },
            env_manager=step_plan.env_manager,
            env_spec=in_container(
                step_plan, self.plan.run_dir, mounted_paths(step_plan, self.plan, self.parameters)
            ),
            backend=step_plan.backend,
            backend_config=dict(step_plan.backend_config),
        )
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
        stopping = self.owner.step_stop(self.name)
        if stopping is not None:
            store.transition(self.record.run_id, RunStatus.CANCELED, error=stopping[0], ended_at=time.time())
            return store.get(self.record.run_id)
        store.transition(self.record.run_id, RunStatus.QUEUED)
        self.owner.log_event(f"{self.name}: Running ({reason})")

        def check_outputs() -> str | None:
            for out, path in own.items():
                if is_file_output(step_plan.step.outputs[out]) and not Path(path).is_file():
                    return f"the step did not write its output {out!r} ({path})"
            return self.owner.check_step(store.get(self.record.run_id), store)  # a trial: its metric

        def external_stop() -> tuple[str, bool] | None:
            return self.owner.step_stop(self.name)

        return Supervisor(
            store,
            self.record.run_id,
            check_outputs=check_outputs,
            external_stop=external_stop,
            flags=self.owner.flags,
        ).run()


ARTIFACTS_VARIABLE = "MLPROJ_ARTIFACTS_DIR"
COPY_BACK = (
    "mkdir -p outputs; "
    f'trap \'mkdir -p "${ARTIFACTS_VARIABLE}" && cp -R outputs/. "${ARTIFACTS_VARIABLE}"/\' EXIT\n'
)


def copy_code(code: Path | None, target: Path, home: Path) -> Path:
    """A step's code folder copied to `target` (an empty folder without code), its `outputs` folder
    made; Git's folder, Python's caches and mlproj's home (should it be inside) are not copied."""
    import shutil

    if target.exists():  # a retry's folder is new; a resumed supervisor's copy is the one
        shutil.rmtree(target)
    if code is not None:
        home_dir = home.resolve()

        def ignored(folder: str, names: list[str]) -> set[str]:
            here = Path(folder).resolve()
            skip = {name for name in names if name in (".git", "__pycache__")}
            return skip | {name for name in names if (here / name).resolve() == home_dir}

        try:
            shutil.copytree(code, target, symlinks=True, ignore=ignored)
        except (OSError, shutil.Error) as exc:
            first = exc.args[0][0] if isinstance(exc, shutil.Error) and exc.args[0] else exc
            raise MlprojError(f"cannot copy the code folder {code}: {str(first)[:300]}") from None
    (target / "outputs").mkdir(parents=True, exist_ok=True)
    return target


def mounted_paths(step_plan: StepPlan, plan: PipelinePlan, values: dict[str, str]) -> list[str]:
    """The file and folder inputs of a step that a container needs mounted where they are."""
    from mlproj.pipelines.model import BINDING

    step, found = step_plan.step, []
    for name, raw in step.inputs.items():
        kind = step.input_types.get(name)
        whole = BINDING.fullmatch(raw.strip()) if isinstance(raw, str) else None
        if kind is None and whole is not None:
            ref = [part.strip() for part in whole.group(1).split(".")]
            if ref[:2] == ["parent", "inputs"] and len(ref) == 3 and ref[2] in plan.pipeline.inputs:
                kind = plan.pipeline.inputs[ref[2]].type
        if kind in URI_INPUTS and name in values and Path(values[name]).is_absolute():
            found.append(values[name])
    return sorted(set(found))


def in_container(step_plan: StepPlan, run_dir: Path, paths: list[str]) -> Any:
    """The step's environment; an image gets the pipeline run's folder and the step's file and folder
    inputs mounted where they are on this machine, so that the paths in its command are the same
    inside. A path that cannot be mounted so (`:` in it, or a system folder) is an error."""
    from mlproj.structs import replace

    spec = step_plan.env_spec
    if spec is None or spec.docker is None:
        return spec
    volumes = list(spec.docker.get("volumes") or [])
    for path, mode in [
        (str(run_dir), "rw"),
        *((p, "ro") for p in paths if not Path(p).is_relative_to(run_dir)),
    ]:
        if ":" in path or Path(path).resolve() in SYSTEM_FOLDERS:
            raise MlprojError(f"{path}: cannot be mounted into the step's container at the same path")
        volumes.append(f"{path}:{path}:{mode}")
    return replace(spec, docker={**spec.docker, "volumes": volumes})


SYSTEM_FOLDERS = frozenset(
    Path(p) for p in ("/", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/dev", "/proc", "/sys", "/var")
)


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
    if step.environment_variables:
        body["environment_variables"] = dict(step.environment_variables)
    if step.code_copy:
        body["code_copy"] = True
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _environment_part(step_plan: StepPlan) -> str:
    from mlproj.envs import get_manager

    spec = step_plan.env_spec
    fingerprint = get_manager(step_plan.env_manager).fingerprint(spec) if spec is not None else "-"
    return f"{step_plan.env_manager}:{fingerprint}"
