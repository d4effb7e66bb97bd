"""`mlproj runs`: recent runs, newest first."""

from __future__ import annotations

from mlproj.cli.common import open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def runs(app: Console, *, experiment_name: str | None, status_name: str | None, limit: int) -> int:
    from mlproj.errors import InputError
    from mlproj.execution.reconcile import reconcile
    from mlproj.runs.status import RunStatus

    status = None
    if status_name is not None:
        try:
            status = RunStatus.parse(status_name)
        except ValueError as exc:
            raise InputError(f"--status: {exc}") from None
    store = open_store()
    if status is not None:  # statuses first brought up to date, so the filter sees the truth
        for unfinished in store.unfinished():
            reconcile(store, unfinished)
    records = store.list_runs(experiment=experiment_name, status=status, limit=limit)
    records = [reconcile(store, record) for record in records]
    if app.as_json:
        from mlproj.runs.documents import run_document

        app.json([run_document(store, record) for record in records])
        return 0
    if not records:
        app.print("No runs.")
        return 0
    from mlproj.cli.render import runs_lines

    for line in runs_lines(app.out, records):
        app.print(line)
    return 0
