"""A pipeline run resolved and checked before anything runs: inputs, each step's project or command,
its parameters and its environment (design.md §6).

Every problem is an input error that names the pipeline file and the key path of the step. Values
that come from upstream outputs are not known until those steps have run: they are checked with the
folders the outputs will have in this run, which do not exist yet (`path` parameters bound to them are
checked for existence when the step starts).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from mlproj.envs.select import select_environment
from mlproj.errors import InputError, MlprojError, SpecError
from mlproj.home import Home
from mlproj.params import ResolvedParameters, check_command_size, render_command
from mlproj.pipelines.bindings import PLACEHOLDERS, Bindings, received_outputs
from mlproj.pipelines.loader import load_pipeline
from mlproj.pipelines.model import Pipeline, Step, is_file_output
from mlproj.pipelines.options import PipelineOptions
from mlproj.pipelines.placement import configured, step_backend
from mlproj.structs import dataclass, field, replace

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.runs.envspec import EnvSpec
    from mlproj.sources import FetchedSource
    from mlproj.spec import EntryPoint, Project

STEPS_FOLDER = "steps"


@dataclass(frozen=True)
class StepPlan:
    """One step, resolved: what it runs, where, and in which environment."""

    name: str
    step: Step
    key: str  # its key path in the file: jobs.train
    work_dir: Path | None  # the project or code folder; None: the step's own folder
    uri: str | None  # what is recorded as the step run's uri
    commit: str | None
    project: Project | None  # mlflow_project steps
    entry_point: EntryPoint | None
    env_manager: str
    env_spec: EnvSpec | None
    code_ref: str | None = None  # a Git project: `git:<uri>@<commit>#<subdirectory>`, its content's name
    backend: str = "local"
    backend_config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelinePlan:
    run_id: str
    options: PipelineOptions
    pipeline: Pipeline
    uri: str
    commit: str | None
    run_dir: Path
    inputs: Mapping[str, str]  # resolved values: local uri inputs as absolute paths
    recorded_inputs: Mapping[str, str]  # as given or defaulted (the run's `parameters`)
    steps: Mapping[str, StepPlan]
    experiment: str
    max_parallel: int
    force_rerun: bool
    continue_on_step_failure: bool
    templates: Mapping[str, StepPlan] = field(default_factory=dict)  # loop bodies (their iterations' plans)

    def output_path(self, step: str, output: str, attempt: int = 1) -> Path:
        """Where an output of a step of this run lives (a folder, or a file inside its own folder; a step
        run in a copy of its code has its `./outputs` there)."""
        return output_path(self.run_dir, self.pipeline.steps[step], output, attempt)


def output_path(run_dir: Path, step: Step, output: str, attempt: int = 1) -> Path:
    if output == step.artifacts_output:
        return work_dir(run_dir, step.name, attempt) / "outputs"
    folder = step_dir(run_dir, step.name, attempt) / "outputs" / output
    return folder / output if is_file_output(step.outputs[output]) else folder


def work_dir(run_dir: Path, step: str, attempt: int = 1) -> Path:
    """Where a step with `code_copy` runs: a copy of its code folder in its own folder."""
    return step_dir(run_dir, step, attempt) / "code"


def step_dir(run_dir: Path, step: str, attempt: int = 1) -> Path:
    return run_dir / STEPS_FOLDER / (step if attempt == 1 else f"{step}.attempt{attempt}")


# --- planning ----------------------------------------------------------------------------------------


def plan_run(options: PipelineOptions, home: Home, *, materialize: bool = True) -> PipelinePlan:
    """Fetch and check the pipeline; raises `InputError` for any bad input, leaving nothing behind."""
    from mlproj.params import check_labels
    from mlproj.runs.store import is_run_id, new_run_id
    from mlproj.sources import copy_checkout, fetch
    from mlproj.values import check_timeout

    check_timeout(options.timeout)
    check_labels(options.run_name, options.tags)
    if options.experiment_id:
        from mlproj.tracking import check_experiment_flags, tracking_uri

        uri = tracking_uri(
            options.tracking_uri,
            enabled=options.tracking,
            caller_dir=options.caller_dir,
            folders=(options.caller_dir,),
            home=str(home.root),
        )
        check_experiment_flags(options.experiment, options.experiment_id, uri)
    if options.max_parallel is not None and options.max_parallel < 1:
        raise InputError(f"--max-parallel {options.max_parallel}: expected at least 1")
    run_id = options.run_id or new_run_id()
    if not is_run_id(run_id):
        raise InputError(f"run ID {run_id!r}: expected 32 lowercase hex characters")
    if options.env_manager is not None:
        from mlproj.envs import get_manager

        get_manager(options.env_manager)
    source = fetch(options.uri, options.version, home, options.caller_dir)
    from mlproj.pipelines import is_pipeline_file

    if not is_pipeline_file(source.path):
        raise InputError(f"{source.path}: expected a pipeline file (.yml/.yaml with `type: pipeline`)")
    run_dir = home.run_dir(run_id)
    if materialize and run_dir.exists():
        raise InputError(f"run ID {run_id} is already in use")
    try:
        if materialize and source.is_git:  # the run works in a private copy of the checkout
            copy = copy_checkout(source, run_dir / "checkout")
            source = replace(source, path=copy / source.subdirectory if source.subdirectory else copy)
        return plan_pipeline(source, options, home, run_id, run_dir, materialize=materialize)
    except BaseException:
        if materialize:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def plan_pipeline(
    source: FetchedSource,
    options: PipelineOptions,
    home: Home,
    run_id: str,
    run_dir: Path,
    *,
    materialize: bool = False,
    pipeline: Pipeline | None = None,
) -> PipelinePlan:
    """Resolve and check the pipeline at `source.path` for a run with `run_id`. With `materialize`
    (a real run, not `validate`), Git projects are copied into the run's folder."""
    from mlproj.pipelines.inputs import download_inputs, download_step_inputs, resolve_inputs

    pipeline = pipeline or load_pipeline(
        source.path, overrides=options.overrides, asset_map=options.asset_map
    )
    options = configured(options, pipeline, (source.path.parent, options.caller_dir), str(home.root))
    inputs, recorded = resolve_inputs(pipeline, options.inputs, options.caller_dir, options.asset_map)
    if materialize:
        inputs = download_inputs(pipeline, inputs, run_dir)
    copies: dict[str, Path] | None = {} if materialize else None
    checked: set[tuple[str, str, str]] = set()  # backends asked once per configuration and environment
    steps = {
        name: plan_step(pipeline, name, options, home, run_dir, copies, checked) for name in pipeline.order()
    }
    if materialize:
        steps = {
            name: replace(step_plan, step=download_step_inputs(step_plan.step, step_plan.key, run_dir))
            for name, step_plan in steps.items()
        }
    plan = PipelinePlan(
        run_id=run_id,
        options=options,
        pipeline=pipeline,
        uri=source.uri if source.is_git else str(source.path),
        commit=source.commit,
        run_dir=run_dir,
        inputs=inputs,
        recorded_inputs=recorded,
        steps=steps,
        experiment=options.experiment or "Default",
        max_parallel=options.max_parallel or (os.cpu_count() or 1),
        force_rerun=options.force_rerun or pipeline.force_rerun,
        continue_on_step_failure=options.continue_on_step_failure or pipeline.continue_on_step_failure,
        templates={
            name: plan_step(pipeline, name, options, home, run_dir, copies, checked)
            for name in pipeline.templates
        },
    )
    for name in plan.steps:
        check_step_values(plan, name)
    return plan


def private_copy(source: FetchedSource, run_dir: Path, copies: dict[str, Path]) -> Path:
    """A Git project's checkout copied into the pipeline run's folder, once per repository and commit
    (steps of one run that use the same project share the copy, as they would share a local folder)."""
    import hashlib

    from mlproj.sources import copy_checkout

    name = hashlib.sha256(f"{source.uri}@{source.commit}".encode()).hexdigest()[:12]
    if name not in copies:
        target = run_dir / "sources" / name
        # A detached supervisor plans again: the copy made when the run was recorded is the one.
        copies[name] = target if target.is_dir() else copy_checkout(source, target)
    root = copies[name]
    return root / source.subdirectory if source.subdirectory else root


def published_copy(folder: Path, home: Home, run_dir: Path, copies: dict[str, Path]) -> Path:
    """A folder of a published pipeline's snapshot (design.md §10) copied into the run's folder, once per
    run, as a Git checkout is: the run may write where it works, the snapshot stays as published.
    Any other folder, as it is."""
    objects = Path(os.path.realpath(home.published_dir / "objects"))
    try:  # real paths on both sides: `..` or a link in either cannot let a run work in the store
        relative = Path(os.path.realpath(folder)).relative_to(objects)
    except ValueError:
        return folder
    if not relative.parts:
        raise InputError(f"{folder}: the published pipelines' store is not a folder a step runs in")
    name = f"published-{relative.parts[0][:16]}"
    if name not in copies:
        target = run_dir / "sources" / name
        if not target.is_dir():  # a detached supervisor plans again: the copy made first is the one
            shutil.copytree(objects / relative.parts[0], target, symlinks=True)
            for path in target.rglob("*"):  # the store's files are read-only; the run's copy is its own
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | stat.S_IWUSR)
        copies[name] = target
    return copies[name].joinpath(*relative.parts[1:])


def plan_step(
    pipeline: Pipeline,
    name: str,
    options: PipelineOptions,
    home: Home,
    run_dir: Path,
    copies: dict[str, Path] | None = None,
    checked: set[tuple[str, str, str]] | None = None,
) -> StepPlan:
    from mlproj.spec import load_project

    step = pipeline.steps[name] if name in pipeline.steps else pipeline.templates[name]
    key = f"{pipeline.jobs_key}.{name}"
    manager_given = step.env_manager or options.env_manager or pipeline.env_manager
    try:
        if step.type == "mlflow_project":
            from mlproj.sources import fetch

            source = fetch(step.uri or "", step.version, home, pipeline.folder)
            if not source.path.is_dir():
                raise InputError(f"{source.path}: expected a project folder")
            folder = source.path
            if source.is_git and copies is not None:
                folder = private_copy(source, run_dir, copies)
            elif copies is not None:
                folder = published_copy(folder, home, run_dir, copies)
            loaded = load_project(folder)
            project: Project | None = loaded
            entry_point = loaded.entry_point(step.entry_point)
            work_dir: Path | None = loaded.directory
            uri: str | None = source.uri if source.is_git else str(source.path)
            commit = source.commit
            code_ref = (
                f"git:{source.uri}@{source.commit}#{source.subdirectory or ''}" if source.is_git else None
            )
        else:
            code = pipeline.folder / step.code if step.code is not None else None
            if code is not None and copies is not None and not step.code_copy:  # a copy is made anyway
                code = published_copy(code, home, run_dir, copies)
            project = load_project(code) if code is not None else None
            entry_point, work_dir, uri, commit = None, code, str(code) if code else None, None
            code_ref = None
        if step.environment:
            project = _with_environment(project, step.environment, work_dir or pipeline.folder)
            if manager_given is None and "conda_file" in step.environment:
                manager_given = _builder()
        backend_name, backend_config, backend = step_backend(pipeline, step, options)
        # A step's environment: its `env_manager`, else the pipeline's, else its project's (MLflow's rule).
        from_settings = manager_given is not None and manager_given == options.env_manager
        env_manager, env_spec = select_environment(
            manager_given,
            project,
            home,
            given_by=(options.env_manager_from if from_settings else None) or "--env-manager",
            folder=pipeline.folder,
            rebuild=options.rebuild_env,
            options=backend.environment_options(backend_config),
            accept=backend.accept,
            built_here=backend.prepares_environment,
        )
        if checked is None or (backend_name, repr(backend_config), env_manager) not in checked:
            from mlproj.envs import get_manager

            backend.check(backend_config, get_manager(env_manager), env_spec)
            if checked is not None:
                checked.add((backend_name, repr(backend_config), env_manager))
    except SpecError:
        raise
    except MlprojError as exc:
        raise InputError(f"{pipeline.file}: {key}: {exc}") from None
    return StepPlan(
        name=name,
        step=step,
        key=key,
        work_dir=work_dir,
        uri=uri,
        commit=commit,
        project=project if step.type == "mlflow_project" else None,
        entry_point=entry_point,
        env_manager=env_manager,
        env_spec=env_spec,
        code_ref=code_ref,
        backend=backend_name,
        backend_config=backend_config,
    )


def _with_environment(project: Project | None, environment: Mapping[str, Any], folder: Path) -> Project:
    """A step's project (or its code folder) with the environment its `environment` says: built from
    a conda file, or an image to run in (design.md §9)."""
    from mlproj.spec import Project

    base = project or Project(directory=folder)
    if "conda_file" in environment:
        return replace(base, conda_env=str(environment["conda_file"]), python_env=None, docker_env=None)
    return replace(base, docker_env={"image": str(environment["image"]), "volumes": [], "environment": []})


def _builder() -> str:
    """The manager that builds an Azure ML environment's conda file here: conda where it is installed,
    otherwise uv from the file's Python version and pip part."""
    from mlproj.envs.tools import conda_executable

    try:
        conda_executable()
    except InputError:
        return "uv"
    return "conda"


def check_step_values(plan: PipelinePlan, name: str) -> None:
    """Resolve the step's bindings with this run's output folders and check its parameters against
    its entry point, before anything runs."""
    step_plan = plan.steps[name]
    planned_outputs = {  # the steps it reads from (a loop's thousand iterations need not be looked at)
        (up, out): str(plan.output_path(up, out))
        for up in step_plan.step.upstream()
        if up in plan.pipeline.steps
        for out in plan.pipeline.steps[up].outputs
    }
    # A primitive output's value is known only when it is written: a value of its type stands for it.
    received = received_outputs(
        plan.pipeline.steps, step_plan.step, planned_outputs, lambda _path, kind: PLACEHOLDERS[kind]
    )
    bindings = Bindings(
        parent_inputs=plan.inputs,
        upstream_outputs=received,
        own_outputs={out: str(plan.output_path(name, out)) for out in step_plan.step.outputs},
    )
    where = f"{plan.pipeline.file}: {step_plan.key}"
    for input_name, value in step_plan.step.inputs.items():
        if isinstance(value, (dict, list)):
            raise InputError(
                f"{where}.inputs.{input_name}: expected a value or a binding, got a {type(value).__name__}"
            )
    bindings.bind_step_inputs(step_plan.step)
    project, entry_point = step_plan.project, step_plan.entry_point
    if project is None or entry_point is None:
        if step_plan.step.command is not None:  # the values must stand where they can be quoted
            try:
                command, _key = bindings.render_command(step_plan.step.command)
                check_command_size(command, {k: v for k, (v, _) in bindings.step_inputs.items()})
            except InputError as exc:
                raise InputError(f"{where}.command: {exc}") from None
        return
    declared = entry_point.parameters
    if entry_point.name in project.entry_points:
        for param in step_plan.step.parameters:
            if param not in declared:
                names = ", ".join(sorted(declared)) or "none"
                raise SpecError(
                    plan.pipeline.file,
                    f"{step_plan.key}.parameters.{param}",
                    f"entry point {entry_point.name!r} of {project.spec_file or project.directory} "
                    f"declares no parameter {param!r} (declared: {names})",
                    line=plan.pipeline.lines.get(f"{step_plan.key}.parameters.{param}"),
                )
    for param, value in step_plan.step.parameters.items():
        if isinstance(value, (dict, list)):
            raise InputError(
                f"{where}.parameters.{param}: expected a value or a binding, got a {type(value).__name__}"
            )
    given = {param: bindings.resolve(value)[0] for param, value in step_plan.step.parameters.items()}
    try:
        resolved = resolve_step_parameters(project, entry_point, given, plan.pipeline.folder, plan.run_dir)
        check_command_size(render_command(entry_point, resolved), resolved.values)
    except MlprojError as exc:
        raise InputError(f"{where}.parameters: {exc}") from None


def resolve_step_parameters(
    project: Project,
    entry_point: EntryPoint,
    given: Mapping[str, str],
    pipeline_folder: Path,
    pending: Path | None = None,
) -> ResolvedParameters:
    """The entry point's parameters for these values; `path` values under `pending` (this run's output
    folders, not made yet) are not required to exist."""
    from mlproj.params import resolve_parameters

    return resolve_parameters(
        entry_point,
        given,
        project_dir=project.directory,
        caller_dir=pipeline_folder,
        pending=pending,
        missing_hint="it a value in the step's parameters",
        given_as="the step's parameter",
    )
