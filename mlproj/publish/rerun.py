"""`mlproj rerun RUN [-P k=v]…` (design.md §12): a new run of what an earlier run ran, asked the same way,
with the parameters given changed. The command line and the web UI rerun through it.

- A project run: the same URI (as typed, `#subdirectory` included, from the same folder), entry point,
  `-P` values (defaults are the project's again), environment manager, backend and its configuration,
  docker arguments, experiment, name, tags and time limit. A Git URI runs the very commit the earlier
  run used, even if its branch has moved; a local folder runs what it holds now.
- A pipeline run: the same file (the same commit, for Git), inputs, `--set` overrides and settings.
- A published pipeline's run: the same published pipeline (not the endpoint's default of today), with
  its inputs; refused when the pipeline has been disabled.

The new run is tagged `mlproj.rerun_of` with the earlier run's ID, and tracked where the earlier run
was (not at all if it was not). Credentials (`docker_auth`, a password in a Git URL) are never
recorded, so they are not carried over. (It lives with publishing, the layer above submitting,
because a published pipeline's run reruns through its publication.)
"""

from __future__ import annotations

from pathlib import Path

from mlproj.errors import InputError
from mlproj.runs.status import RunKind
from mlproj.structs import replace

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store
    from mlproj.submit import Options

RERUN_OF_TAG = "mlproj.rerun_of"


def rerun_options(store: Store, earlier: RunRecord, parameters: Mapping[str, str] | None = None) -> Options:
    """The options of a new run of `earlier`, with `parameters` (pipeline inputs, for pipelines) given
    over the earlier ones."""
    changed = dict(parameters or {})
    if earlier.kind is RunKind.STEP:
        raise InputError(
            f"run {earlier.run_id} is step {earlier.step!r} of pipeline run {earlier.parent_run_id}: "
            "rerun the pipeline run"
        )
    tags = {**earlier.tags, RERUN_OF_TAG: earlier.run_id}
    if earlier.kind is RunKind.PIPELINE:
        from mlproj.pipelines.records import RESUMED_FROM_TAG, again_options, recorded_request

        request = recorded_request(earlier)
        tags.pop(RESUMED_FROM_TAG, None)
        if earlier.published_pipeline_id:
            from mlproj.publish import published_options

            options = published_options(
                store,
                earlier.published_pipeline_id,
                parameters={**request.inputs, **changed},
                experiment=earlier.experiment,
                caller_dir=Path(request.caller_dir),
            )
            return replace(
                options,
                run_name=earlier.run_name,
                tags=tags,
                tracking_uri=earlier.tracking_uri,
                tracking=earlier.tracking_uri is not None,
            )
        options = again_options(earlier, version=_version(earlier, request.uri, request.version))
        return replace(
            options,
            inputs={**options.inputs, **changed},
            tags=tags,
            tracking_uri=earlier.tracking_uri,
            tracking=earlier.tracking_uri is not None,
        )
    return _project_options(earlier, changed, tags)


def _project_options(earlier: RunRecord, changed: dict[str, str], tags: dict[str, str]) -> Options:
    """As the run was asked (its request says how; a run recorded before requests said so: as it was
    resolved, its URI and parameters as recorded)."""
    from mlproj.submit.project import RunOptions

    request = earlier.request
    asked = dict(getattr(request, "asked", None) or {})
    uri = asked.get("uri") or earlier.uri
    if not uri:
        raise InputError(f"run {earlier.run_id} recorded no URI: it cannot be run again")
    docker: dict[str, object] = {}
    spec = getattr(request, "env_spec", None)
    if spec is not None and spec.docker:
        docker = {
            "docker_args": dict(spec.docker.get("docker_args") or {}),
            "build_image": bool(spec.docker.get("build_tag")),
        }
    backend_config = getattr(request, "backend_config", None)
    parameters = asked.get("parameters", earlier.parameters)
    return RunOptions(
        uri=uri,
        entry_point=earlier.entry_point or "main",
        version=_version(earlier, uri, asked.get("version", earlier.version)),
        parameters={**parameters, **changed},
        env_manager=earlier.env_manager,
        backend=earlier.backend,
        backend_config=dict(backend_config) if backend_config else None,
        experiment=earlier.experiment,
        experiment_id=asked.get("experiment_id"),
        run_name=earlier.run_name,
        tags=tags,
        timeout=earlier.timeout,
        caller_dir=Path(asked.get("caller_dir") or Path.cwd()),
        docker=docker,
        tracking_uri=earlier.tracking_uri,
        tracking=bool(asked.get("tracking", True)) and earlier.tracking_uri is not None,
    )


def _version(earlier: RunRecord, uri: str, version: str | None) -> str | None:
    """A Git URI: the commit the earlier run used; anything else: the version as it was asked."""
    from mlproj.sources import is_git_uri

    if earlier.commit and is_git_uri(uri):
        return earlier.commit
    return version
