"""Settings from files (design.md §12): `mlproj.toml` (or `[tool.mlproj]` in `pyproject.toml`) in the
project's folder or the current folder, then `MLPROJ_HOME/config.toml` for the user. A flag and an
environment variable come first; the caller asks for a key only when neither gave it.

Files are read only when they exist (TOML's parser is imported then, not before).
"""

from __future__ import annotations

import os
import sys

from mlproj.errors import InputError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

# The settings read so far (design.md §12 lists the others; they come with `mlproj config`): anything
# else is refused, not silently ignored.
KEYS = ("tracking_uri",)


def setting(key: str, *, folders: tuple[str | os.PathLike[str], ...], home: str) -> tuple[Any, str] | None:
    """The value of `key` and the file it came from: the first of `folders`' files that sets it (the
    project's, then the current folder's), then the user's file; None when none does."""
    seen: set[str] = set()
    for folder in folders:
        for path, table in _candidates(os.fspath(folder)):
            if path in seen:
                continue
            seen.add(path)
            values = _read(path, table)
            if values is not None and key in values:
                return values[key], path
    user = os.path.join(home, "config.toml")
    values = _read(user, None)
    if values is not None and key in values:
        return values[key], user
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
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        where = f"{table}." if table else ""
        raise InputError(f"{path}: {where}{unknown[0]}: unknown setting (expected one of: {', '.join(KEYS)})")
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
