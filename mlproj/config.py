"""Settings (design.md §12): a flag, else an environment variable, else `mlproj.toml` (or `[tool.mlproj]`
in `pyproject.toml`) in the project's folder or the current folder, else `MLPROJ_HOME/config.toml` for
the user, else the default; `lookup` says which gave each value (`mlproj config show`).

Files are read only when they exist (TOML's parser is imported then, not before).
"""

from __future__ import annotations

import os
import sys

from mlproj.errors import InputError
from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

# The settings (design.md §12): anything else in a file is refused, not silently ignored.
KEYS = (
    "env_manager",
    "backend",
    "backend_config",
    "experiment_name",
    "tracking_uri",
    "max_parallel",
    "strict_params",
)
# The environment variables that set them (before the files; a flag before all).
VARIABLES = {
    "env_manager": ("MLPROJ_ENV_MANAGER",),
    "experiment_name": ("MLPROJ_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME"),
    "tracking_uri": ("MLFLOW_TRACKING_URI",),
    "max_parallel": ("MLPROJ_MAX_PARALLEL",),
    "strict_params": ("MLPROJ_STRICT_PARAMS",),
}
DEFAULTS: dict[str, object] = {
    "env_manager": None,  # MLflow's rule: from the project's environment file
    "backend": "local",
    "backend_config": {},
    "experiment_name": None,  # MLflow's Default
    "tracking_uri": None,  # tracking off
    "max_parallel": None,  # the pipeline's settings, else the machine's CPUs
    "strict_params": False,
}
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Found:
    """A setting's value and where it came from: "flag", "environment NAME", a file's path, "default"."""

    key: str
    value: Any
    source: str

    @property
    def where(self) -> str:
        """Where a bad value was set, as an error names it: `MLPROJ_ENV_MANAGER=pip`, `FILE: env_manager`."""
        if self.source.startswith("environment "):
            return f"{self.source.removeprefix('environment ')}={self.value}"
        return self.key if self.source in ("flag", "default") else f"{self.source}: {self.key}"


def lookup(
    key: str, *, given: Any = None, folders: tuple[str | os.PathLike[str], ...] = (), home: str | None = None
) -> Found:
    """A setting by the precedence of design.md §12: `given` (a flag) > environment variable > the
    project's or current folder's file > the user's file (MLPROJ_HOME/config.toml) > default."""
    if given is not None:
        return Found(key, given, "flag")
    for variable in VARIABLES.get(key, ()):
        text = os.environ.get(variable)
        if text:
            return Found(key, _from_text(key, text, variable), f"environment {variable}")
    if home is not None:
        found = setting(key, folders=folders, home=home)
        if found is not None:
            return Found(key, found[0], found[1])
    return Found(key, DEFAULTS[key], "default")


def backend_config(
    name: str, *, folders: tuple[str | os.PathLike[str], ...] = (), home: str | None = None
) -> Found:
    """`[backend_config.NAME]` of the first file that has one for this backend (a closer file's table
    for another backend does not hide it); {} by default."""
    if home is not None:
        for path, values in _files(folders, home):
            tables = values.get("backend_config") or {}
            if name in tables:
                return Found("backend_config", tables[name], path)
    return Found("backend_config", {}, "default")


def _files(folders: tuple[str | os.PathLike[str], ...], home: str) -> list[tuple[str, dict[str, Any]]]:
    """The settings files that exist, nearest first (the folders' files, then the user's), read."""
    found: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for folder in folders:
        for path, table in _candidates(os.fspath(folder)):
            if path not in seen:
                seen.add(path)
                values = _read(path, table)
                if values is not None:
                    found.append((path, values))
    user = os.path.join(home, "config.toml")
    values = _read(user, None)
    if values is not None and user not in seen:
        found.append((user, values))
    return found


def settings(folders: tuple[str | os.PathLike[str], ...], home: str) -> list[Found]:
    """Every setting as a run from these folders would see it (`mlproj config show`): each backend's
    table as `backend_config.NAME`, from the nearest file that has it."""
    found = [lookup(key, folders=folders, home=home) for key in KEYS if key != "backend_config"]
    names = dict.fromkeys(
        name for _path, values in _files(folders, home) for name in values.get("backend_config") or {}
    )
    for name in names:
        table = backend_config(name, folders=folders, home=home)
        found.append(Found(f"backend_config.{name}", table.value, table.source))
    return found


def _from_text(key: str, text: str, variable: str) -> Any:
    if key == "max_parallel":
        if not text.strip().isdigit() or int(text) < 1:
            raise InputError(f"{variable}={text!r}: expected a whole number of at least 1")
        return int(text)
    if key == "strict_params":
        lowered = text.strip().lower()
        if lowered not in TRUE + FALSE:
            raise InputError(f"{variable}={text!r}: expected true or false")
        return lowered in TRUE
    return text


def _check(path: str, where: str, key: str, value: Any) -> None:
    """A value from a file, of the type its key takes; else an input error naming file and key."""
    expected = {
        "max_parallel": "a whole number of at least 1",
        "strict_params": "true or false",
        "backend_config": "a table of tables, one per backend ([backend_config.slurm])",
    }.get(key, "a string")
    if key == "max_parallel":
        good = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    elif key == "strict_params":
        good = isinstance(value, bool)
    elif key == "backend_config":
        good = isinstance(value, dict) and all(isinstance(table, dict) for table in value.values())
    else:
        good = isinstance(value, str)
    if not good:
        raise InputError(f"{path}: {where}{key}: expected {expected}, got {value!r}")


def setting(key: str, *, folders: tuple[str | os.PathLike[str], ...], home: str) -> tuple[Any, str] | None:
    """The value of `key` and the file it came from: the first of `folders`' files that sets it (the
    project's, then the current folder's), then the user's file; None when none does."""
    for path, values in _files(folders, home):
        if key in values:
            return values[key], path
    return None


def _candidates(folder: str) -> list[tuple[str, str | None]]:
    return [
        (os.path.join(folder, "mlproj.toml"), None),
        (os.path.join(folder, "pyproject.toml"), "tool.mlproj"),
    ]


def _read(path: str, table: str | None) -> dict[str, Any] | None:
    """The settings a file holds (a table of it, for pyproject.toml), or None when it has none."""
    if not os.path.isfile(path):
        return None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as file:
            data: Any = tomllib.load(file)
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    for part in table.split(".") if table else ():
        data = data.get(part) if isinstance(data, dict) else None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise InputError(f"{path}: {table}: expected a table of settings")
    where = f"{table}." if table else ""
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise InputError(f"{path}: {where}{unknown[0]}: unknown setting (expected one of: {', '.join(KEYS)})")
    for key, value in data.items():
        _check(path, where, key, value)
    return data


LIMIT_VARIABLE = "MLPROJ_DOWNLOAD_LIMIT"
DEFAULT_LIMIT = 10 * 2**30
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def download_limit() -> int:
    """MLPROJ_DOWNLOAD_LIMIT in bytes (`10G`, `500M`, `1048576`), else DEFAULT_LIMIT."""
    text = os.environ.get(LIMIT_VARIABLE, "").strip().upper().removesuffix("IB").removesuffix("B")
    if not text:
        return DEFAULT_LIMIT
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        number = float(text[: len(text) - len(unit)])
    except ValueError:
        number = -1.0
    if not 0 < number < float("inf"):
        raise InputError(
            f"{LIMIT_VARIABLE}={os.environ[LIMIT_VARIABLE]!r}: expected a size such as 500M or 10G"
        )
    return int(number * _UNITS[unit])
