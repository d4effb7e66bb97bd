"""`mlproj runs`: recent runs, newest first."""

from __future__ import annotations

from mlproj.cli.common import open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from mlproj.runs.record import RunRecord
    from mlproj.ui.console import Console


def runs(
    app: Console,
    *,
    experiment_name: str | None,
    status_name: str | None,
    limit: int,
    columns: str | None,
    published: str | None,
) -> int:
    from mlproj.errors import InputError
    from mlproj.execution.reconcile import reconcile
    from mlproj.runs.status import RunStatus

    status = None
    if status_name is not None:
        try:
            status = RunStatus.parse(status_name)
        except ValueError as exc:
            raise InputError(f"--status: {exc}") from None
    wanted = parse_columns(columns) if columns is not None else []
    store = open_store()
    if status is not None:  # statuses first brought up to date, so the filter sees the truth
        for unfinished in store.unfinished():
            reconcile(store, unfinished)
    if published is not None:  # an ID prefix, as everywhere
        published = store.catalog().published(published).id
    records = store.list_runs(experiment=experiment_name, status=status, limit=limit, published=published)
    records = [reconcile(store, record) for record in records]
    extra = column_values(app, records, wanted) if wanted else {}
    if app.as_json:
        from mlproj.runs.documents import run_document

        documents = [run_document(store, record) for record in records]
        if wanted:
            for document, record in zip(documents, records, strict=True):
                document["columns"] = {name: values[record.run_id] for name, values in extra.items()}
        app.json(documents)
        return 0
    if not records:
        app.print("No runs.")
        return 0
    from mlproj.cli.render import runs_lines
    from mlproj.tracking.runs import format_number

    shown = {
        name: ["-" if values[r.run_id] is None else format_number(values[r.run_id]) for r in records]
        for name, values in extra.items()
    }
    for line in runs_lines(app.out, records, shown):
        app.print(line)
    return 0


KINDS = ("params", "metrics", "tags")


def parse_columns(text: str) -> list[tuple[str, str]]:
    """`params.alpha,metrics.rmse` → [("params", "alpha"), ("metrics", "rmse")]; anything else is an
    input error naming it."""
    from mlproj.errors import InputError

    wanted = []
    for item in (part.strip() for part in text.split(",")):
        kind, dot, name = item.partition(".")
        if not dot or kind not in KINDS or not name:
            raise InputError(f"--columns: {item!r}: expected params.NAME, metrics.NAME or tags.NAME")
        wanted.append((kind, name))
    return wanted


def column_values(
    app: Console, records: list[RunRecord], wanted: list[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """Each wanted column's value per run ID (None where the run has none); metrics from MLflow."""
    metrics: dict[str, dict[str, float]] = {}
    if any(kind == "metrics" for kind, _ in wanted):
        from mlproj.tracking.runs import metrics_of

        metrics, problems = metrics_of(records)
        for problem in problems:
            app.note(problem)

    def source(kind: str, record: RunRecord) -> Mapping[str, Any]:
        if kind == "params":
            return record.parameters
        if kind == "tags":
            return record.tags
        return metrics.get(record.run_id, {})

    return {f"{kind}.{name}": {r.run_id: source(kind, r).get(name) for r in records} for kind, name in wanted}
