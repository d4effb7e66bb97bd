"""A client for the Docker Engine API (Docker, or Podman's compatible API) wherever `DOCKER_HOST` points,
through the `docker` package (`pip install 'mlproj[docker]'`): environments check and build images with
it, the local backend runs containers with it.
"""

from __future__ import annotations

import os

from mlproj.errors import InputError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

LABEL = "mlproj.run_id"
API_TIMEOUT = 60
# A fixed API version spares a round trip to negotiate one (half a second on some engines); 1.41 is
# spoken by Docker 20.10 and later and by Podman 3 and later. DOCKER_API_VERSION overrides it.
API_VERSION = "1.41"
_CLIENTS: dict[str, Any] = {}


def client() -> Any:
    """A client for the Docker API at DOCKER_HOST (or the default socket); input errors if none answers."""
    try:
        import docker
    except ImportError:
        raise InputError(
            "docker_env projects need the docker package: pip install 'mlproj[docker]'"
        ) from None
    host = os.environ.get("DOCKER_HOST")
    where = f"DOCKER_HOST={host}" if host else "unix:///var/run/docker.sock (DOCKER_HOST is not set)"
    if where in _CLIENTS:
        return _CLIENTS[where]
    version = os.environ.get("DOCKER_API_VERSION") or API_VERSION
    try:
        api = docker.from_env(timeout=API_TIMEOUT, version=version)
        api.ping()
    except Exception as exc:  # noqa: BLE001 - DockerException, or the transport's own (requests) connection errors
        raise InputError(
            f"no Docker API answers at {where}: {reason(exc)}; start Docker or Podman's Docker-compatible "
            "service (podman system service), or set DOCKER_HOST to its socket"
        ) from None
    _CLIENTS[where] = api
    return api


def reason(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text.strip().splitlines()[-1][:300] if text.strip() else type(exc).__name__
