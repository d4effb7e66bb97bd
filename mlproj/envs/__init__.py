"""Environment managers: one per kind behind one interface, chosen from a registry (style.md habit 3)."""

from __future__ import annotations

from mlproj.envs.base import EnvManager, PreparedEnv
from mlproj.errors import InputError, NotSupportedError

KNOWN_MANAGERS = ("local", "virtualenv", "uv", "conda")


def get_manager(name: str) -> EnvManager:
    """The manager registered under `name`; unknown or not yet supported names are input errors."""
    if name == "local":
        from mlproj.envs.local import LocalEnv

        return LocalEnv()
    if name in KNOWN_MANAGERS:
        raise NotSupportedError(f"--env-manager {name}: not supported yet in this version (use local)")
    raise InputError(f"unknown --env-manager {name!r} (expected one of: {', '.join(KNOWN_MANAGERS)})")


__all__ = ["KNOWN_MANAGERS", "EnvManager", "PreparedEnv", "get_manager"]
