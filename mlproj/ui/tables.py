"""Tables drawn with rich (imported here only, when a table is shown)."""

from __future__ import annotations

from collections.abc import Sequence

from mlproj.runs.record import RunRecord
from mlproj.ui.text import STATUS_STYLES, format_duration


def runs_table(records: Sequence[RunRecord]) -> object:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("RUN ID", "STATUS", "EXPERIMENT", "NAME", "ENTRY", "CREATED", "DURATION"):
        table.add_column(name, no_wrap=True)
    table.add_column("URI", overflow="fold", min_width=12)
    for record in records:
        color = {"32": "green", "31": "red", "33": "yellow", "34": "blue", "36": "cyan", "2": "dim"}[
            STATUS_STYLES[record.status]
        ]
        created = record.to_dict()["created_at"] or "-"
        table.add_row(
            record.run_id[:12],
            f"[{color}]{record.status.value}[/]",
            record.experiment,
            record.run_name or "",
            record.entry_point or "",
            created[:19].replace("T", " "),
            format_duration(record.duration_s),
            record.uri or "",
        )
    return table


def print_renderable(renderable: object) -> None:
    from mlproj.ui.console import console

    console().print(renderable)
