"""The one status vocabulary (design.md §3) and the transitions it allows, in one place."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    RUNNING = "Running"
    CANCEL_REQUESTED = "CancelRequested"
    FINISHED = "Finished"
    FAILED = "Failed"
    CANCELED = "Canceled"
    SKIPPED = "Skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL

    @classmethod
    def parse(cls, text: str) -> RunStatus:
        """A status from its name, case-insensitively; a ValueError lists the names."""
        for status in cls:
            if status.value.lower() == text.strip().lower():
                return status
        names = ", ".join(s.value for s in cls)
        raise ValueError(f"unknown status {text!r} (expected one of: {names})")


class RunKind(str, Enum):
    """What a run is: a project, a pipeline, or one step of a pipeline."""

    PROJECT = "project"
    PIPELINE = "pipeline"
    STEP = "step"

    def __str__(self) -> str:
        return self.value


FINAL = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.SKIPPED})

_ENDINGS = {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELED}
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.NOT_STARTED: frozenset(
        {RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED}
        | _ENDINGS
        | {RunStatus.SKIPPED}
    ),
    RunStatus.QUEUED: frozenset(
        {RunStatus.PREPARING, RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED, RunStatus.SKIPPED} | _ENDINGS
    ),
    # Preparing → Queued: the environment is ready and the job waits for a cluster's scheduler.
    RunStatus.PREPARING: frozenset(
        {RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED} | _ENDINGS
    ),
    RunStatus.RUNNING: frozenset({RunStatus.CANCEL_REQUESTED} | _ENDINGS),
    # A run asked to stop may still end on its own first: then it is recorded as it ended.
    RunStatus.CANCEL_REQUESTED: frozenset(_ENDINGS),
}
for _final in FINAL:
    TRANSITIONS[_final] = frozenset()


# How MLflow names a final status (its RunStatus): a tracked run ends with this (design.md §8).
MLFLOW_STATUS = {
    RunStatus.FINISHED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.CANCELED: "KILLED",
    RunStatus.SKIPPED: "KILLED",
}


def predecessors(target: RunStatus) -> frozenset[RunStatus]:
    """The statuses from which `target` may be reached."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)
