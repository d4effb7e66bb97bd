"""`mlproj run pipeline.yml --set jobs.train.inputs.lr=0.1`: any key of the document set before it is
read, as `az ml job create --set` does."""

from __future__ import annotations

from pathlib import Path

from mlproj.errors import InputError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=VALUE` → (["a", "b", "c"], the value): JSON where it reads as JSON (`0.1`, `true`,
    `{"type": "uri_folder"}`), a YAML flow mapping or list (`{type: uri_folder, path: ./d}`), else the
    text itself (`yes`, `007`, `12:30` stay text), as `az ml job create --set` reads it."""
    import json

    key, equals, raw = text.partition("=")
    parts = [part.strip() for part in key.split(".")]
    if not equals or not all(parts):
        raise InputError(f"--set {text}: expected KEY.PATH=VALUE, such as jobs.train.inputs.lr=0.1")
    try:
        return parts, json.loads(raw)
    except ValueError:
        pass
    if raw.strip()[:1] in ("{", "["):
        import yaml

        try:
            return parts, yaml.safe_load(raw)
        except yaml.YAMLError:
            pass
    return parts, raw


def apply_overrides(data: Any, overrides: Sequence[str], file: Path) -> Any:
    """The document with every `--set` applied in order; a key path through something that is not a
    mapping is an input error naming it."""
    import copy

    if not isinstance(data, dict):
        return data
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise InputError(f"--set {text}: {file}: {where} is a {type(child).__name__}, not a mapping")
            node = child
        node[parts[-1]] = value
    return data
