"""`mlproj resume RUN_ID`: run a pipeline again, reusing every step the earlier run finished."""

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
