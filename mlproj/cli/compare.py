"""`mlproj compare RUN RUN...`: parameters and metrics side by side, only what differs unless --all."""

from __future__ import annotations

from mlproj.cli.common import find, open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from typing import Any

    from mlproj.ui.console import Console


def compare(app: Console, *, run_ids: tuple[str, ...], show_all: bool) -> int:
    from mlproj.errors import InputError
    from mlproj.tracking.runs import format_number, metrics_of

    if len(run_ids) < 2:
        raise InputError(f"compare: give two or more runs (got {len(run_ids)})")
    store = open_store()
    records = [find(store, run_id) for run_id in run_ids]
    metrics, problems = metrics_of(records)
    for problem in problems:
        app.note(problem)
    table: dict[str, list[Any]] = {}
    for kind, values_of in (
        ("params", lambda r: r.parameters),
        ("metrics", lambda r: metrics.get(r.run_id, {})),
    ):
        names = sorted({name for record in records for name in values_of(record)})
        for name in names:
            row = [values_of(record).get(name) for record in records]
            if show_all or len({repr(value) for value in row}) > 1:
                table[f"{kind}.{name}"] = row
    if app.as_json:
        document: dict[str, Any] = {
            "runs": [record.run_id for record in records],
            "params": {},
            "metrics": {},
        }
        for key, row in table.items():
            kind, _, name = key.partition(".")
            document[kind][name] = row
        app.json(document)
        return 0
    if not table:
        app.print("The runs' parameters and metrics are the same.")
        return 0
    from mlproj.cli.render import table_lines

    def cell(value: Any) -> str:
        return "-" if value is None else format_number(value)

    headers = ["", *(record.display_name for record in records)]
    rows = [[key, *(cell(value) for value in row)] for key, row in table.items()]
    for line in table_lines(app.out, headers, rows):
        app.print(line)
    return 0
