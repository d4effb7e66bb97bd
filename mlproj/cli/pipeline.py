"""Running a pipeline from the command line (`run` of a pipeline file, and `resume`)."""

from __future__ import annotations

import sys

from mlproj.cli.common import open_store, print_json
from mlproj.pipelines.plan import PipelineOptions


def run_pipeline(options: PipelineOptions, *, detach: bool, as_json: bool) -> int:
    """Plan, record and run (or hand to a background supervisor) a pipeline; the exit code of §4."""
    from mlproj import launch
    from mlproj.pipelines.scheduler import PipelineSupervisor
    from mlproj.pipelines.submit import plan_run, record_pipeline
    from mlproj.runs.documents import run_document
    from mlproj.runs.outcome import exit_code_for
    from mlproj.runs.status import RunStatus
    from mlproj.ui.board import make_view
    from mlproj.ui.progress import BuildProgress
    from mlproj.ui.text import Text, summary_line

    store = open_store()
    plan = plan_run(options, store.home)
    record = record_pipeline(store, plan)
    if detach:
        record = launch.start_detached(store, record)
        if as_json:
            print_json(run_document(store, record))
        else:
            Text(sys.stdout).print(record.run_id)
        return 0
    people = Text(sys.stderr)
    stream = sys.stderr if as_json else sys.stdout
    try:
        view = make_view(
            stream, plain=as_json, title=record.run_name or plan.pipeline.name, run_id=record.run_id
        )
        final = PipelineSupervisor(
            store, record.run_id, plan, view=view, on_status=BuildProgress(sys.stderr).update, dedicated=True
        ).run()
    except KeyboardInterrupt:  # before the supervisor took over the signals
        from mlproj.runs.control import end_unsupervised

        end_unsupervised(store, record.run_id, RunStatus.CANCELED, "canceled by Ctrl-C")
        raise
    people.print(summary_line(people, final))
    if final.status is RunStatus.FAILED:
        people.print(f"Resume it, reusing the steps that finished: mlproj resume {final.run_id}")
    if as_json:
        print_json(run_document(store, final))
    return exit_code_for(final)
