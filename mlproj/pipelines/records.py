"""A pipeline run in the store: recording it (the run, one `NotStarted` run per step, the run's copy of
its file and its `PipelineRequest`), and reading it back: the pipeline it ran, its plan again (a detached
supervisor plans from the record), and the options of `mlproj resume`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mlproj import process
from mlproj.errors import InputError
from mlproj.home import Home
from mlproj.pipelines.model import Pipeline
from mlproj.pipelines.options import PipelineOptions
from mlproj.pipelines.plan import PipelinePlan, plan_pipeline, step_dir
from mlproj.runs.record import RunRecord
from mlproj.runs.request import PipelineRequest
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store, new_run_id
from mlproj.structs import replace

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

SNAPSHOT = "pipeline.yml"  # the run's copy of its pipeline file
RESUMED_FROM_TAG = "mlproj.resumed_from"


def pipeline_request(plan: PipelinePlan) -> PipelineRequest:
    """What the run records: its file, and how it was asked to run (with the settings resolved)."""
    options = plan.options
    return PipelineRequest(
        file=str(plan.pipeline.file),
        snapshot=str(plan.run_dir / SNAPSHOT),
        uri=options.uri,
        version=options.version,
        inputs=dict(options.inputs),
        env_manager=options.env_manager,
        max_parallel=plan.max_parallel,
        force_rerun=plan.force_rerun,
        continue_on_step_failure=plan.continue_on_step_failure,
        caller_dir=str(options.caller_dir),
        rebuild_env=options.rebuild_env,
        resume_from=options.resume_from,
        backend=options.backend,
        backend_config=dict(options.backend_config) if options.backend_config is not None else None,
        overrides=tuple(options.overrides),
        asset_map=str(options.asset_map) if options.asset_map is not None else None,
    )


def record_pipeline(store: Store, plan: PipelinePlan) -> RunRecord:
    """Record the pipeline run (`Queued`) and one `NotStarted` run per step, supervised (for now) by
    this process; the pipeline file is copied into the run's folder."""
    run_dir = plan.run_dir
    options = plan.options
    try:
        tracked = _start_tracking(plan, store.home)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # a private checkout made by the plan
        raise
    tracked.pop("env", None)  # each step's workload gets its own nested run's variables
    experiment = tracked.pop("experiment", plan.experiment)
    run_dir.mkdir(parents=True, exist_ok=True)
    # What the run runs, whole: components, --set and the asset map resolved (design.md §9).
    (run_dir / SNAPSHOT).write_text(plan.pipeline.to_text(), encoding="utf-8")
    log_path = run_dir / "output.log"
    log_path.touch()
    me = os.getpid()
    record = RunRecord(
        run_id=plan.run_id,
        kind=RunKind.PIPELINE,
        status=RunStatus.QUEUED,
        experiment=experiment,
        run_name=options.run_name or plan.pipeline.name,
        uri=plan.uri,
        version=options.version,
        commit=plan.commit,
        parameters=dict(plan.recorded_inputs),
        env_manager=options.env_manager or plan.pipeline.env_manager,
        backend=options.backend or plan.pipeline.backend or "local",
        log_path=str(log_path),
        tags={**plan.pipeline.properties, **plan.pipeline.tags, **options.tags},
        work_dir=str(plan.pipeline.folder),
        run_dir=str(run_dir),
        timeout=options.timeout,
        supervisor_pid=me,
        supervisor_identity=process.identity(me),
        request=pipeline_request(plan),
        published_pipeline_id=options.origin.get("published_pipeline_id"),
        endpoint=options.origin.get("endpoint"),
        schedule=options.origin.get("schedule"),
        **tracked,
    )
    record = store.insert(record)
    with store.immediate():
        for name in plan.steps:
            store.insert(new_step_record(plan, record, name, 1))
    return record


def _start_tracking(plan: PipelinePlan, home: Home) -> dict[str, Any]:
    """The pipeline run's MLflow run (its inputs as params), when tracking is on (design.md §8)."""
    from mlproj.tracking import tracking_uri
    from mlproj.urls import strip_credentials

    options = plan.options
    uri = tracking_uri(
        options.tracking_uri,
        enabled=options.tracking,
        caller_dir=options.caller_dir,
        folders=(plan.pipeline.folder, options.caller_dir),
        home=str(home.root),
    )
    if uri is None:
        return {}
    from mlproj.tracking.runs import begin

    named = options.experiment or (
        None
        if options.experiment_id  # the flag beats the file and the variables
        else plan.pipeline.experiment_name
        or os.environ.get("MLPROJ_EXPERIMENT_NAME")
        or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    )
    experiment_id = options.experiment_id or (None if named else os.environ.get("MLFLOW_EXPERIMENT_ID"))
    tags = {
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": strip_credentials(plan.uri),
        "mlproj.kind": "pipeline",
        "mlproj.run_id": plan.run_id,
        **plan.pipeline.tags,
        **options.tags,
    }
    if plan.commit:
        tags["mlflow.source.git.commit"] = plan.commit
    fields = begin(
        uri,
        experiment_name=named,
        experiment_id=experiment_id,
        run_name=options.run_name or plan.pipeline.name,
        tags=tags,
        params=dict(plan.recorded_inputs),
    )
    if not experiment_id:
        fields["experiment"] = plan.experiment
    return fields


def new_step_record(plan: PipelinePlan, pipeline: RunRecord, name: str, attempt: int) -> RunRecord:
    """A `NotStarted` step run of `pipeline` (its `attempt`-th try), with its own folder and log."""
    step_plan = plan.steps[name]
    folder = step_dir(plan.run_dir, name, attempt)
    return RunRecord(
        run_id=new_run_id(),
        kind=RunKind.STEP,
        status=RunStatus.NOT_STARTED,
        experiment=pipeline.experiment,
        experiment_id=pipeline.experiment_id,
        run_name=name,
        uri=step_plan.uri,
        version=step_plan.step.version,
        commit=step_plan.commit,
        entry_point=step_plan.entry_point.name if step_plan.entry_point else None,
        env_manager=step_plan.env_manager,
        backend=step_plan.backend,
        log_path=str(folder / "output.log"),
        parent_run_id=pipeline.run_id,
        step=name,
        tags={**pipeline.tags, **step_plan.step.properties, **step_plan.step.tags},  # Azure ML's, as tags
        work_dir=str(step_plan.work_dir or folder),
        run_dir=str(folder),
        timeout=step_plan.step.timeout,
        attempt=attempt,
    )


def recorded_request(record: RunRecord) -> PipelineRequest:
    if record.kind is not RunKind.PIPELINE or not isinstance(record.request, PipelineRequest):
        raise InputError(f"run {record.run_id} is a {record.kind} run, not a pipeline run")
    return record.request


def load_recorded(record: RunRecord) -> Pipeline:
    """The pipeline a pipeline run ran, from the run's copy of its file."""
    from mlproj.pipelines.loader import load_pipeline

    request = recorded_request(record)
    return load_pipeline(Path(request.snapshot), as_file=Path(request.file), check_paths=False)


def replan(home: Home, record: RunRecord) -> PipelinePlan:
    """The plan of a recorded pipeline run, from the run's copy of its pipeline file (a detached
    supervisor)."""
    from mlproj.pipelines.loader import load_pipeline
    from mlproj.sources import FetchedSource

    request = recorded_request(record)
    file = Path(request.file)
    pipeline = load_pipeline(Path(request.snapshot), as_file=file)
    options = PipelineOptions(
        uri=request.uri,
        version=request.version,
        inputs=dict(request.inputs),
        env_manager=request.env_manager,
        experiment=record.experiment,
        run_name=record.run_name,
        tags=dict(record.tags),
        max_parallel=request.max_parallel,
        force_rerun=request.force_rerun,
        continue_on_step_failure=request.continue_on_step_failure,
        timeout=record.timeout,
        caller_dir=Path(request.caller_dir),
        run_id=record.run_id,
        rebuild_env=request.rebuild_env,
        resume_from=request.resume_from,
        backend=request.backend,
        backend_config=request.backend_config,
        overrides=tuple(request.overrides),  # applied in the run's copy already: kept as recorded
        asset_map=Path(request.asset_map) if request.asset_map else None,  # for -P data=azureml:...
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


def resume_options(earlier: RunRecord) -> PipelineOptions:
    """The options of a new run of `earlier`'s pipeline that reuses the steps it finished: the same
    file (the same commit, for Git), inputs and settings."""
    if earlier.kind is not RunKind.PIPELINE:
        raise InputError(f"run {earlier.run_id} is a {earlier.kind} run: only pipeline runs can be resumed")
    if not earlier.is_final:
        raise InputError(
            f"run {earlier.run_id} is still {earlier.status.value}: wait for it or cancel it first"
        )
    request = recorded_request(earlier)
    version = request.version
    if earlier.commit and version:
        version = earlier.commit  # the very commit the earlier run used, even if the branch moved
    options = again_options(earlier, version=version)
    return replace(
        options, tags={**options.tags, RESUMED_FROM_TAG: earlier.run_id}, resume_from=earlier.run_id
    )


def again_options(earlier: RunRecord, *, version: str | None) -> PipelineOptions:
    """The options of a new run of `earlier`'s pipeline as it was asked: the same file, inputs and
    settings (`mlproj resume` and `mlproj rerun` change what they change)."""
    request = recorded_request(earlier)
    return PipelineOptions(
        uri=request.uri or earlier.uri or "",
        version=version,
        inputs=dict(request.inputs),
        env_manager=request.env_manager,
        experiment=earlier.experiment,
        run_name=earlier.run_name,
        tags={key: value for key, value in earlier.tags.items() if key != RESUMED_FROM_TAG},
        max_parallel=request.max_parallel,
        force_rerun=request.force_rerun,
        continue_on_step_failure=request.continue_on_step_failure,
        timeout=earlier.timeout,
        caller_dir=Path(request.caller_dir),
        backend=request.backend,
        backend_config=request.backend_config,
        overrides=tuple(request.overrides),
        asset_map=Path(request.asset_map) if request.asset_map else None,
    )
