"""`mlproj runs`: recent runs, newest first."""

from __future__ import annotations

import click

from mlproj.cli.common import open_store, print_json


@click.command("runs")
@click.option("--experiment-name", help="Only runs of this experiment.")
@click.option("--status", "status_name", metavar="STATUS", help="Only runs in this status (e.g. Failed).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of run records.")
def runs_command(experiment_name: str | None, status_name: str | None, limit: int, as_json: bool) -> int:
    """List runs, newest first."""
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
    if as_json:
        from mlproj.runs.documents import run_document

        print_json([run_document(store, record) for record in records])
        return 0
    if not records:
        click.echo("No runs.")
        return 0
    import sys

    from mlproj.cli.render import runs_lines
    from mlproj.ui.console import Text

    out = Text(sys.stdout)
    for line in runs_lines(out, records):
        out.print(line)
    return 0
