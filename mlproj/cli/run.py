"""`mlproj run`: thin; the flow lives in `mlproj.submit`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlproj.cli.common import Seconds, open_store, print_json, stderr_bytes, stdout_bytes

if TYPE_CHECKING:
    from mlproj.runs.record import RunRecord
    from mlproj.submit import Options


@click.command("run")
@click.argument("uri")
@click.option("-e", "--entry-point", default="main", show_default=True, help="Entry point to run.")
@click.option("-v", "--version", help="Git branch, tag or commit.")
@click.option("-P", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeatable).")
@click.option("--env-manager", help="local, virtualenv, uv or conda.")
@click.option("-b", "--backend", default="local", show_default=True, help="Where the run executes.")
@click.option("-c", "--backend-config", metavar="JSON_OR_FILE", help="Backend settings: JSON text or a file.")
@click.option("--experiment-name", help="Experiment to record the run under (default: Default).")
@click.option("--run-name", help="A name for the run.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option(
    "--storage-dir",
    type=click.Path(file_okay=False),
    help="Where path parameters given as URIs are downloaded.",
)
@click.option("-d", "--detach", is_flag=True, help="Start in the background and print the run ID.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON on stdout.")
@click.option(
    "--timeout", type=Seconds(), metavar="SECONDS", help="Cancel the run after this long (exit 124)."
)
@click.option("--rebuild-env", is_flag=True, help="Build the environment again instead of reusing it.")
@click.option(
    "-A",
    "--docker-args",
    "docker_args",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="A docker run option for docker_env projects, e.g. -A gpus=all (repeatable).",
)
@click.option("--build-image", is_flag=True, help="docker_env: build an image with the project copied in.")
@click.option("--max-parallel", type=int, metavar="N", help="Pipelines: steps running at once.")
@click.option("--force-rerun", is_flag=True, help="Pipelines: run every step, reuse none.")
@click.option(
    "--continue-on-step-failure",
    is_flag=True,
    help="Pipelines: keep running branches a failure does not reach.",
)
def run_command(
    uri: str,
    entry_point: str,
    version: str | None,
    params: tuple[str, ...],
    env_manager: str | None,
    backend: str,
    backend_config: str | None,
    experiment_name: str | None,
    run_name: str | None,
    tags: tuple[str, ...],
    storage_dir: str | None,
    detach: bool,
    as_json: bool,
    timeout: float | None,
    rebuild_env: bool,
    docker_args: tuple[str, ...],
    build_image: bool,
    max_parallel: int | None,
    force_rerun: bool,
    continue_on_step_failure: bool,
) -> int:
    """Run the project or pipeline at URI: a folder, a pipeline file (.yml with `type: pipeline`) or
    a Git URI, with an optional #subdirectory (or #path/to/pipeline.yml)."""
    from mlproj.backends import load_backend_config
    from mlproj.params import parse_assignments
    from mlproj.submit import options_for

    docker = {"docker_args": _docker_args(docker_args), "build_image": build_image}
    options = options_for(
        uri,
        FLAGS,
        entry_point=None if entry_point == "main" else entry_point,
        version=version,
        parameters=parse_assignments(params, "-P"),
        env_manager=env_manager,
        backend=backend,
        backend_config=load_backend_config(backend_config),
        experiment=experiment_name,
        run_name=run_name,
        tags=parse_assignments(tags, "--tag"),
        storage_dir=Path(storage_dir).absolute() if storage_dir else None,
        timeout=timeout,
        rebuild_env=rebuild_env,
        docker=docker if docker_args or build_image else None,
        max_parallel=max_parallel,
        force_rerun=force_rerun,
        continue_on_step_failure=continue_on_step_failure,
    )
    return run_and_show(options, detach=detach, as_json=as_json)


# How the command line names what `submit.options_for` refuses for the other kind of run.
FLAGS = {
    "entry_point": "-e/--entry-point",
    "storage_dir": "--storage-dir",
    "docker": "-A/--docker-args, --build-image",
    "max_parallel": "--max-parallel",
    "force_rerun": "--force-rerun",
    "continue_on_step_failure": "--continue-on-step-failure",
}


def run_and_show(options: Options, *, detach: bool, as_json: bool) -> int:
    """Submit a run (a project or a pipeline, `run` or `resume`) and show it: the run ID (or its record)
    when detached; otherwise its output, a pipeline's board, its summary line, and the exit code of §4."""
    from mlproj.cli.render import summary_line
    from mlproj.runs.documents import run_document
    from mlproj.runs.outcome import exit_code_for
    from mlproj.runs.status import RunKind, RunStatus
    from mlproj.submit import Foreground, submit
    from mlproj.ui.console import Text
    from mlproj.ui.progress import BuildProgress, DownloadProgress

    store = open_store()
    downloads = DownloadProgress(sys.stderr)
    people = Text(sys.stderr)

    def view(record: RunRecord) -> Any:
        from mlproj.cli.board import make_view

        stream = sys.stderr if as_json else sys.stdout
        return make_view(stream, plain=as_json, title=record.run_name or "", run_id=record.run_id)

    foreground = Foreground(
        output=stderr_bytes() if as_json else stdout_bytes(),
        on_status=BuildProgress(sys.stderr).update,
        view=view,
        dedicated=True,
    )
    try:
        final = submit(store, options, detach=detach, foreground=foreground, progress=downloads)
    finally:
        downloads.close()
    if detach:
        if as_json:
            print_json(run_document(store, final))
        else:
            Text(sys.stdout).print(final.run_id)
        return 0
    people.print(summary_line(people, final))
    if final.kind is RunKind.PIPELINE and final.status is RunStatus.FAILED:
        people.print(f"Resume it, reusing the steps that finished: mlproj resume {final.run_id}")
    if as_json:
        print_json(run_document(store, final))
    return exit_code_for(final)


def _docker_args(pairs: tuple[str, ...]) -> dict[str, str]:
    """`-A name=value` or `-A flag` (MLflow's form) → {name: value}; a bare flag means "true"."""
    result = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        result[name.strip()] = value if equals else "true"
    return result
