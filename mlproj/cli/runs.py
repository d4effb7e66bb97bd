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
    name: str | None,
    tag: str | None,
    since: str | None,
    kind: str | None,
    uri: str | None,
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
    records = store.list_runs(
        experiment=experiment_name,
        status=status,
        limit=limit,
        published=published,
        name=name,
        tag=parse_tag(tag) if tag is not None else None,
        since=parse_since(since) if since is not None else None,
        kind=kind,
        uri=uri,
    )
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
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_tag(text: str) -> tuple[str, str]:
    """`--tag team=ml` → ("team", "ml")."""
    from mlproj.errors import InputError

    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise InputError(f"--tag {text!r}: expected NAME=VALUE")
    return key.strip(), value.strip()


def parse_since(text: str, now: float | None = None) -> float:
    """`--since 2h` (s, m, h, d or w ago) or `--since 2026-11-30` / `2026-11-30T14:00` (local time)
    → the earliest creation time shown."""
    import re
    import time
    from datetime import datetime

    from mlproj.errors import InputError

    found = re.fullmatch(r"\s*([0-9]{1,7})\s*([smhdw])\s*", text.lower())
    if found:
        return (time.time() if now is None else now) - int(found.group(1)) * UNITS[found.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()  # naive: the machine's local time
    except (ValueError, OverflowError, OSError):
        raise InputError(
            f"--since {text[:40]!r}: expected a duration (30m, 2h, 7d, 2w) or a date (2026-11-30, "
            "2026-11-30T14:00)"
        ) from None


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
