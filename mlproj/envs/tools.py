"""The programs environment managers drive, located through their Python packages, not through PATH."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mlproj.errors import InputError

CONDA_VARIABLES = ("MLPROJ_CONDA_EXE", "MLFLOW_CONDA_HOME", "MLFLOW_CONDA_CREATE_ENV_CMD", "CONDA_EXE")
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
    """conda, mamba or micromamba: `MLPROJ_CONDA_EXE`; else MLflow's variables (`MLFLOW_CONDA_HOME`'s
    bin/, the program `MLFLOW_CONDA_CREATE_ENV_CMD` names, default conda); else `CONDA_EXE`; else PATH."""
    given = os.environ.get("MLPROJ_CONDA_EXE")
    if given:
        return _executable("MLPROJ_CONDA_EXE", given, given)
    program = os.environ.get("MLFLOW_CONDA_CREATE_ENV_CMD") or None
    home = os.environ.get("MLFLOW_CONDA_HOME")
    if home:
        return _executable(
            "MLFLOW_CONDA_HOME", home, str(Path(home).expanduser() / "bin" / (program or "conda"))
        )
    conda_exe = os.environ.get("CONDA_EXE")
    if conda_exe:
        if program:  # MLflow: the create command beside CONDA_EXE
            beside = str(Path(conda_exe).expanduser().parent / program)
            return _executable("MLFLOW_CONDA_CREATE_ENV_CMD", program, beside)
        return _executable("CONDA_EXE", conda_exe, conda_exe)
    for name in (program,) if program else CONDA_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    if program:
        raise InputError(f"MLFLOW_CONDA_CREATE_ENV_CMD={program}: not found on PATH")
    raise InputError(
        "conda is not installed: this project needs conda, mamba or micromamba (set MLPROJ_CONDA_EXE "
        "or MLFLOW_CONDA_HOME), or run it with --env-manager virtualenv or uv"
    )


def _executable(variable: str, value: str, program: str) -> Path:
    path = Path(program).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = "" if program == value else f" ({program})"
        raise InputError(f"{variable}={value}: no such executable{where}")
    return path
