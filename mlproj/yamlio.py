"""YAML reading with the C loader when it is there, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlproj.errors import SpecError


def load_yaml_file(path: Path) -> Any:
    """Parse one YAML file; any problem is a `SpecError` naming the file (and the line YAML reports)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(path, None, f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(path, None, "not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, C or Python
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise SpecError(path, None, f"malformed YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(path, None, f"malformed YAML: {exc}") from None
