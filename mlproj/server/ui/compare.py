"""The web UI's comparison of runs (design.md §11, as `mlproj compare`): the runs chosen on the runs page
as columns, their parameters and latest MLflow metrics as rows, the rows that differ marked (only
those, unless `all`)."""

from __future__ import annotations

from mlproj.errors import InputError
from mlproj.server.runs import find
from mlproj.server.ui.frame import PageCall

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from starlette.responses import Response

MAX_RUNS = 20


def compare_page(call: PageCall) -> Response:
    from mlproj.tracking.runs import format_number, side_by_side

    wanted = call.query.getlist("run")
    if len(wanted) > MAX_RUNS:
        raise InputError(f"compare: choose 2 to {MAX_RUNS} runs (got {len(wanted)})")
    found = {record.run_id: record for record in (find(call.store, run_id[:64]) for run_id in wanted)}
    records = list(found.values())  # a run named twice (by a prefix and its ID) is shown once
    if len(records) < 2:
        raise InputError(f"compare: choose 2 to {MAX_RUNS} different runs (got {len(records)})")
    show_all = call.text("all") == "1"
    table, problems = side_by_side(records, show_all=show_all)
    rows = []
    for key, values in table.items():
        kind, _, name = key.partition(".")
        texts = ["—" if value is None else format_number(value) for value in values]
        rows.append((kind, name, texts, len(set(texts)) > 1))
    query = "&".join(f"run={record.run_id}" for record in records)
    return call.render(
        "compare.html",
        runs=records,
        rows=rows,
        problems=problems,
        show_all=show_all,
        toggle=f"/compare?{query}" + ("" if show_all else "&all=1"),
    )
