"""`mlproj resume RUN_ID`: run a pipeline again, reusing every step the earlier run finished; `mlproj rerun
RUN_ID [-P k=v]…`: run a run again, with parameters changed."""

from __future__ import annotations

from mlproj.cli.common import find, open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def resume(app: Console, *, run_id: str, detach: bool) -> int:
    from mlproj.cli.run import run_and_show
    from mlproj.pipelines.records import resume_options

    store = open_store(reading=False)
    earlier = find(store, run_id)
    options = resume_options(earlier)
    store.close()
    return run_and_show(app, options, detach=detach)


def rerun(app: Console, *, run_id: str, params: tuple[str, ...], detach: bool) -> int:
    from mlproj.cli.run import run_and_show
    from mlproj.params import parse_assignments
    from mlproj.publish.rerun import rerun_options

    changed = parse_assignments(params, "-P")
    store = open_store(reading=False)
    options = rerun_options(store, find(store, run_id), changed)
    store.close()
    return run_and_show(app, options, detach=detach)
