"""A pipeline run's flow: fetch → load → plan every step → record the run and its steps → supervise.

As for projects, everything that can fail on bad input happens before anything is recorded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mlproj import process
from mlproj.errors import InputError
from mlproj.home import Home
from mlproj.pipelines.plan import PipelineOptions, PipelinePlan, plan_pipeline, step_dir
from mlproj.pipelines.spec import Pipeline
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store, is_run_id, new_run_id

SNAPSHOT = "pipeline.yml"  # the run's copy of its pipeline file


def plan_run(options: PipelineOptions, home: Home, *, materialize: bool = True) -> PipelinePlan:
    """Fetch and check the pipeline; raises `InputError` for any bad input, leaving nothing behind."""
    from mlproj.launch import check_labels, check_timeout, copy_checkout
    from mlproj.sources import fetch

    check_timeout(options.timeout)
    check_labels(options.run_name, options.tags)
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
            from dataclasses import replace

            copy = copy_checkout(source, run_dir / "checkout")
            source = replace(source, path=copy / source.subdirectory if source.subdirectory else copy)
        return plan_pipeline(source, options, home, run_id, run_dir, materialize=materialize)
    except BaseException:
        if materialize:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def record_pipeline(store: Store, plan: PipelinePlan) -> RunRecord:
    """Record the pipeline run (`Queued`) and one `NotStarted` run per step, supervised (for now) by
    this process; the pipeline file is copied into the run's folder."""
    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan.pipeline.file, run_dir / SNAPSHOT)
    log_path = run_dir / "output.log"
    log_path.touch()
    me = os.getpid()
    options = plan.options
    record = RunRecord(
        run_id=plan.run_id,
        kind="pipeline",
        status=RunStatus.QUEUED,
        experiment=plan.experiment,
        run_name=options.run_name or plan.pipeline.name,
        uri=plan.uri,
        version=options.version,
        commit=plan.commit,
        parameters=dict(plan.recorded_inputs),
        env_manager=options.env_manager or plan.pipeline.env_manager,
        backend=options.backend or plan.pipeline.backend or "local",
        log_path=str(log_path),
        tags={**plan.pipeline.tags, **options.tags},
        work_dir=str(plan.pipeline.folder),
        run_dir=str(run_dir),
        timeout=options.timeout,
        supervisor_pid=me,
        supervisor_identity=process.identity(me),
        request={
            "pipeline": {
                "file": str(plan.pipeline.file),
                "snapshot": str(run_dir / SNAPSHOT),
                "max_parallel": plan.max_parallel,
                "force_rerun": plan.force_rerun,
                "continue_on_step_failure": plan.continue_on_step_failure,
                "options": options.to_dict(),
            }
        },
    )
    record = store.insert(record)
    with store.immediate():
        for name in plan.steps:
            store.insert(new_step_record(plan, record, name, 1))
    return record


def new_step_record(plan: PipelinePlan, pipeline: RunRecord, name: str, attempt: int) -> RunRecord:
    """A `NotStarted` step run of `pipeline` (its `attempt`-th try), with its own folder and log."""
    step_plan = plan.steps[name]
    folder = step_dir(plan.run_dir, name, attempt)
    return RunRecord(
        run_id=new_run_id(),
        kind="step",
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
        tags=dict(pipeline.tags),
        work_dir=str(step_plan.work_dir or folder),
        run_dir=str(folder),
        timeout=step_plan.step.timeout,
        attempt=attempt,
    )


def snapshot_path(record: RunRecord) -> Path:
    return Path(record.run_dir or "") / SNAPSHOT


def load_recorded(record: RunRecord) -> Pipeline:
    """The pipeline a pipeline run ran, from the run's copy of its file."""
    from mlproj.pipelines.spec import load_pipeline

    if record.kind != "pipeline":
        raise InputError(f"run {record.run_id} is a {record.kind} run, not a pipeline run")
    data = (record.request or {}).get("pipeline") or {}
    file = Path(data.get("file") or snapshot_path(record))
    return load_pipeline(snapshot_path(record), as_file=file, check_paths=False)


RESUMED_FROM_TAG = "mlproj.resumed_from"


def resume_options(earlier: RunRecord) -> PipelineOptions:
    """The options of a new run of `earlier`'s pipeline that reuses the steps it finished: the same
    file (the same commit, for Git), inputs and settings."""
    if earlier.kind != "pipeline":
        raise InputError(f"run {earlier.run_id} is a {earlier.kind} run: only pipeline runs can be resumed")
    if not earlier.is_final:
        raise InputError(
            f"run {earlier.run_id} is still {earlier.status.value}: wait for it or cancel it first"
        )
    data = dict((earlier.request or {}).get("pipeline") or {})
    given = dict(data.get("options") or {})
    version = given.get("version")
    if earlier.commit and version:
        version = earlier.commit  # the very commit the earlier run used, even if the branch moved
    return PipelineOptions(
        uri=given.get("uri") or earlier.uri or "",
        version=version,
        inputs=dict(given.get("inputs") or {}),
        env_manager=given.get("env_manager"),
        experiment=earlier.experiment,
        run_name=earlier.run_name,
        tags={**earlier.tags, RESUMED_FROM_TAG: earlier.run_id},
        max_parallel=given.get("max_parallel"),
        force_rerun=bool(given.get("force_rerun")),
        continue_on_step_failure=bool(given.get("continue_on_step_failure")),
        timeout=earlier.timeout,
        caller_dir=Path(given.get("caller_dir") or Path.cwd()),
        resume_from=earlier.run_id,
        backend=given.get("backend"),
        backend_config=given.get("backend_config"),
    )
