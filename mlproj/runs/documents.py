"""The JSON documents commands print (design.md §5): a run's record, with its steps for a pipeline."""

from __future__ import annotations

from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind
from mlproj.runs.store import Store

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any


def run_document(store: Store, record: RunRecord) -> dict[str, Any]:
    """`record.to_dict()`, plus `steps` (every step run, every attempt, oldest first) for a pipeline."""
    document = record.to_dict()
    if record.kind is RunKind.PIPELINE:
        document["steps"] = [step.to_dict() for step in store.steps_of(record.run_id)]
    return document
