"""The interface every environment manager implements, and what a build is made of.

An environment says what a workload needs (variables for a process, or an image for a container), never
where it runs: backends decide that, and refuse what they cannot run. Nothing here branches on a
backend."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

from mlproj.errors import InputError
from mlproj.runs.envspec import EnvSpec
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.spec import Project


@dataclass(frozen=True)
class Container:
    """A workload that runs in an image: what a backend able to run containers needs (the run's own
    variables and labels it adds itself)."""

    image: str
    working_dir: str
    volumes: tuple[str, ...] = ()  # HOST:CONTAINER[:MODE]
    environment: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # container options (`-A`), the SDK's names


@dataclass(frozen=True)
class PortableEnv:
    """An environment a cluster can build by itself from a list of packages (Ray's runtime_env)."""

    installer: str  # "pip", "uv" or "conda"
    packages: tuple[str, ...] = ()
    conda: Mapping[str, Any] | None = None  # the conda.yaml document, for conda


@dataclass(frozen=True)
class PreparedEnv:
    """What a workload needs to run inside an environment: variables set for the child process only."""

    manager: str
    variables: Mapping[str, str] = field(default_factory=dict)
    prefix: str | None = None
    fingerprint: str | None = None
    reused: bool = False
    built_in: float | None = None  # seconds this run spent building it (None: nothing was built)
    packages: int | None = None  # the packages it holds, when they can be counted

    def built_line(self) -> str | None:
        """`environment built in 3.3 s (uv, 12 packages)`, when this run built it."""
        if self.built_in is None:
            return None
        from mlproj.ui.progress import BUILT

        count = f", {self.packages} packages" if self.packages is not None else ""
        return f"{BUILT}{self.built_in:.1f} s ({self.manager}{count})"


def count_packages(prefix: Path) -> int | None:
    """The packages an environment holds: conda's records, else Python's installed distributions."""
    conda = prefix / "conda-meta"
    if conda.is_dir():
        return sum(1 for _ in conda.glob("*.json"))
    found = [*prefix.glob("lib/python*/site-packages"), *prefix.glob("Lib/site-packages")]
    if not found:
        return None
    return sum(1 for folder in found for _ in folder.glob("*.dist-info"))


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
    in_container = False  # True: the workload runs in an image (`container`), by a backend that can

    def load_spec(self, project: Project, options: Mapping[str, Any]) -> EnvSpec:  # noqa: ARG002 - the EnvManager interface's signature
        """What to build for `project` (`options`: the run's docker_args, build_image, docker_auth)."""
        from mlproj.envs.envspec import load_env_spec

        return load_env_spec(project)

    def empty_spec(self, folder: Path) -> EnvSpec:
        """An environment with nothing in it, for a pipeline's command step that has no project."""
        return EnvSpec(kind="none", project_dir=str(folder))

    def check(self, spec: EnvSpec) -> None:  # noqa: B027 - optional hook
        """Raise `InputError` if this environment cannot be built here (before anything runs)."""

    def fingerprint(self, spec: EnvSpec) -> str:
        """The cache key of `spec` built by this manager."""
        return spec.fingerprint(self.name)

    @abstractmethod
    def build_steps(self, spec: EnvSpec, target: Path) -> list[BuildStep]:
        """The programs that build `spec` at `target` (which does not exist yet); files the programs need
        are written beside it, in `target.parent`."""

    def container(self, spec: EnvSpec, cwd: Path, run_dir: Path) -> Container | None:  # noqa: ARG002 - the EnvManager interface's signature
        """The image the workload runs in, for an environment that is one (`in_container`)."""
        return None

    def portable(self, spec: EnvSpec | None) -> PortableEnv | None:
        """The environment as packages a cluster installs itself (None: nothing to install); an input
        error when it cannot be told that way."""
        if spec is None or (spec.kind == "none" and not spec.dependencies):
            return None
        if spec.constraints:
            raise InputError("-c constraint files cannot be given to a cluster that builds the environment")
        packages = (*spec.build_dependencies, *spec.dependencies)
        return PortableEnv("pip", packages) if packages else None

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
