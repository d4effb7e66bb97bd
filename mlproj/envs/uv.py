"""`uv`: `uv venv` + `uv pip install`; a project with `uv.lock` is synced from its lock file."""

from __future__ import annotations

from pathlib import Path

from mlproj.envs.base import BuildStep, EnvManager, write_requirements
from mlproj.envs.envspec import EnvSpec
from mlproj.envs.interpreters import find_python
from mlproj.envs.tools import uv_binary

UV_ENV = {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}


class UvEnv(EnvManager):
    name = "uv"

    def check(self, spec: EnvSpec) -> None:
        find_python(spec.python)

    def build_steps(self, spec: EnvSpec, target: Path) -> list[BuildStep]:
        uv = str(uv_binary())
        python = str(find_python(spec.python))
        cwd = Path(spec.project_dir)
        if spec.synced_from_lock:
            env = {**UV_ENV, "UV_PROJECT_ENVIRONMENT": str(target)}
            # uv installs the project itself in editable mode, pointing at this folder: such an
            # environment belongs to its folder (EnvSpec.fingerprint covers the folder for it).
            argv = (uv, "sync", "--frozen", "--python", python)
            return [BuildStep("uv sync from uv.lock", argv, cwd, env)]
        requirement_args, build_deps = write_requirements(spec, target)
        install = (uv, "pip", "install", "--python", str(target / "bin" / "python"))
        steps = [
            BuildStep(
                f"uv venv with Python {spec.python_version}",
                (uv, "venv", "--python", python, str(target)),
                cwd,
                UV_ENV,
            )
        ]
        if build_deps:
            steps.append(BuildStep("build dependencies", (*install, *build_deps), cwd, UV_ENV))
        if requirement_args:
            steps.append(BuildStep("dependencies", (*install, *requirement_args), cwd, UV_ENV))
        return steps
