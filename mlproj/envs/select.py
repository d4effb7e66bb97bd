"""Choosing a run's environment: the manager (MLflow's rule, or the one asked for) and what it must build,
checked now, before anything is recorded (a missing Python version, no conda, no image), unless the
environment is cached already."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mlproj.envs import choose_manager, get_manager

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.envs.base import EnvManager
    from mlproj.home import Home
    from mlproj.runs.envspec import EnvSpec
    from mlproj.spec import Project


def select_environment(
    given: str | None,
    project: Project | None,
    home: Home,
    *,
    folder: Path | None = None,
    rebuild: bool = False,
    options: Mapping[str, Any] | None = None,
    accept: Callable[[EnvManager], None] | None = None,
    built_here: bool = True,
    check_tools: bool = True,
    given_by: str = "--env-manager",
) -> tuple[str, EnvSpec | None]:
    """The manager's name and what it must build for `project`. `accept` (the backend's) refuses a
    manager it cannot run; without `built_here` (a cluster builds it) the spec is not checked here.
    `options`: the run's docker options (docker_args, build_image, docker_auth). Without a project (a
    pipeline's command step without `code`), there is no environment file: an empty environment in
    `folder`, or `local`. Without `check_tools` (`validate`: nothing is built), neither the tools nor
    the image are looked for."""
    from mlproj.envs.envspec import find_env_file

    if project is None:
        kind = "none"
    elif project.docker_env is not None:
        kind = "docker"
    else:
        found = find_env_file(project)
        kind = found[0] if found else "none"
    name = choose_manager(given, kind, given_by)
    manager = get_manager(name)
    if accept is not None:
        accept(manager)
    if not manager.builds:
        return name, None
    if project is None:
        return name, manager.empty_spec(folder or Path.cwd())
    spec = manager.load_spec(project, options or {})
    if not built_here or not check_tools:
        return name, spec
    if not manager.cached:
        manager.check(spec)
        return name, spec
    from mlproj.envs.cache import EnvCache

    if rebuild or EnvCache(home).lookup(manager.fingerprint(spec)) is None:
        manager.check(spec)
    return name, spec
