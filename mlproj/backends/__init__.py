"""Backends: where a prepared run executes. One `Backend` per kind behind one interface, from a
registry: `local` (this machine), `slurm` (sbatch), `ray` (the Ray Job API), `kubernetes` (Jobs),
and third-party backends that packages register under the entry-point group `mlproj.backends` (MLflow's
`mlflow.project_backend` idea): `name = "module:Class"`, a `Backend` subclass built without arguments.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlproj.errors import InputError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.backends.base import Backend
    from mlproj.config import Found

BACKENDS = {
    "local": ("mlproj.backends.local", "LocalBackend"),
    "slurm": ("mlproj.backends.slurm", "SlurmBackend"),
    "ray": ("mlproj.backends.ray", "RayBackend"),
    "kubernetes": ("mlproj.backends.kubernetes", "KubernetesBackend"),
}
ENTRY_POINT_GROUP = "mlproj.backends"


def get_backend(name: str) -> Backend:
    """The backend registered under `name`, built in or installed; an input error lists them all."""
    from mlproj.backends.base import Backend

    target = BACKENDS.get(name)
    if target is not None:
        backend: Backend = getattr(__import__(target[0], fromlist=[target[1]]), target[1])()
        return backend
    plugins = _plugins()
    if name not in plugins:
        known = ", ".join([*BACKENDS, *sorted(plugins)])
        raise InputError(f"unknown backend {name!r} (available: {known})")
    try:
        made = plugins[name].load()()
    except Exception as exc:  # noqa: BLE001 - a plugin may raise anything: its message says why
        raise InputError(
            f"backend {name}: its plugin {plugins[name].value} cannot be loaded: {exc}"
        ) from None
    if not isinstance(made, Backend):
        raise InputError(f"backend {name}: {plugins[name].value} is not an mlproj Backend")
    if not getattr(made, "name", None):
        made.name = name
    return made


def _plugins() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def check_setting(found: Found) -> None:
    """A backend or an environment manager named by a variable or a settings file: one that exists,
    else an input error naming where it was set (`MLPROJ_ENV_MANAGER=pip: …`, `FILE: backend: …`)."""
    from mlproj.envs import KNOWN_MANAGERS

    if found.key == "env_manager":
        if found.value not in KNOWN_MANAGERS:
            raise InputError(f"{found.where}: expected one of: {', '.join(KNOWN_MANAGERS)}")
        return
    try:
        get_backend(found.value)
    except InputError as exc:
        raise InputError(f"{found.where}: {exc}") from None


def available_backends() -> list[str]:
    return [*BACKENDS, *sorted(set(_plugins()) - set(BACKENDS))]


def load_backend_config(value: str | None) -> dict[str, Any] | None:
    """`-c/--backend-config`: JSON text, or a `.json` / `.yaml` / `.yml` file holding a mapping."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--backend-config: malformed JSON: {exc.msg} (column {exc.colno})") from None
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise InputError(
                f"--backend-config {text}: no such file (expected JSON text or a .json/.yaml file)"
            )
        if path.suffix.lower() in (".yaml", ".yml"):
            from mlproj.yamlio import load_yaml_file

            data = load_yaml_file(path)
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"--backend-config {path}: malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"--backend-config: expected a mapping of settings, got {type(data).__name__}")
    return data
