"""`mlproj cancel RUN_ID`: stop the run's whole process tree and record `Canceled`."""

from __future__ import annotations

import sys

import click

from mlproj.cli.common import Seconds, find, open_store, run_id_argument


@click.command("cancel")
@run_id_argument
@click.option(
    "--grace",
    type=Seconds(zero=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Time between SIGTERM and SIGKILL.",
)
def cancel_command(run_id: str, grace: float) -> int:
    """Cancel RUN_ID: SIGTERM to every process it started, SIGKILL after --grace seconds."""
    from mlproj.execution import control
    from mlproj.ui.console import Text

    store = open_store()
    outcome = control.cancel(store, find(store, run_id), grace)
    out = Text(sys.stdout)
    status = out.status(outcome.record.status)
    if outcome.already_final:
        out.print(f"Run {outcome.record.run_id} had already ended: {status}")
    else:
        out.print(f"Run {outcome.record.run_id} is now {status}")
    return 0
