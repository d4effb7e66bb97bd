"""Planning and recording a project run: fetch → load MLproject → resolve the entry point → parameters →
environment → the `RunRequest`, then the record.

`plan_project` does everything that can fail on bad input, before anything is recorded or started, so
input errors never leave a run behind. `record_project` writes the run (`Queued`) with the request its
supervisor will execute.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mlproj import process
from mlproj.envs.select import select_environment
from mlproj.errors import InputError
from mlproj.home import Home
from mlproj.params import (
    Downloader,
    ResolvedParameters,
    check_command_size,
    check_labels,
    render_command,
    resolve_parameters,
)
from mlproj.runs.record import RunRecord
from mlproj.runs.request import RunRequest
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store, is_run_id, new_run_id
from mlproj.sources import copy_checkout, is_git_uri
from mlproj.spec import EntryPoint, Project
from mlproj.structs import dataclass, field, replace
from mlproj.values import check_timeout

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.backends.base import Backend
    from mlproj.downloads import Progress
    from mlproj.sources import FetchedSource

DEFAULT_EXPERIMENT = "Default"


@dataclass(frozen=True)
class RunOptions:
    uri: str
    entry_point: str = "main"
    version: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    env_manager: str | None = None
    backend: str | None = None  # None: the settings' (design.md §12), else local
    backend_config: Mapping[str, Any] | None = None
    experiment: str | None = None
    run_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    storage_dir: Path | None = None
    timeout: float | None = None
    caller_dir: Path = field(default_factory=Path.cwd)
    run_id: str | None = None
    rebuild_env: bool = False
    docker: Mapping[str, Any] = field(default_factory=dict)  # docker_args, build_image, docker_auth
    # MLflow tracking (design.md §8): the store (else MLFLOW_TRACKING_URI), on unless `tracking` is
    # False, and the MLflow experiment by ID (`experiment` names it).
    tracking_uri: str | None = None
    tracking: bool = True
    experiment_id: str | None = None
    strict_params: bool | None = None  # None: the settings' (design.md §12), else False
    env_manager_from: str | None = None  # the settings file that named env_manager (None: the flag)


@dataclass(frozen=True)
class TrackingPlan:
    """Where a run is tracked, and what its MLflow run says of its source (`mlflow run`'s tags)."""

    uri: str
    experiment_name: str | None  # as given (flag or variable); None: MLflow's Default
    experiment_id: str | None
    tags: Mapping[str, str]


@dataclass(frozen=True)
class ProjectPlan:
    """A run resolved and checked, ready to record: what would run (its request), and where."""

    run_id: str
    options: RunOptions
    uri: str
    commit: str | None
    project: Project
    entry_point: EntryPoint
    parameters: ResolvedParameters
    request: RunRequest
    experiment: str
    tracking: TrackingPlan | None = None


def plan_project(
    options: RunOptions, home: Home, *, materialize: bool = True, progress: Progress | None = None
) -> ProjectPlan:
    """Fetch the project and resolve everything; raises `InputError` for any bad input.

    With `materialize` (a real run, not `validate`), a Git project is copied into the run's folder,
    so that what one run writes next to its code is never seen by another, and `path` parameters
    given as URIs are downloaded (`progress` hears how big downloads go). On bad input, or when
    interrupted, nothing of it is left behind.
    """
    from mlproj.envs import get_manager
    from mlproj.sources import fetch
    from mlproj.spec import load_project
    from mlproj.tracking import check_experiment_flags, tracking_uri

    if options.backend is not None:  # a backend asked for is checked before anything is fetched
        resolve_backend(options.backend, options.backend_config)
    check_timeout(options.timeout)
    check_labels(options.run_name, options.tags)
    run_id = options.run_id or new_run_id()
    if not is_run_id(run_id):
        raise InputError(f"run ID {run_id!r}: expected 32 lowercase hex characters")
    if options.env_manager is not None:
        get_manager(options.env_manager)  # an unknown manager is an input error, found before fetching
    source = fetch(options.uri, options.version, home, options.caller_dir)
    folders = (source.path, options.caller_dir) if source.path.is_dir() else (options.caller_dir,)
    options = configured(options, folders, str(home.root))
    backend, backend_config = resolve_backend(options.backend or "local", options.backend_config)
    tracked_at = tracking_uri(
        options.tracking_uri,
        enabled=options.tracking,
        caller_dir=options.caller_dir,
        folders=folders,
        home=str(home.root),
    )
    check_experiment_flags(options.experiment, options.experiment_id, tracked_at)
    if not source.path.is_dir():
        from mlproj.pipelines import is_pipeline_file
        from mlproj.pipelines.loader import load_pipeline

        if is_pipeline_file(source.path):
            load_pipeline(source.path)  # its errors first
            raise InputError(f"{source.path}: a pipeline file, not a project (run it as a pipeline)")
        raise InputError(f"{source.path}: expected a project folder or a pipeline file (type: pipeline)")
    run_dir = home.run_dir(run_id)
    if run_dir.exists():
        raise InputError(f"run ID {run_id} is already in use")
    try:
        project_dir = _private_copy(source, run_dir) if materialize and source.is_git else source.path
        project = load_project(project_dir)
        entry_point = project.entry_point(options.entry_point)
        target = options.storage_dir or run_dir / "downloads"
        downloader = _downloader(target, progress, tracked_at) if materialize else None
        parameters = resolve_parameters(
            entry_point,
            options.parameters,
            project_dir=project.directory,
            caller_dir=options.caller_dir,
            download=downloader,
            strict=bool(options.strict_params),
        )
    except BaseException:
        if materialize:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    env_manager, env_spec = select_environment(
        options.env_manager,
        project,
        home,
        given_by=options.env_manager_from or "--env-manager",
        rebuild=options.rebuild_env,
        options={**(options.docker or {}), **backend.environment_options(backend_config)},
        accept=backend.accept,
        built_here=backend.prepares_environment,
        check_tools=materialize,
    )
    backend.check(backend_config, get_manager(env_manager), env_spec)
    command = render_command(entry_point, parameters)
    check_command_size(command, parameters.values)
    request = RunRequest(
        command=command,
        cwd=str(project.directory),
        shell=process.shell(),
        env_manager=env_manager,
        env_spec=env_spec,
        rebuild_env=options.rebuild_env,
        backend=options.backend or "local",
        backend_config=backend_config,
        asked=_asked(options),
    )
    tracking = plan_tracking(options, tracked_at, source, entry_point.name, env_manager, request)
    experiment = experiment_name(options)
    return ProjectPlan(
        run_id=run_id,
        options=options,
        uri=source.uri if source.is_git else str(source.path),
        commit=source.commit,
        project=project,
        entry_point=entry_point,
        parameters=parameters,
        request=request,
        experiment=experiment or DEFAULT_EXPERIMENT,
        tracking=tracking,
    )


def _asked(options: RunOptions) -> dict[str, Any]:
    """How the run was asked, as `mlproj rerun` asks again (never a credential of the URI)."""
    from mlproj.urls import strip_credentials

    return {
        "uri": strip_credentials(options.uri),
        "version": options.version,
        "parameters": dict(options.parameters),
        "caller_dir": str(options.caller_dir),
        "experiment_id": options.experiment_id,
        "tracking": options.tracking,
    }


def experiment_name(options: RunOptions) -> str | None:
    """The experiment named by `--experiment-name`, MLPROJ_EXPERIMENT_NAME or MLFLOW_EXPERIMENT_NAME; with
    `--experiment-id`, only the flag (a flag beats a variable)."""
    if options.experiment_id:
        return options.experiment
    return (
        options.experiment
        or os.environ.get("MLPROJ_EXPERIMENT_NAME")
        or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        or None
    )


def plan_tracking(
    options: RunOptions,
    uri: str | None,
    source: FetchedSource,
    entry_point: str,
    env_manager: str,
    request: RunRequest,
) -> TrackingPlan | None:
    """Where the run is tracked (`uri`), with the tags `mlflow run` gives a project's run; None when
    tracking is off."""
    if uri is None:
        return None
    name = experiment_name(options)
    experiment_id = options.experiment_id
    if experiment_id is None and not name:
        experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or None
    return TrackingPlan(
        uri=uri,
        experiment_name=name,
        experiment_id=str(experiment_id) if experiment_id else None,
        tags=_source_tags(source, entry_point, env_manager, request, options.caller_dir),
    )


def _source_tags(
    source: FetchedSource, entry_point: str, env_manager: str, request: RunRequest, caller_dir: Path
) -> dict[str, str]:
    from mlproj.sources import is_branch, remote_url, source_name
    from mlproj.urls import strip_credentials

    if is_git_uri(source.uri):
        name = strip_credentials(source.uri) + (f"#{source.subdirectory}" if source.subdirectory else "")
        repo: str | None = strip_credentials(source.uri)
    else:  # a local folder (read at -v from a clone of it: named as the folder)
        folder = source.path if not source.is_git else Path(os.path.normpath(caller_dir / source.uri))
        name, repo = source_name(folder), remote_url(folder)
    tags = {
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": name,
        "mlflow.project.entryPoint": entry_point,
        "mlflow.project.backend": request.backend,
    }
    if env_manager != "local":
        tags["mlflow.project.env"] = env_manager
    if source.commit:
        tags["mlflow.source.git.commit"] = source.commit
    if repo:
        tags["mlflow.source.git.repoURL"] = repo
    if is_branch(source):
        tags["mlflow.source.git.branch"] = str(source.version)
    spec = request.env_spec
    if spec is not None and spec.docker:
        image = spec.docker.get("build_tag") or spec.docker.get("image")
        if image:
            tags["mlflow.docker.image.name"] = str(image)
    return tags


def configured(options: RunOptions, folders: tuple[Path, ...], home: str) -> RunOptions:
    """The options with what they leave open taken from the settings (design.md §12: environment
    variables, then the project's or current folder's mlproj.toml, then the user's config.toml):
    the environment manager, the backend and its configuration, the experiment, strict parameters."""
    from mlproj.backends import check_setting
    from mlproj.config import backend_config as configured_table
    from mlproj.config import lookup

    backend = lookup("backend", given=options.backend, folders=folders, home=home)
    backend_config = options.backend_config
    if backend_config is None:  # the settings' [backend_config.NAME] of the backend chosen
        backend_config = configured_table(backend.value, folders=folders, home=home).value
    experiment = options.experiment
    if not options.experiment_id:  # with --experiment-id, only a flag names the experiment
        experiment = lookup("experiment_name", given=options.experiment, folders=folders, home=home).value
    # A variable is MLPROJ_ENV_MANAGER's to read (envs.choose_manager); a file's value is named by it.
    manager = lookup("env_manager", given=options.env_manager, folders=folders, home=home)
    from_file = manager.source not in ("flag", "default") and not manager.source.startswith("environment")
    for found in (backend, manager):  # a value from a setting is checked where it was set
        if found.value is not None and found.source not in ("flag", "default"):
            check_setting(found)
    strict = lookup("strict_params", given=options.strict_params, folders=folders, home=home).value
    return replace(
        options,
        backend=backend.value,
        backend_config=backend_config,
        env_manager=manager.value if manager.source == "flag" or from_file else None,
        env_manager_from=manager.where if from_file else None,
        experiment=experiment,
        strict_params=strict,
    )


def resolve_backend(name: str, config: Mapping[str, Any] | None) -> tuple[Backend, dict[str, Any]]:
    """The backend and its checked configuration; an unknown backend or key is an input error."""
    from mlproj.backends import get_backend

    backend = get_backend(name)
    return backend, backend.validate_config(config)


def _private_copy(source: FetchedSource, run_dir: Path) -> Path:
    """Copy the whole checkout (a project may use files beside its subfolder) into the run's folder."""
    target = copy_checkout(source, run_dir / "checkout")
    return target / source.subdirectory if source.subdirectory else target


def _downloader(target: Path, progress: Progress | None, tracking_uri: str | None) -> Downloader:
    def fetch_uri(name: str, uri: str) -> Path:
        from mlproj.params import ARTIFACT_SCHEMES

        if uri.partition(":")[0].lower() in ARTIFACT_SCHEMES:  # runs:/, s3://…: MLflow's artifacts
            from mlproj.tracking import artifacts

            return artifacts.fetch(name, uri, target, tracking_uri)
        from mlproj.downloads import download  # only when a parameter is a URI to download

        return download(name, uri, target, progress)

    return fetch_uri


def record_project(store: Store, planned: ProjectPlan) -> RunRecord:
    """Record the planned run as `Queued`, supervised (for now) by this process."""
    run_dir = store.home.run_dir(planned.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "output.log"
    log_path.touch()
    me = os.getpid()
    request = planned.request
    tracked: dict[str, Any] = {}
    if planned.tracking is not None:
        try:
            tracked = start_tracking(planned)
        except BaseException:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        request = replace(request, env={**request.env, **tracked.pop("env")})
    experiment = tracked.pop("experiment", planned.experiment)
    record = RunRecord(
        run_id=planned.run_id,
        kind=RunKind.PROJECT,
        status=RunStatus.QUEUED,
        experiment=experiment,
        run_name=planned.options.run_name,
        uri=planned.uri,
        version=planned.options.version,
        commit=planned.commit,
        entry_point=planned.entry_point.name,
        parameters=dict(planned.parameters.values),
        env_manager=request.env_manager,
        backend=request.backend,
        log_path=str(log_path),
        tags=dict(planned.options.tags),
        command=request.command,
        work_dir=str(planned.project.directory),
        run_dir=str(run_dir),
        timeout=planned.options.timeout,
        supervisor_pid=me,
        supervisor_identity=process.identity(me),
        request=request,
        **tracked,
    )
    try:
        return store.insert(record)
    except BaseException:
        if record.mlflow_run_id is not None and record.tracking_uri is not None:
            from mlproj.tracking.runs import abandon

            abandon(record.tracking_uri, record.mlflow_run_id)  # not left RUNNING in MLflow
        raise


def start_tracking(planned: ProjectPlan) -> dict[str, Any]:
    """The run's MLflow run, made now: the record's tracking fields, the workload's variables as "env"."""
    from mlproj.tracking.runs import begin

    plan = planned.tracking
    if plan is None:
        return {}
    fields = begin(
        plan.uri,
        experiment_name=plan.experiment_name,
        experiment_id=plan.experiment_id,
        run_name=planned.options.run_name,
        tags={**plan.tags, "mlproj.run_id": planned.run_id, **planned.options.tags},
        params=dict(planned.parameters.values),
        defer_params=True,  # their answer read once the workload has started (tracking.runs.settle)
    )
    if not plan.experiment_id:
        fields["experiment"] = planned.experiment  # as named (MLflow's Default when none was)
    return fields
