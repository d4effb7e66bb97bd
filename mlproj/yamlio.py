"""YAML reading with the C loader when it is there, errors that name the file and line, and a cache.

The cache is what Python's own `.pyc` files are to source: importing PyYAML and parsing costs more than
the whole start-up budget of `mlproj run` (bench/startup.py), so what a file parsed to is kept under
`MLPROJ_HOME/cache/yaml` and used again while the file's text is exactly the same (the text is kept with
it and compared, so a stale entry can never be used). Only documents that JSON keeps exactly are cached
(strings, numbers, booleans, null, lists, string-keyed mappings); a date, a binary value or a number as
a key is parsed every time. The entries live in a fixed number of slots (a hash of the file's path), so
the cache never grows beyond them whatever is parsed; a slot holds the last file parsed into it.
"""

from __future__ import annotations

import os

from mlproj.errors import SpecError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

CACHE_SLOTS = 1024
_CACHE_VERSION = 1


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
    text = _read(path)
    slot = _cache_slot(path)
    cached = _cached(slot, str(path), text) if slot is not None else None
    if cached is not None:
        return cached
    data, lines = _parse(path, text)
    if slot is not None and _exact_in_json(data):
        _keep(slot, str(path), text, data, lines)
    return data, lines


def _parse(path: Path, text: str) -> tuple[Any, dict[str, int]]:
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
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


# --- the cache ----------------------------------------------------------------------------------------


def _cache_slot(path: Path) -> str | None:
    """The cache file for `path`, or None when there is no MLPROJ_HOME to keep it in."""
    from mlproj.home import Home

    try:
        home = Home.from_env()
    except OSError:  # no home folder, no working directory: no cache
        return None
    return f"{home.location}/cache/yaml/{_fnv1a(str(path)) % CACHE_SLOTS:04d}.json"


def _fnv1a(text: str) -> int:
    """A stable 32-bit hash of `text` (FNV-1a): the same slot in every process, unlike `hash`."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8", "surrogateescape"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def _cached(slot: str, path: str, text: str) -> tuple[Any, dict[str, int]] | None:
    import json

    try:
        with open(slot, encoding="utf-8") as file:
            entry = json.load(file)
    except (OSError, ValueError):  # none yet, or unreadable: parse the file
        return None
    if (
        not isinstance(entry, dict)
        or entry.get("version") != _CACHE_VERSION
        or entry.get("path") != path
        or entry.get("text") != text
        or not isinstance(entry.get("lines"), dict)
    ):
        return None
    return entry.get("data"), entry["lines"]


def _keep(slot: str, path: str, text: str, data: Any, lines: dict[str, int]) -> None:
    """Write the entry (atomically: another process may be reading the slot); a failure only means the
    file is parsed again next time."""
    import json

    entry = {"version": _CACHE_VERSION, "path": path, "text": text, "data": data, "lines": lines}
    temporary = f"{slot}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(slot), exist_ok=True)
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(entry, file, allow_nan=False)
        os.replace(temporary, slot)
    except (OSError, ValueError):
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _exact_in_json(value: Any) -> bool:
    """True when JSON gives `value` back exactly (same types, same keys)."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        import math

        return math.isfinite(value)
    if isinstance(value, list):
        return all(_exact_in_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _exact_in_json(item) for key, item in value.items())
    return False
