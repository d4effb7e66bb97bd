"""EnvSpec: what a run's environment must contain, independent of which manager builds it. It is part of
the run's request (what the supervisor and the backends execute); `mlproj.envs.envspec` reads it from a
project's `python_env.yaml` or `conda.yaml`."""

from __future__ import annotations

import sys

from mlproj.structs import asdict, dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class EnvSpec:
    """An environment to build, independent of which manager builds it."""

    kind: str  # "python" (python_env.yaml), "conda" (conda.yaml) or "none" (no environment file)
    project_dir: str
    source_file: str | None = None
    python: str | None = None  # the requested version ("3.11", "3.11.7"); None: the running one
    build_dependencies: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    conda_text: str | None = None  # the conda.yaml itself, for conda managers
    lock_text: str | None = None  # uv.lock beside the project, for uv
    docker: dict[str, Any] | None = None  # docker_env and the run's docker options, for docker

    @property
    def synced_from_lock(self) -> bool:
        """uv syncs such a project from its lock file, installing the project itself in editable mode."""
        from pathlib import Path

        return self.lock_text is not None and (Path(self.project_dir) / "pyproject.toml").is_file()

    @property
    def python_version(self) -> str:
        return self.python or ".".join(str(part) for part in sys.version_info[:3])

    def fingerprint(self, manager: str, *, located: bool = False) -> str:
        """A hash of everything that makes the environment what it is, built by `manager`; its folder
        counts only when the environment is `located` there (one synced in place from a lock file)."""
        import hashlib
        import json

        content = asdict(self)
        content.pop("source_file")
        if not located:
            content.pop("project_dir")  # the same files anywhere are the same environment
        content["python"] = self.python_version
        content["manager"] = manager
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        return digest[:24]

    def to_dict(self) -> dict[str, Any]:
        """What the run's supervisor needs (recorded in the store): never registry credentials."""
        data = asdict(self)
        if data.get("docker"):
            data["docker"] = {k: v for k, v in data["docker"].items() if k != "auth"}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvSpec:
        values = dict(data)
        for name in ("build_dependencies", "dependencies", "constraints"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)
