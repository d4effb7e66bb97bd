"""`mlproj wait RUN_ID`: wait for the run to end and exit with the code `run` would have."""

from __future__ import annotations

import sys

import click

from mlproj.cli.common import Seconds, find, open_store, run_id_argument, stdout_bytes


@click.command("wait")
@run_id_argument
@click.option("--timeout", type=Seconds(), metavar="SECONDS", help="Give up after this long (exit 124).")
@click.option("--show-output/--no-show-output", default=True, show_default=True, help="Stream the run's log.")
def wait_command(run_id: str, timeout: float | None, show_output: bool) -> int:
    """Wait until RUN_ID ends; exit 0 if it finished, its exit code if it failed, 130 if canceled."""
    from mlproj.cli.render import summary_line
    from mlproj.execution import control
    from mlproj.runs.outcome import EXIT_TIMEOUT, exit_code_for
    from mlproj.ui.console import Text

    store = open_store()
    record = find(store, run_id)
    if show_output:
        final = control.follow(store, record.run_id, stdout_bytes(), timeout=timeout)
    else:
        final = control.wait(store, record.run_id, timeout=timeout)
    people = Text(sys.stderr)
    if final is None:
        people.print(f"Run {record.run_id} is still {store.get(record.run_id).status} after {timeout:g} s")
        return EXIT_TIMEOUT
    people.print(summary_line(people, final))
    return exit_code_for(final)
