"""Step reuse (Azure ML's `allow_reuse`, DVC's stage cache): the key, the lookup, and why a step ran.

A step's key hashes its parts: its definition, the content of its code or project folder (or the Git
commit), each resolved parameter or input (files and folders it reads by their content, upstream
outputs included), and its environment. A step is reused when an earlier `Finished` step run had the
same key and its outputs still exist. Each part is kept on the step run, so that the next run can say
which part changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from mlproj.pipelines.model import is_file_output
from mlproj.runs.record import RunRecord
from mlproj.runs.store import Store
from mlproj.structs import dataclass

SHOWN_CHANGES = 3  # how many changed parts a reason names


@dataclass(frozen=True)
class Decision:
    key: str
    parts: Mapping[str, str]
    reuse: RunRecord | None  # the step run whose outputs are reused (the one that produced them)
    reason: str  # "reused from <run>" or "ran: <why>"


def make_key(parts: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()[:32]


def outputs_exist(outputs: Mapping[str, str], kinds: Mapping[str, str]) -> bool:
    """True when every declared output is where a run left it (a folder, or a written file)."""
    for name, kind in kinds.items():
        path = outputs.get(name)
        if path is None:
            return False
        if not (Path(path).is_file() if is_file_output(kind) else Path(path).is_dir()):
            return False
    return True


def decide(
    store: Store,
    parts: Mapping[str, str],
    output_kinds: Mapping[str, str],
    *,
    pipeline_uri: str,
    step: str,
    pipeline_run_id: str,
    refuse: str | None = None,
) -> Decision:
    """Reuse an earlier run of this step, or say why it runs. `refuse` is a reason reuse is off
    (`allow_reuse: false`, `--force-rerun`): the key is still computed and kept."""
    key = make_key(parts)
    if refuse is not None:
        return Decision(key, parts, None, f"ran: {refuse}")
    gone: RunRecord | None = None
    for producer in store.producers_with_key(key):  # runs that reused one share its outputs
        if outputs_exist(producer.outputs, output_kinds):
            return Decision(key, parts, producer, f"reused from {producer.run_id}")
        gone = gone or producer
    if gone is not None:
        return Decision(key, parts, None, f"ran: the outputs of {gone.run_id} are gone")
    previous = store.previous_step(pipeline_uri, step, exclude_parent=pipeline_run_id)
    return Decision(key, parts, None, f"ran: {changes(previous.reuse_parts if previous else None, parts)}")


def changes(before: Mapping[str, str] | None, after: Mapping[str, str]) -> str:
    """What differs between two sets of key parts, in words: `parameters.lr changed`."""
    if not before:
        return "no earlier run"
    names = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    if not names:
        return "the earlier run with the same key did not finish"
    shown = ", ".join(names[:SHOWN_CHANGES]) + (
        f" and {len(names) - SHOWN_CHANGES} more" if len(names) > SHOWN_CHANGES else ""
    )
    return f"{shown} changed"
