"""`mlproj status RUN_ID`: one run, reconciled before it is shown."""

from __future__ import annotations

import sys

import click

from mlproj.cli.common import find, open_store, print_json, run_id_argument
from mlproj.runs.status import RunKind

WATCH_INTERVAL = 1.0


@click.command("status")
@run_id_argument
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
@click.option("--watch", is_flag=True, help="Refresh until the run ends.")
def status_command(run_id: str, as_json: bool, watch: bool) -> int:
    """Show the status of RUN_ID (a run ID or a unique prefix of at least 4 characters)."""
    from mlproj.cli.render import status_lines
    from mlproj.runs.documents import run_document
    from mlproj.ui.console import Text

    store = open_store()
    record = find(store, run_id)
    if as_json:
        print_json(run_document(store, record))
        return 0
    out = Text(sys.stdout)
    if watch and not record.is_final:
        from mlproj.cli.live import watch_status

        watch_status(store, record.run_id, WATCH_INTERVAL)
        record = find(store, record.run_id)
    for line in status_lines(out, record):
        out.print(line)
    if record.kind is RunKind.PIPELINE:
        from mlproj.cli.render import steps_lines

        out.print()
        for line in steps_lines(out, store.steps_of(record.run_id)):
            out.print(line)
    return 0
