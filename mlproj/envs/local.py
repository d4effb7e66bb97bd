"""`local`: the interpreter that runs mlproj, nothing built."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from mlproj.envs.base import EnvManager, PreparedEnv
from mlproj.home import Home


class LocalEnv(EnvManager):
    name = "local"

    def prepare(self, project_dir: Path, home: Home, base_env: Mapping[str, str]) -> PreparedEnv:
        # `python` in a command means the interpreter running mlproj, as it does when `mlflow run`
        # is called from an activated environment; the rest of PATH is left as it is.
        bin_dir = str(Path(sys.executable).parent)
        path = base_env.get("PATH", "")
        if path.split(os.pathsep)[0] != bin_dir:
            path = bin_dir + os.pathsep + path if path else bin_dir
        return PreparedEnv(manager=self.name, variables={"PATH": path}, prefix=sys.prefix)
