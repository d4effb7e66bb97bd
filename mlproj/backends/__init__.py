"""Backends: where a prepared run executes. The local machine for now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlproj.errors import InputError


def load_backend_config(value: str | None) -> dict[str, Any] | None:
    """`-c/--backend-config`: JSON text, or a `.json` / `.yaml` / `.yml` file holding a mapping."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--backend-config: malformed JSON: {exc.msg} (column {exc.colno})") from None
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise InputError(
                f"--backend-config {text}: no such file (expected JSON text or a .json/.yaml file)"
            )
        if path.suffix.lower() in (".yaml", ".yml"):
            from mlproj.yamlio import load_yaml_file

            data = load_yaml_file(path)
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"--backend-config {path}: malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"--backend-config: expected a mapping of settings, got {type(data).__name__}")
    return data
