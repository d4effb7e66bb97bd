"""`mlproj resume RUN_ID`: run a pipeline again, reusing every step the earlier run finished."""

from __future__ import annotations

import click

from mlproj.cli.common import find, open_store, run_id_argument


@click.command("resume")
@run_id_argument
@click.option("-d", "--detach", is_flag=True, help="Start in the background and print the run ID.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON on stdout.")
def resume_command(run_id: str, detach: bool, as_json: bool) -> int:
    """Run the pipeline of RUN_ID again with the same inputs: the steps it finished are reused
    (whatever allow_reuse says), the others run."""
    from mlproj.cli.run import run_and_show
    from mlproj.pipelines.records import resume_options

    store = open_store()
    earlier = find(store, run_id)
    options = resume_options(earlier)
    store.close()
    return run_and_show(options, detach=detach, as_json=as_json)
