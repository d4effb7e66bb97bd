"""`mlproj logs RUN_ID [-f]`: the run's combined stdout and stderr."""

from __future__ import annotations

import click

from mlproj.cli.common import find, open_store, run_id_argument, stdout_bytes


@click.command("logs")
@run_id_argument
@click.option("--step", help="A pipeline step's log (pipelines are not supported yet).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the run ends.")
def logs_command(run_id: str, step: str | None, follow: bool) -> int:
    """Print the output of RUN_ID."""
    from mlproj.errors import NotSupportedError
    from mlproj.runs.control import follow as follow_log

    if step is not None:
        raise NotSupportedError("--step: this run has no steps (pipelines are not supported yet)")
    store = open_store()
    record = find(store, run_id)
    follow_log(store, record.run_id, stdout_bytes(), follow=follow and not record.is_final)
    return 0
