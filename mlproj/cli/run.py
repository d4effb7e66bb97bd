"""`mlproj run`: thin; the flow lives in `mlproj.launch` and `mlproj.runs.supervisor`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from mlproj.cli.common import Seconds, open_store, print_json, stderr_bytes, stdout_bytes


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
    from mlproj import launch
    from mlproj.backends import load_backend_config
    from mlproj.errors import InputError
    from mlproj.params import parse_assignments
    from mlproj.pipelines import names_pipeline
    from mlproj.runs.outcome import exit_code_for
    from mlproj.runs.status import RunStatus
    from mlproj.runs.supervisor import Supervisor
    from mlproj.ui.progress import BuildProgress, DownloadProgress
    from mlproj.ui.text import Text, summary_line

    if names_pipeline(uri):
        project_only = {
            "-e/--entry-point": entry_point != "main",
            "--storage-dir": storage_dir is not None,
            "-A/--docker-args": bool(docker_args),
            "--build-image": build_image,
        }
        for flag, given in project_only.items():
            if given:
                raise InputError(f"{flag}: applies to projects, not to the pipeline {uri}")
        from mlproj.cli.pipeline import run_pipeline
        from mlproj.pipelines.plan import PipelineOptions

        pipeline_options = PipelineOptions(
            uri=uri,
            version=version,
            inputs=parse_assignments(params, "-P"),
            env_manager=env_manager,
            experiment=experiment_name,
            run_name=run_name,
            tags=parse_assignments(tags, "--tag"),
            max_parallel=max_parallel,
            force_rerun=force_rerun,
            continue_on_step_failure=continue_on_step_failure,
            timeout=timeout,
            rebuild_env=rebuild_env,
            backend=backend if backend != "local" or backend_config else None,
            backend_config=load_backend_config(backend_config),
        )
        return run_pipeline(pipeline_options, detach=detach, as_json=as_json)
    pipeline_only = {
        "--max-parallel": max_parallel is not None,
        "--force-rerun": force_rerun,
        "--continue-on-step-failure": continue_on_step_failure,
    }
    for flag, given in pipeline_only.items():
        if given:
            raise InputError(f"{flag}: applies to pipelines, and {uri} is not a pipeline file")
    options = launch.RunOptions(
        uri=uri,
        entry_point=entry_point,
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
        docker={"docker_args": _docker_args(docker_args), "build_image": build_image},
    )
    store = open_store()
    downloads = DownloadProgress(sys.stderr)
    try:
        planned = launch.plan(options, store.home, progress=downloads)
    finally:
        downloads.close()
    record = launch.record_run(store, planned)
    people = Text(sys.stderr)
    if detach:
        record = launch.start_detached(store, record)
        if as_json:
            print_json(record.to_dict())
        else:
            Text(sys.stdout).print(record.run_id)
        return 0
    try:
        progress = BuildProgress(sys.stderr)
        output = stderr_bytes() if as_json else stdout_bytes()
        final = Supervisor(store, record.run_id, output, on_status=progress.update, dedicated=True).run()
    except KeyboardInterrupt:  # before the supervisor took over the signals
        store.transition(record.run_id, RunStatus.CANCELED, error="canceled by Ctrl-C", ended_at=time.time())
        raise
    people.print(summary_line(people, final))
    if as_json:
        print_json(final.to_dict())
    return exit_code_for(final)


def _docker_args(pairs: tuple[str, ...]) -> dict[str, str]:
    """`-A name=value` or `-A flag` (MLflow's form) → {name: value}; a bare flag means "true"."""
    result = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        result[name.strip()] = value if equals else "true"
    return result
