"""`mlproj status RUN_ID`: one run, reconciled before it is shown."""

from __future__ import annotations

from mlproj.cli.common import find, open_store
from mlproj.runs.status import RunKind

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console

WATCH_INTERVAL = 1.0


def status(app: Console, *, run_id: str, watch: bool) -> int:
    store = open_store()
    record = find(store, run_id)
    if app.as_json:
        from mlproj.runs.documents import run_document

        app.json(run_document(store, record))
        return 0
    if watch and not record.is_final:
        from mlproj.cli.live import watch_status

        watch_status(store, record.run_id, WATCH_INTERVAL)
        record = find(store, record.run_id)
    from mlproj.cli.render import status_lines

    mlflow = None
    if record.mlflow_run_id is not None:
        from mlproj.tracking.runs import describe

        mlflow = describe(record)
    for line in status_lines(app.out, record, mlflow):
        app.print(line)
    if record.kind is RunKind.PIPELINE:
        from mlproj.cli.render import steps_lines

        app.print()
        for line in steps_lines(app.out, store.steps_of(record.run_id)):
            app.print(line)
    return 0
