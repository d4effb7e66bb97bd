"""One flow for every run, project or pipeline (design.md §1): plan → record → start, in the foreground
(this process supervises it) or detached (a background supervisor). The command line and the Python API
both submit through it.

Everything that can fail on bad input happens in the plan, before anything is recorded: an input error
never leaves a run behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from mlproj import process
from mlproj.errors import InputError
from mlproj.pipelines import names_pipeline
from mlproj.runs.status import RunKind, RunStatus
from mlproj.structs import dataclass
from mlproj.submit.project import RunOptions

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.downloads import Progress
    from mlproj.home import Home
    from mlproj.pipelines.options import PipelineOptions
    from mlproj.pipelines.plan import PipelinePlan
    from mlproj.pipelines.scheduler import PipelineView
    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store
    from mlproj.submit.project import ProjectPlan

    Options = RunOptions | PipelineOptions
    Planned = ProjectPlan | PipelinePlan

__all__ = ["Foreground", "RunOptions", "options_for", "plan", "record", "start_detached", "submit"]


# What only projects, or only pipelines, are given; the flag's name is the caller's (`-e/--entry-point`
# on the command line, `entry_point` in Python).
PROJECT_ONLY = ("entry_point", "storage_dir", "docker")
PIPELINE_ONLY = ("max_parallel", "force_rerun", "continue_on_step_failure", "overrides", "asset_map")


def options_for(uri: str, names: Mapping[str, str] | None = None, **given: Any) -> Options:
    """The options of a run of `uri`: a pipeline's when it names a pipeline file (`parameters` are then
    its inputs), a project's otherwise. Something given (true) that applies only to the other kind is
    an input error naming it as `names` says (default: its keyword). Quotes around the URI are
    dropped, as MLflow drops them (`'uri#subdirectory'` written in a script)."""
    uri = uri.strip("'\"")
    is_pipeline = names_pipeline(uri)
    for key in PROJECT_ONLY if is_pipeline else PIPELINE_ONLY:
        if given.get(key):
            name = (names or {}).get(key, key)
            if is_pipeline:
                raise InputError(f"{name}: applies to projects, not to the pipeline {uri}")
            raise InputError(f"{name}: applies to pipelines, and {uri} is not a pipeline file")
    chosen = {key: value for key, value in given.items() if value is not None}
    if is_pipeline:
        from mlproj.pipelines.options import PipelineOptions

        for key in PROJECT_ONLY:
            chosen.pop(key, None)
        chosen["inputs"] = chosen.pop("parameters", {})
        chosen.pop("strict_params", None)  # a pipeline refuses any -P that is not one of its inputs
        return PipelineOptions(uri=uri, **chosen)
    for key in PIPELINE_ONLY:
        chosen.pop(key, None)
    return RunOptions(uri=uri, **chosen)


def plan(
    options: Options, home: Home, *, materialize: bool = True, progress: Progress | None = None
) -> Planned:
    """Plan a project or a pipeline run; raises `InputError` for any bad input, leaving nothing behind."""
    if isinstance(options, RunOptions):
        from mlproj.submit.project import plan_project

        return plan_project(options, home, materialize=materialize, progress=progress)
    from mlproj.pipelines.plan import plan_run

    return plan_run(options, home, materialize=materialize)


def record(store: Store, planned: Planned) -> RunRecord:
    """Record the planned run (`Queued`), supervised, until it is started, by this process."""
    from mlproj.submit.project import ProjectPlan, record_project

    if isinstance(planned, ProjectPlan):
        return record_project(store, planned)
    from mlproj.pipelines.records import record_pipeline

    return record_pipeline(store, planned)


def start_detached(store: Store, record: RunRecord) -> RunRecord:
    """Hand a recorded run to a background supervisor and return at once."""
    env = {**os.environ, "MLPROJ_HOME": str(store.home.root)}
    env.pop(process.RUN_ID_VARIABLE, None)
    run_dir = Path(record.run_dir or store.home.run_dir(record.run_id))
    # Started in the run's folder: `python -m` looks for modules in its working directory first, and
    # the caller's may hold a folder named mlproj (this repository, or a project's own).
    proc = process.spawn_detached(
        [sys.executable, "-m", "mlproj.submit.detached", record.run_id],
        env,
        run_dir / "supervisor.log",
        cwd=run_dir,
    )
    child_identity = process.identity(proc.pid)
    if child_identity is not None:  # None: it has already finished, and recorded itself
        store.update(record.run_id, supervisor_pid=proc.pid, supervisor_identity=child_identity)
    return store.get(record.run_id)


@dataclass(frozen=True)
class Foreground:
    """How a run supervised in this process reports: its output, its build's status line, a pipeline's
    view. `dedicated`: this process exists to run it (the command line), and adopts its orphans."""

    output: Callable[[bytes], None] | None = None
    on_status: Callable[[str | None], None] | None = None
    view: Callable[[RunRecord], PipelineView] | None = None  # makes a pipeline's view, once recorded
    dedicated: bool = False


def submit(
    store: Store,
    options: Options,
    *,
    detach: bool = False,
    foreground: Foreground | None = None,
    progress: Progress | None = None,
) -> RunRecord:
    """Plan, record and start a run. Detached: returns the record once a background supervisor has it.
    In the foreground: supervises it here and returns its final record; a Ctrl-C before the supervisor
    took over the signals ends the run `Canceled` and is raised again."""
    planned = plan(options, store.home, progress=progress)
    recorded = record(store, planned)
    if detach:
        _settle(recorded)  # the MLflow run's parameters logged before another process takes the run
        return start_detached(store, recorded)
    try:
        return supervise_here(store, recorded, planned, foreground or Foreground())
    finally:
        _settle(recorded)  # if the supervisor did not (its workload never started)


def _settle(recorded: RunRecord) -> None:
    if recorded.mlflow_run_id is not None:
        from mlproj.tracking.runs import settle

        settle()


def supervise_here(store: Store, recorded: RunRecord, planned: Planned, how: Foreground) -> RunRecord:
    try:
        if recorded.kind is RunKind.PIPELINE:
            from mlproj.pipelines.plan import PipelinePlan
            from mlproj.pipelines.scheduler import PipelineSupervisor

            pipeline_plan = planned if isinstance(planned, PipelinePlan) else None
            return PipelineSupervisor(
                store,
                recorded.run_id,
                pipeline_plan,
                view=how.view(recorded) if how.view is not None else None,
                on_status=how.on_status,
                dedicated=how.dedicated,
            ).run()
        from mlproj.execution.supervisor import Supervisor

        return Supervisor(
            store, recorded.run_id, how.output, on_status=how.on_status, dedicated=how.dedicated
        ).run()
    except KeyboardInterrupt:  # before the supervisor took over the signals
        from mlproj.execution.reconcile import end_unsupervised

        end_unsupervised(store, recorded.run_id, RunStatus.CANCELED, "canceled by Ctrl-C")
        raise
