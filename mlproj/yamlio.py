"""YAML reading with the C loader when it is there, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlproj.errors import SpecError


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(path, None, f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(path, None, "not UTF-8 text") from None


def _malformed(path: Path, exc: Exception) -> SpecError:
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        return SpecError(path, None, f"malformed YAML: {exc.problem or exc}", line=line)
    return SpecError(path, None, f"malformed YAML: {exc}")


def load_yaml_file(path: Path) -> Any:
    """Parse one YAML file; any problem is a `SpecError` naming the file (and the line YAML reports)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = _read(path)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, C or Python
    except yaml.YAMLError as exc:
        raise _malformed(path, exc) from None


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[str, int]]:
    """Parse a YAML file and say on which line (1-based) each key path (`jobs.train.inputs`) starts."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(_read(path))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _malformed(path, exc) from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _index(node, "", lines)
    return data, lines


def _index(node: Any, prefix: str, lines: dict[str, int]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[path] = key_node.start_mark.line + 1
            _index(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}[{index}]"
            lines[path] = item.start_mark.line + 1
            _index(item, path, lines)
