"""`uv`: `uv venv` + `uv pip install`; a project with `uv.lock` is synced from its lock file."""

from __future__ import annotations

from pathlib import Path

from mlproj.envs.base import BuildStep, EnvManager, PortableEnv, write_requirements
from mlproj.envs.interpreters import find_python
from mlproj.envs.tools import uv_binary
from mlproj.errors import InputError
from mlproj.runs.envspec import EnvSpec

UV_ENV = {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}


class UvEnv(EnvManager):
    name = "uv"

    def check(self, spec: EnvSpec) -> None:
        find_python(spec.python)

    def fingerprint(self, spec: EnvSpec) -> str:
        # Synced from uv.lock, the environment holds the project in editable mode: it belongs to its folder.
        return spec.fingerprint(self.name, located=spec.synced_from_lock)

    def portable(self, spec: EnvSpec | None) -> PortableEnv | None:
        if spec is not None and spec.synced_from_lock:
            raise InputError(
                "a project synced from uv.lock cannot be built by a cluster; use python_env.yaml"
            )
        pip = super().portable(spec)
        return None if pip is None else PortableEnv("uv", pip.packages)

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
