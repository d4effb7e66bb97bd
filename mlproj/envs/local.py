"""`local`: the interpreter that runs mlproj, nothing built."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from mlproj.envs.base import BuildStep, EnvManager, PortableEnv
from mlproj.runs.envspec import EnvSpec


class LocalEnv(EnvManager):
    name = "local"
    builds = False

    def build_steps(self, spec: EnvSpec, target: Path) -> list[BuildStep]:  # noqa: ARG002 - the EnvManager interface's signature
        return []

    def portable(self, spec: EnvSpec | None) -> PortableEnv | None:  # noqa: ARG002 - the EnvManager interface's signature
        return None  # whatever the cluster's interpreter has

    def activate(self, target: Path, base_env: Mapping[str, str]) -> dict[str, str]:  # noqa: ARG002 - the EnvManager interface's signature
        # `python` in a command means the interpreter running mlproj, as it does when `mlflow run`
        # is called from an activated environment; the rest of PATH is left as it is.
        bin_dir = str(Path(sys.executable).parent)
        path = base_env.get("PATH", "")
        if path.split(os.pathsep)[0] != bin_dir:
            path = bin_dir + os.pathsep + path if path else bin_dir
        return {"PATH": path}
