"""How a final run maps to an exit code (design.md §4), the same for `run`, `wait` and the API."""

from __future__ import annotations

from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_TIMEOUT = 124
EXIT_CANCELED = 130
TIMED_OUT = "timed out after"  # how the error of a run ended by its timeout begins


def exit_code_for(record: RunRecord) -> int:
    if record.status is RunStatus.FINISHED:
        return EXIT_OK
    if record.status is RunStatus.CANCELED:
        return EXIT_TIMEOUT if (record.error or "").startswith(TIMED_OUT) else EXIT_CANCELED
    if (
        record.kind is RunKind.PROJECT
        and record.status is RunStatus.FAILED
        and record.exit_code is not None
        and 1 <= record.exit_code <= 125
        and record.started_at is not None
    ):
        return record.exit_code
    return EXIT_FAILED
