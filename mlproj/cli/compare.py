"""`mlproj compare RUN RUN...`: parameters and metrics side by side, only what differs unless --all."""

from __future__ import annotations

from mlproj.cli.common import find, open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from typing import Any

    from mlproj.ui.console import Console


def compare(app: Console, *, run_ids: tuple[str, ...], show_all: bool) -> int:
    from mlproj.errors import InputError
    from mlproj.tracking.runs import format_number, side_by_side

    if len(run_ids) < 2:
        raise InputError(f"compare: give two or more runs (got {len(run_ids)})")
    store = open_store()
    records = [find(store, run_id) for run_id in run_ids]
    table, problems = side_by_side(records, show_all=show_all)
    for problem in problems:
        app.note(problem)
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
