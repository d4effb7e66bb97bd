"""What a project's environment must contain: `python_env.yaml` or `conda.yaml`, read the MLflow way.

The files are named by `python_env:` / `conda_env:` in MLproject, or found beside it under their
default names (`python_env.yaml` first, then `conda.yaml`, as MLflow looks). `-r` and `-c` lines are
expanded against the folder of the file that holds them, so the fingerprint covers their content.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlproj.errors import SpecError
from mlproj.runs.envspec import EnvSpec
from mlproj.spec import Project
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CONDA_ENV_FILE", "LOCK_FILE", "PYTHON_ENV_FILE", "EnvSpec", "find_env_file", "load_env_spec"]

PYTHON_ENV_FILE = "python_env.yaml"
CONDA_ENV_FILE = "conda.yaml"
LOCK_FILE = "uv.lock"
# python=3.11, python==3.11.*, python=3.11.7=h955ad1f_0 (the form `conda env export` writes)
_CONDA_PYTHON = re.compile(r"^python\s*==?\s*([0-9]+(?:\.[0-9]+){0,2})(?:\.\*)?(?:=[A-Za-z0-9_.]+)?$")
_VERSION = re.compile(r"^[0-9]+(?:\.[0-9]+){0,2}$")


@dataclass(frozen=True)
class _Requirements:
    lines: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)


def find_env_file(project: Project) -> tuple[str, Path] | None:
    """("python" | "conda", path) of the project's environment file, or None when it has none."""
    directory = project.directory
    for kind, named in (("python", project.python_env), ("conda", project.conda_env)):
        if named:
            path = (directory / named).resolve()
            if not path.is_file():
                raise SpecError(project.spec_file or directory, f"{kind}_env", f"no such file: {path}")
            return kind, path
    for kind, name in (("python", PYTHON_ENV_FILE), ("conda", CONDA_ENV_FILE)):
        if (directory / name).is_file():
            return kind, directory / name
    return None


def load_env_spec(project: Project) -> EnvSpec:
    """The project's environment, from its environment file (or an empty one when it has none)."""
    found = find_env_file(project)
    lock = project.directory / LOCK_FILE
    lock_text = lock.read_text(encoding="utf-8") if lock.is_file() else None
    if found is None:
        return EnvSpec(kind="none", project_dir=str(project.directory), lock_text=lock_text)
    kind, path = found
    if kind == "python":
        return _load_python_env(project, path, lock_text)
    return _load_conda_env(project, path)


def _load_python_env(project: Project, path: Path, lock_text: str | None) -> EnvSpec:
    from mlproj.yamlio import load_yaml_file

    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise SpecError(path, None, "expected a mapping with python, build_dependencies and dependencies")
    unknown = sorted(set(data) - {"python", "build_dependencies", "dependencies"})
    if unknown:
        raise SpecError(path, unknown[0], "unknown key (expected python, build_dependencies, dependencies)")
    python = _python_version(path, "python", data.get("python"))
    build = _string_list(path, "build_dependencies", data.get("build_dependencies"))
    deps = _expand(path, "dependencies", _string_list(path, "dependencies", data.get("dependencies")))
    return EnvSpec(
        kind="python",
        project_dir=str(project.directory),
        source_file=str(path),
        python=python,
        build_dependencies=tuple(build),
        dependencies=tuple(deps.lines),
        constraints=tuple(deps.constraints),
        lock_text=lock_text,
    )


def _load_conda_env(project: Project, path: Path) -> EnvSpec:
    from mlproj.yamlio import load_yaml_file

    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise SpecError(path, None, "expected a mapping with channels and dependencies")
    entries = data.get("dependencies") or []
    if not isinstance(entries, list):
        raise SpecError(path, "dependencies", "expected a list")
    python = None
    pip_lines: list[str] = []
    for index, entry in enumerate(entries):
        key = f"dependencies[{index}]"
        if isinstance(entry, dict) and set(entry) == {"pip"}:
            pip_lines.extend(_string_list(path, f"{key}.pip", entry["pip"]))
        elif isinstance(entry, str):
            name = re.split(r"[\s=<>!~]", entry.strip(), maxsplit=1)[0]
            if name == "python":
                match = _CONDA_PYTHON.match(entry.strip())
                if match is None and entry.strip() != "python":
                    raise SpecError(path, key, f"expected python=X.Y or python=X.Y.Z, got {entry!r}")
                python = match.group(1) if match else None
        else:
            raise SpecError(path, key, "expected a package name or a {pip: [...]} list")
    deps = _expand(path, "dependencies.pip", pip_lines)
    return EnvSpec(
        kind="conda",
        project_dir=str(project.directory),
        source_file=str(path),
        python=python,
        dependencies=tuple(deps.lines),
        constraints=tuple(deps.constraints),
        conda_text=path.read_text(encoding="utf-8"),
    )


def _python_version(path: Path, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads `python: 3.10` as the number 3.1: take the version as written in the file.
        match = re.search(rf"^\s*{key}\s*:\s*([0-9][0-9.]*)\s*(?:#.*)?$", path.read_text(), re.MULTILINE)
        value = match.group(1) if match else str(value)
    if not isinstance(value, str):
        raise SpecError(path, key, f"expected a Python version such as 3.11 or 3.11.7, got {value!r}")
    text = value.strip()
    if not _VERSION.match(text):
        raise SpecError(path, key, f"expected a Python version such as 3.11 or 3.11.7, got {text!r}")
    return text


def _string_list(path: Path, key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, (str, int, float)) for item in value):
        raise SpecError(path, key, "expected a list of requirement strings")
    return [str(item).strip() for item in value if str(item).strip()]


def _expand(path: Path, key: str, lines: list[str], seen: frozenset[Path] = frozenset()) -> _Requirements:
    """Expand `-r FILE` (recursively) and collect `-c FILE` lines, relative to the including file."""
    result = _Requirements()
    for line in lines:
        option, target = _split_option(line)
        if option is None:
            result.lines.append(line)
            continue
        included = (path.parent / target).resolve()
        if included in seen:
            raise SpecError(path, key, f"{line!r}: requirements include themselves")
        if not included.is_file():
            raise SpecError(path, key, f"{line!r}: no such file {included}")
        text = included.read_text(encoding="utf-8")
        inner = [ln.split(" #")[0].strip() for ln in text.splitlines()]
        inner = [ln for ln in inner if ln and not ln.startswith("#")]
        nested = _expand(included, f"{key} ({line})", inner, seen | {included})
        if option == "-r":
            result.lines.extend(nested.lines)
            result.constraints.extend(nested.constraints)
        else:
            result.constraints.extend(nested.lines + nested.constraints)
    return result


def _split_option(line: str) -> tuple[str | None, str]:
    for long, short in (("--requirement", "-r"), ("--constraint", "-c")):
        for prefix in (long + "=", long + " ", short + " ", short):
            if line.startswith(prefix) and line[len(prefix) :].strip():
                return short, line[len(prefix) :].strip()
    return None, line
