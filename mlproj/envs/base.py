"""The interface every environment manager implements, and what a build is made of."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproj.envs.envspec import EnvSpec

if TYPE_CHECKING:
    from mlproj.process import ExecRequest
    from mlproj.spec import Project
    from mlproj.workload import Workload


@dataclass(frozen=True)
class PreparedEnv:
    """What a workload needs to run inside an environment: variables set for the child process only."""

    manager: str
    variables: Mapping[str, str] = field(default_factory=dict)
    prefix: str | None = None
    fingerprint: str | None = None
    reused: bool = False


@dataclass(frozen=True)
class BuildStep:
    """One program run while building an environment (an argv list, never a shell string)."""

    description: str
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)


class EnvManager(ABC):
    name: str
    builds = True  # False for `local`: nothing to build
    cached = True  # False when something else (a container engine) caches what is built
    launches_itself = False  # True when `launch` starts something other than a local process (docker)

    def load_spec(self, project: Project, options: Mapping[str, Any]) -> EnvSpec:
        """What to build for `project` (`options`: the run's docker_args, build_image, docker_auth)."""
        from mlproj.envs.envspec import load_env_spec

        return load_env_spec(project)

    def check(self, spec: EnvSpec) -> None:  # noqa: B027 - optional hook
        """Raise `InputError` if this environment cannot be built here (before anything runs)."""

    @abstractmethod
    def build_steps(self, spec: EnvSpec, target: Path) -> list[BuildStep]:
        """The programs that build `spec` at `target` (which does not exist yet); files the programs need
        are written beside it, in `target.parent`."""

    def launch(self, run_id: str, request: ExecRequest, run_request: Mapping[str, Any]) -> Workload:
        """Start the workload: by default a local process tree in its own session."""
        from mlproj.process import spawn
        from mlproj.workload import ProcessWorkload

        return ProcessWorkload.start(run_id, spawn(request), request)

    def cleanup(self, run_id: str) -> None:  # noqa: B027 - optional hook
        """Release what a run left outside its process tree (a container) once its supervisor is gone."""

    def activate(self, target: Path, base_env: Mapping[str, str]) -> dict[str, str]:
        """Variables that put the environment first for the workload (PATH + VIRTUAL_ENV)."""
        path = base_env.get("PATH", "")
        bin_dir = str(target / "bin")
        return {"PATH": bin_dir + (os.pathsep + path if path else ""), "VIRTUAL_ENV": str(target)}


def write_requirements(spec: EnvSpec, target: Path) -> tuple[list[str], list[str]]:
    """Write the dependency and constraint lines beside `target`; the pip arguments that install them,
    and the build dependencies (installed first)."""
    args: list[str] = []
    if spec.dependencies:
        requirements = target.parent / "requirements.txt"
        requirements.write_text("\n".join(spec.dependencies) + "\n", encoding="utf-8")
        args += ["-r", str(requirements)]
    if spec.constraints:
        constraints = target.parent / "constraints.txt"
        constraints.write_text("\n".join(spec.constraints) + "\n", encoding="utf-8")
        args += ["-c", str(constraints)]
    return args, list(spec.build_dependencies)
