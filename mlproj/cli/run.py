"""`mlproj run`: thin; the flow lives in `mlproj.submit`."""

from __future__ import annotations

from mlproj.cli.table import flag_names

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from mlproj.runs.record import RunRecord
    from mlproj.submit import Options
    from mlproj.ui.console import Console


def run(
    app: Console,
    *,
    uri: str,
    entry_point: str,
    version: str | None,
    params: tuple[str, ...],
    strict_params: bool,
    env_manager: str | None,
    backend: str | None,
    backend_config: str | None,
    experiment_name: str | None,
    experiment_id: str | None,
    tracking_uri: str | None,
    tracking: bool,
    run_name: str | None,
    tags: tuple[str, ...],
    storage_dir: str | None,
    detach: bool,
    timeout: float | None,
    rebuild_env: bool,
    docker_args: tuple[str, ...],
    build_image: bool,
    max_parallel: int | None,
    force_rerun: bool,
    continue_on_step_failure: bool,
    overrides: tuple[str, ...],
    asset_map: str | None,
) -> int:
    if tracking:
        _prefetch(tracking_uri, experiment_name, experiment_id)
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
        strict_params=strict_params or None,
        env_manager=env_manager,
        backend=backend,
        backend_config=load_backend_config(backend_config),
        experiment=experiment_name,
        experiment_id=experiment_id,
        tracking_uri=tracking_uri,
        tracking=None if tracking else False,
        run_name=run_name,
        tags=parse_assignments(tags, "--tag"),
        storage_dir=_absolute(storage_dir),
        timeout=timeout,
        rebuild_env=rebuild_env,
        docker=docker if docker_args or build_image else None,
        max_parallel=max_parallel,
        force_rerun=force_rerun,
        continue_on_step_failure=continue_on_step_failure,
        overrides=overrides,
        asset_map=_absolute(asset_map),
    )
    return run_and_show(app, options, detach=detach)


def _prefetch(given: str | None, name: str | None, experiment_id: str | None) -> None:
    """A tracked run in a named experiment asks its server for the experiment first thing, so that the
    answer comes while the rest of mlproj is imported (start-up: bench/tracking_overhead.py). The name
    and the URI are found as the plan finds them; a request it does not use costs nothing else."""
    import os

    name = name or os.environ.get("MLPROJ_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    uri = (given or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    if name and not experiment_id and uri.lower().startswith(("http://", "https://")):
        from mlproj.tracking.rest import prefetch_experiment

        prefetch_experiment(uri, name)


# How the command line names what `submit.options_for` refuses for the other kind of run.
FLAGS = {
    **{
        key: flag_names("run", key)
        for key in (
            "entry_point",
            "storage_dir",
            "max_parallel",
            "force_rerun",
            "continue_on_step_failure",
            "overrides",
            "asset_map",
        )
    },
    "docker": f"{flag_names('run', 'docker_args')}, {flag_names('run', 'build_image')}",
}


def run_and_show(app: Console, options: Options, *, detach: bool) -> int:
    """Submit a run (a project or a pipeline, `run` or `resume`) and show it: the run ID (or its record)
    when detached; otherwise its output, a pipeline's board, its summary line, and the exit code of §4."""
    from mlproj.cli.common import open_store
    from mlproj.runs.status import RunKind, RunStatus
    from mlproj.submit import Foreground, submit
    from mlproj.ui.progress import BuildProgress, DownloadProgress

    store = open_store(reading=False)
    downloads = DownloadProgress(app.err.stream)

    def view(record: RunRecord) -> Any:
        from mlproj.cli.board import make_view

        stream = app.output.stream
        return make_view(stream, plain=app.as_json, title=record.run_name or "", run_id=record.run_id)

    foreground = Foreground(
        output=app.output.bytes(),
        on_status=BuildProgress(app.err.stream).update,
        view=view,
        dedicated=True,
    )
    try:
        final = submit(store, options, detach=detach, foreground=foreground, progress=downloads)
    finally:
        downloads.close()
    if detach:
        if app.as_json:
            from mlproj.runs.documents import run_document

            app.json(run_document(store, final))
        else:
            app.print(final.run_id)
        return 0
    from mlproj.cli.render import summary_line
    from mlproj.runs.outcome import exit_code_for

    app.note(summary_line(app.err, final))
    if final.kind is RunKind.PIPELINE and final.status is RunStatus.FAILED:
        app.note(f"Resume it, reusing the steps that finished: mlproj resume {final.run_id}")
    if app.as_json:
        from mlproj.runs.documents import run_document

        app.json(run_document(store, final))
    return exit_code_for(final)


def _absolute(directory: str | None) -> Path | None:
    if not directory:
        return None
    from pathlib import Path

    return Path(directory).absolute()


def _docker_args(pairs: tuple[str, ...]) -> dict[str, str]:
    """`-A name=value` or `-A flag` (MLflow's form) → {name: value}; a bare flag means "true"."""
    result = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        result[name.strip()] = value if equals else "true"
    return result
