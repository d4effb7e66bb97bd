"""Find a Python interpreter of a requested version among those already on the machine.

Looked up, in order: the interpreter running mlproj, `pythonX.Y` on PATH, pyenv's versions, and uv's
own discovery (with downloads off). Nothing is downloaded: a version that is not there is an input
error naming it and listing what is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlproj import process
from mlproj.errors import InputError

_PROBE = "import sys; print('.'.join(map(str, sys.version_info[:3])))"


def version_matches(actual: str, requested: str) -> bool:
    """`3.11.7` matches `3`, `3.11` and `3.11.7`."""
    return actual.split(".")[: len(requested.split("."))] == requested.split(".")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def probe(executable: Path) -> str | None:
    """The full version of an interpreter, or None when it does not run."""
    out = process.run_quiet([str(executable), "-c", _PROBE], timeout=30)
    return out.strip() if out else None


def _pyenv_versions() -> list[tuple[str, Path]]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    if root.is_dir():
        for entry in root.iterdir():
            exe = entry / "bin" / "python"
            if exe.exists() and entry.name[:1].isdigit():
                found.append((entry.name, exe))
    return found


def _path_versions() -> list[tuple[str, Path]]:
    found = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or "shims" in Path(folder).parts:  # pyenv shims fail for versions not selected
            continue
        try:
            names = [entry.name for entry in Path(folder).iterdir()]
        except OSError:
            continue
        for name in names:
            suffix = name[len("python") :]
            if name.startswith("python3.") and suffix.replace(".", "").isdigit():
                found.append((suffix, Path(folder) / name))
    return found


def _uv_find(version: str) -> Path | None:
    from mlproj.envs.tools import uv_binary

    out = process.run_quiet(
        [str(uv_binary()), "python", "find", version, "--no-python-downloads", "--no-project"], timeout=60
    )
    return Path(out.strip()) if out and out.strip() else None


def find_python(version: str | None) -> Path:
    """An interpreter whose version matches `version` (None: the one running mlproj)."""
    current = ".".join(str(part) for part in sys.version_info[:3])
    if version is None or version_matches(current, version):
        return Path(sys.executable)
    candidates = sorted(
        (
            c
            for c in _pyenv_versions() + _path_versions()
            if version_matches(c[0], version) or version_matches(version, c[0])
        ),
        key=lambda c: _version_key(c[0]),
        reverse=True,
    )
    for _name, exe in candidates:
        actual = probe(exe)
        if actual and version_matches(actual, version):
            return exe
    found = _uv_find(version)
    if found is not None:
        actual = probe(found)
        if actual and version_matches(actual, version):
            return found
    names = {current, *(name for name, _ in _pyenv_versions() + _path_versions())}
    shortest = [n for n in names if not any(other.startswith(n + ".") for other in names)]
    available = sorted(shortest, key=_version_key)
    raise InputError(
        f"Python {version} is not available on this machine (found: {', '.join(available)}); "
        f"install it (for example with pyenv or `uv python install {version}`) and run again"
    )
