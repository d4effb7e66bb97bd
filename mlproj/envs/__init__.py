"""Environment managers: one per kind behind one interface, chosen from a registry (style.md habit 3)."""

from __future__ import annotations

import os

from mlproj.envs.base import EnvManager, PreparedEnv
from mlproj.errors import InputError

MANAGERS = {
    "local": ("mlproj.envs.local", "LocalEnv"),
    "virtualenv": ("mlproj.envs.virtualenv", "VirtualenvEnv"),
    "uv": ("mlproj.envs.uv", "UvEnv"),
    "conda": ("mlproj.envs.conda", "CondaEnv"),
    "docker": ("mlproj.envs.docker", "DockerEnv"),
}
KNOWN_MANAGERS = tuple(MANAGERS)
ENV_MANAGER_VARIABLE = "MLPROJ_ENV_MANAGER"


def get_manager(name: str) -> EnvManager:
    """The manager registered under `name`; an unknown name is an input error listing the known ones."""
    target = MANAGERS.get(name)
    if target is None:
        raise InputError(f"unknown --env-manager {name!r} (expected one of: {', '.join(MANAGERS)})")
    manager: EnvManager = getattr(__import__(target[0], fromlist=[target[1]]), target[1])()
    return manager


def choose_manager(given: str | None, env_kind: str, given_by: str = "--env-manager") -> str:
    """`--env-manager` (or a settings file: `given_by` names it), else `MLPROJ_ENV_MANAGER`, else
    MLflow's rule: docker_env → docker, a conda.yaml → conda, a python_env.yaml → virtualenv; a project
    with no environment file runs `local`. A docker_env project runs in its container whatever is
    asked, as in MLflow (with a warning)."""
    chosen, source = given, given_by
    if not chosen:
        chosen, source = os.environ.get(ENV_MANAGER_VARIABLE), ENV_MANAGER_VARIABLE
        if chosen and chosen not in MANAGERS:
            raise InputError(f"{ENV_MANAGER_VARIABLE}={chosen}: expected one of: {', '.join(MANAGERS)}")
    if env_kind == "docker":
        if chosen and chosen != "docker":
            from mlproj.notices import warn

            warn(
                f"{source} {chosen} is ignored: the project has a docker_env, which runs in its "
                "container (as in MLflow)"
            )
        return "docker"
    if chosen:
        return chosen
    return {"conda": "conda", "python": "virtualenv"}.get(env_kind, "local")


__all__ = ["KNOWN_MANAGERS", "EnvManager", "PreparedEnv", "choose_manager", "get_manager"]
