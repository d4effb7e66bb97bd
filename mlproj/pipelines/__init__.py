"""Pipelines: a YAML DAG of project and command steps (design.md §6).

What a command needs to tell a pipeline from a project is here, cheap to import: every `mlproj run`
asks it, and a project run must not pay for the pipeline modules.
"""

from __future__ import annotations

import re
from pathlib import Path


def is_pipeline_file(path: Path) -> bool:
    """A `.yml`/`.yaml` file whose top level says `type: pipeline` (read cheaply, without YAML)."""
    if path.suffix.lower() not in (".yml", ".yaml") or not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"^type\s*:\s*['\"]?pipeline['\"]?\s*(#.*)?$", text, re.MULTILINE) is not None


def names_pipeline(uri: str) -> bool:
    """Whether `uri` names a pipeline file: a local .yml/.yaml file with `type: pipeline`, or a Git URI
    whose #fragment is a .yml/.yaml file."""
    from mlproj.sources import is_git_uri

    base, _, fragment = uri.partition("#")
    if is_git_uri(base):
        return fragment.strip().lower().endswith((".yml", ".yaml"))
    return is_pipeline_file(Path(base).expanduser())
