"""`conda`: conda, mamba or micromamba create a prefix environment from conda.yaml."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mlproj.envs.base import BuildStep, EnvManager, PortableEnv
from mlproj.envs.tools import conda_executable
from mlproj.errors import InputError
from mlproj.runs.envspec import EnvSpec


class CondaEnv(EnvManager):
    name = "conda"

    def check(self, spec: EnvSpec) -> None:
        if spec.kind != "conda":
            raise InputError(
                "--env-manager conda needs a conda.yaml (this project declares "
                f"{'a python_env.yaml' if spec.kind == 'python' else 'no environment'}); "
                "use --env-manager virtualenv or uv"
            )
        conda_executable()

    def portable(self, spec: EnvSpec | None) -> PortableEnv | None:
        if spec is None or spec.kind != "conda":
            return super().portable(spec)
        import yaml

        document = yaml.safe_load(spec.conda_text or "") or {}
        return PortableEnv("conda", conda=document if isinstance(document, dict) else {})

    def build_steps(self, spec: EnvSpec, target: Path) -> list[BuildStep]:
        self.check(spec)
        exe = conda_executable()
        # conda runs pip from the env file's folder: the project's own file, so `-r` lines resolve.
        env_file = Path(spec.source_file) if spec.source_file else target.parent / "conda.yaml"
        if not spec.source_file:
            env_file.write_text(spec.conda_text or "", encoding="utf-8")
        command = ("create",) if exe.name.startswith("micromamba") else ("env", "create")
        argv = (str(exe), *command, "--yes", "--prefix", str(target), "--file", str(env_file))
        return [BuildStep(f"{exe.name} environment from conda.yaml", argv, Path(spec.project_dir))]

    def activate(self, target: Path, base_env: Mapping[str, str]) -> dict[str, str]:
        path = base_env.get("PATH", "")
        bin_dir = str(target / "bin")
        return {
            "PATH": bin_dir + (os.pathsep + path if path else ""),
            "CONDA_PREFIX": str(target),
            "CONDA_DEFAULT_ENV": str(target),
        }
