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
    """Parse one YAML file; any problem (a duplicate key included) is a `SpecError` naming the file and
    the line."""
    return load_yaml_with_lines(path)[0]


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[str, int]]:
    """Parse a YAML file and say on which line (1-based) each key path (`jobs.train.inputs`) starts.

    A key given twice in one mapping is an error naming the line of the second (YAML would silently
    keep the last one: an entry point or a pipeline job defined twice would lose the first)."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(_read(path))
    try:
        node = loader.get_single_node()
        if node is not None:
            lines: dict[str, int] = {}
            _index(path, node, "", lines, set())
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _malformed(path, exc) from None
    finally:
        loader.dispose()
    return data, (lines if node is not None else {})


def _index(file: Path, node: Any, prefix: str, lines: dict[str, int], seen_nodes: set[int]) -> None:
    import yaml

    if id(node) in seen_nodes:  # an alias of a node already read (and no endless loop on a cycle)
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            path = f"{prefix}.{key}" if prefix else key
            if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                continue  # a merge key: YAML's own way to combine mappings
            if key in seen:
                raise SpecError(
                    file, path, f"duplicate key {key!r} (first given on line {seen[key]})", line=line
                )
            seen[key] = line
            lines[path] = line
            _index(file, value_node, path, lines, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}[{index}]"
            lines[path] = item.start_mark.line + 1
            _index(file, item, path, lines, seen_nodes)
