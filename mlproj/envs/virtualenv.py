"""`virtualenv`: the virtualenv package creates the environment, pip installs into it."""

from __future__ import annotations

from pathlib import Path

from mlproj.envs.base import BuildStep, EnvManager, write_requirements
from mlproj.envs.interpreters import find_python
from mlproj.envs.tools import virtualenv_command
from mlproj.runs.envspec import EnvSpec

PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


class VirtualenvEnv(EnvManager):
    name = "virtualenv"

    def check(self, spec: EnvSpec) -> None:
        find_python(spec.python)

    def build_steps(self, spec: EnvSpec, target: Path) -> list[BuildStep]:
        python = find_python(spec.python)
        cwd = Path(spec.project_dir)
        requirement_args, build_deps = write_requirements(spec, target)
        env_python = str(target / "bin" / "python")
        steps = [
            BuildStep(
                f"virtualenv with Python {spec.python_version}",
                (*virtualenv_command(), "--no-periodic-update", "--python", str(python), str(target)),
                cwd,
            )
        ]
        if build_deps:
            steps.append(
                BuildStep(
                    "build dependencies", (env_python, "-m", "pip", "install", *build_deps), cwd, PIP_ENV
                )
            )
        if requirement_args:
            steps.append(
                BuildStep(
                    "dependencies", (env_python, "-m", "pip", "install", *requirement_args), cwd, PIP_ENV
                )
            )
        return steps
