"""`mlproj cancel RUN_ID`: stop the run's whole process tree and record `Canceled`."""

from __future__ import annotations

from mlproj.cli.common import find, open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def cancel(app: Console, *, run_id: str, grace: float) -> int:
    from mlproj.execution import control

    store = open_store()
    outcome = control.cancel(store, find(store, run_id), grace)
    if app.as_json:
        from mlproj.runs.documents import run_document

        app.json({**run_document(store, outcome.record), "already_ended": outcome.already_final})
        return 0
    status = app.out.status(outcome.record.status)
    if outcome.already_final:
        app.print(f"Run {outcome.record.run_id} had already ended: {status}")
    else:
        app.print(f"Run {outcome.record.run_id} is now {status}")
    return 0
