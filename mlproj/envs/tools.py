"""The programs environment managers drive, located through their Python packages, not through PATH."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mlproj.errors import InputError

CONDA_VARIABLES = ("MLPROJ_CONDA_EXE", "CONDA_EXE")
CONDA_NAMES = ("conda", "mamba", "micromamba")


def uv_binary() -> Path:
    """The `uv` executable shipped by the uv package (a dependency of mlproj)."""
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a dependency
        raise InputError("the uv package is not installed: pip install uv") from None
    return Path(find_uv_bin())


def virtualenv_command() -> list[str]:
    """`python -m virtualenv` with the interpreter running mlproj (virtualenv is a dependency)."""
    return [sys.executable, "-m", "virtualenv"]


def conda_executable() -> Path:
    """conda, mamba or micromamba: `MLPROJ_CONDA_EXE`, then `CONDA_EXE`, then PATH."""
    for variable in CONDA_VARIABLES:
        value = os.environ.get(variable)
        if value:
            path = Path(value).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise InputError(f"{variable}={value}: no such executable")
            return path
    for name in CONDA_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise InputError(
        "conda is not installed: this project needs conda, mamba or micromamba (set MLPROJ_CONDA_EXE "
        "to its path), or run it with --env-manager virtualenv or uv"
    )
