"""The run flow as named steps: fetch → load spec → resolve entry point → parameters → record → start.

`plan` does everything that can fail on bad input, before anything is recorded or started, so input
errors never leave a run behind. `record_run` writes the run (`Queued`) with the request its supervisor
will execute; `start_detached` hands it to a background supervisor.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproj import process
from mlproj.errors import InputError
from mlproj.home import Home
from mlproj.params import (
    Downloader,
    ResolvedParameters,
    check_command_size,
    check_passable,
    render_command,
    resolve_parameters,
)
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store, is_run_id, new_run_id
from mlproj.spec import EntryPoint, Project

if TYPE_CHECKING:
    from mlproj.backends.base import Backend
    from mlproj.downloads import Progress
    from mlproj.envs.envspec import EnvSpec
    from mlproj.sources import FetchedSource

DEFAULT_EXPERIMENT = "Default"


@dataclass(frozen=True)
class RunOptions:
    uri: str
    entry_point: str = "main"
    version: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    env_manager: str | None = None
    backend: str = "local"
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


@dataclass(frozen=True)
class Plan:
    """A run resolved and checked, ready to record: what would run, and where."""

    run_id: str
    options: RunOptions
    uri: str
    commit: str | None
    project: Project
    entry_point: EntryPoint
    parameters: ResolvedParameters
    command: str
    argv: tuple[str, ...]
    env_manager: str
    env_spec: EnvSpec | None
    experiment: str
    backend_config: Mapping[str, Any] = field(default_factory=dict)


def plan(
    options: RunOptions, home: Home, *, materialize: bool = True, progress: Progress | None = None
) -> Plan:
    """Fetch the project and resolve everything; raises `InputError` for any bad input.

    With `materialize` (a real run, not `validate`), a Git project is copied into the run's folder,
    so that what one run writes next to its code is never seen by another, and `path` parameters
    given as URIs are downloaded (`progress` hears how big downloads go). On bad input, or when
    interrupted, nothing of it is left behind.
    """
    from mlproj.envs import get_manager
    from mlproj.sources import fetch
    from mlproj.spec import load_project

    backend, backend_config = resolve_backend(options.backend, options.backend_config)
    check_timeout(options.timeout)
    check_labels(options.run_name, options.tags)
    run_id = options.run_id or new_run_id()
    if not is_run_id(run_id):
        raise InputError(f"run ID {run_id!r}: expected 32 lowercase hex characters")
    if options.env_manager is not None:
        get_manager(options.env_manager)  # an unknown manager is an input error, found before fetching
    source = fetch(options.uri, options.version, home, options.caller_dir)
    if not source.path.is_dir():
        from mlproj.pipelines import is_pipeline_file
        from mlproj.pipelines.spec import load_pipeline

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
        downloader = _downloader(target, progress) if materialize else None
        parameters = resolve_parameters(
            entry_point,
            options.parameters,
            project_dir=project.directory,
            caller_dir=options.caller_dir,
            download=downloader,
        )
    except BaseException:
        if materialize:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    env_manager, env_spec = choose_environment(
        options.env_manager, project, home, options.rebuild_env, options.docker, backend
    )
    from mlproj.envs import get_manager

    backend.check(backend_config, env_spec, get_manager(env_manager))
    command = render_command(entry_point, parameters)
    check_command_size(command, parameters.values)
    return Plan(
        run_id=run_id,
        options=options,
        uri=source.uri if source.is_git else str(source.path),
        commit=source.commit,
        project=project,
        entry_point=entry_point,
        parameters=parameters,
        command=command,
        argv=(shell(), "-c", command),
        env_manager=env_manager,
        env_spec=env_spec,
        experiment=options.experiment or os.environ.get("MLPROJ_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT,
        backend_config=backend_config,
    )


def check_timeout(timeout: float | None, flag: str = "--timeout") -> None:
    """A timeout is a positive, finite number of seconds."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise InputError(f"{flag} {timeout:g}: expected a positive number of seconds")


def check_labels(run_name: str | None, tags: Mapping[str, str]) -> None:
    """The run's name and tags are text: no NUL characters."""
    if run_name is not None:
        check_passable("--run-name", run_name)
    for key, value in tags.items():
        check_passable(f"--tag {key!r}", key + value)


def resolve_backend(name: str, config: Mapping[str, Any] | None) -> tuple[Backend, dict[str, Any]]:
    """The backend and its checked configuration; an unknown backend or key is an input error."""
    from mlproj.backends import get_backend

    backend = get_backend(name)
    return backend, backend.validate_config(config)


def choose_environment(
    given: str | None,
    project: Project,
    home: Home,
    rebuild: bool,
    docker: Mapping[str, Any],
    backend: Backend | None = None,
) -> tuple[str, EnvSpec | None]:
    """The environment manager and what it must build; whatever cannot be built here is an input
    error now (a missing Python version, no conda, no image), unless the environment is cached.
    The backend must accept the manager first; one that has the cluster build the environment
    (`prepares_environment` False) gets it unchecked here."""
    from mlproj.envs import choose_manager, get_manager
    from mlproj.envs.envspec import find_env_file

    if project.docker_env is not None:
        kind = "docker"
    else:
        found = find_env_file(project)
        kind = found[0] if found else "none"
    name = choose_manager(given, kind)
    manager = get_manager(name)
    if backend is not None:
        backend.accept_manager(manager)
    if not manager.builds:
        return name, None
    spec = manager.load_spec(project, docker)
    if backend is not None and not backend.prepares_environment:
        return name, spec
    if not manager.cached:
        manager.check(spec)
        return name, spec
    from mlproj.envs.cache import EnvCache

    if rebuild or EnvCache(home).lookup(spec.fingerprint(name)) is None:
        manager.check(spec)
    return name, spec


def _private_copy(source: FetchedSource, run_dir: Path) -> Path:
    """Copy the whole checkout (a project may use files beside its subfolder) into the run's folder."""
    target = copy_checkout(source, run_dir / "checkout")
    return target / source.subdirectory if source.subdirectory else target


def copy_checkout(source: FetchedSource, target: Path) -> Path:
    """Copy the whole checkout that `source` lies in to `target`; returns `target`."""
    depth = len(Path(source.subdirectory).parts) if source.subdirectory else 0
    root = source.path.parents[depth - 1] if depth else source.path
    shutil.copytree(root, target, symlinks=True)
    return target


def _downloader(target: Path, progress: Progress | None) -> Downloader:
    from mlproj.downloads import download

    def fetch_uri(name: str, uri: str) -> Path:
        return download(name, uri, target, progress)

    return fetch_uri


def shell() -> str:
    """The shell that runs MLproject commands (bash, as MLflow uses; sh where there is no bash)."""
    return shutil.which("bash") or "/bin/sh"


def record_run(store: Store, planned: Plan) -> RunRecord:
    """Record the planned run as `Queued`, supervised (for now) by this process."""
    run_dir = store.home.run_dir(planned.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "output.log"
    log_path.touch()
    me = os.getpid()
    request = {
        "argv": list(planned.argv),
        "cwd": str(planned.project.directory),
        "project_dir": str(planned.project.directory),
        "env": {},
        "env_spec": planned.env_spec.to_dict() if planned.env_spec else None,
        "rebuild_env": planned.options.rebuild_env,
        "backend_config": dict(planned.backend_config),
    }
    record = RunRecord(
        run_id=planned.run_id,
        kind="project",
        status=RunStatus.QUEUED,
        experiment=planned.experiment,
        run_name=planned.options.run_name,
        uri=planned.uri,
        version=planned.options.version,
        commit=planned.commit,
        entry_point=planned.entry_point.name,
        parameters=dict(planned.parameters.values),
        env_manager=planned.env_manager,
        backend=planned.options.backend,
        log_path=str(log_path),
        tags=dict(planned.options.tags),
        command=planned.command,
        work_dir=str(planned.project.directory),
        run_dir=str(run_dir),
        timeout=planned.options.timeout,
        supervisor_pid=me,
        supervisor_identity=process.identity(me),
        request=request,
    )
    return store.insert(record)


def start_detached(store: Store, record: RunRecord) -> RunRecord:
    """Hand a recorded run to a background supervisor and return at once."""
    env = {**os.environ, "MLPROJ_HOME": str(store.home.root)}
    env.pop(process.RUN_ID_VARIABLE, None)
    run_dir = Path(record.run_dir or store.home.run_dir(record.run_id))
    proc = process.spawn_detached(
        [sys.executable, "-m", "mlproj.runs.supervise", record.run_id], env, run_dir / "supervisor.log"
    )
    child_identity = process.identity(proc.pid)
    if child_identity is not None:  # None: it has already finished, and recorded itself
        store.update(record.run_id, supervisor_pid=proc.pid, supervisor_identity=child_identity)
    return store.get(record.run_id)
