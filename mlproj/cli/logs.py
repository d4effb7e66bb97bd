"""`mlproj logs RUN_ID [--step NAME] [-f] [--json]`: a run's combined stdout and stderr; a pipeline's
followed with its steps' output, each line after its step's name; with --json, one JSON object per line
(design.md §12)."""

from __future__ import annotations

from mlproj.cli.common import find, open_store
from mlproj.runs.status import RunKind

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from collections.abc import Callable

    from mlproj.ui.console import Console


def logs(app: Console, *, run_id: str, step: str | None, follow: bool) -> int:
    from mlproj.errors import InputError
    from mlproj.execution.control import follow as follow_log

    store = open_store()
    record = find(store, run_id)
    write = app.out.bytes()
    if step is not None:
        if record.kind is not RunKind.PIPELINE:
            raise InputError(f"--step {step}: run {record.run_id} is a {record.kind} run, not a pipeline")
        attempts = [s for s in store.steps_of(record.run_id) if s.step == step]
        if not attempts:
            names = sorted({s.step or "" for s in store.steps_of(record.run_id)})
            raise InputError(
                f"--step {step}: pipeline run {record.run_id} has no such step ({', '.join(names)})"
            )
        record = attempts[-1]
    shown = record  # what the lines are said to be from: the step asked for, even when reused
    if record.reused_from:  # a reused step, named by --step or by its own run ID
        name = record.step or record.run_id
        said = f"mlproj: step {name} was reused from run {record.reused_from}; its log follows"
        if app.as_json:  # stdout holds JSON lines only
            app.note(said)
        else:
            write(f"{said}\n".encode())
        record = store.get(record.reused_from)
    interleave = follow and record.kind is RunKind.PIPELINE  # its events, and its steps' output
    sink = _json_lines(app, shown.run_id, shown.step) if app.as_json else None
    follow_log(
        store, record.run_id, write, follow=follow and not record.is_final, steps=interleave, lines=sink
    )
    return 0


def _json_lines(app: Console, run_id: str, own_step: str | None) -> Callable[[str | None, bytes], None]:
    """One JSON object per line: the run, the step it comes from (None: the run's own log), the line,
    and `seen_at`: when mlproj read it (logs keep no time per line: a line followed as it comes is
    seen within a fraction of a second of being written; one already there, when it is read)."""
    import json
    import time

    from mlproj.runs.record import iso_utc

    stream = app.out.stream

    def sink(step: str | None, line: bytes) -> None:
        text = line.decode("utf-8", "replace").removesuffix("\r")
        document = {"run_id": run_id, "step": step or own_step, "line": text, "seen_at": iso_utc(time.time())}
        stream.write(json.dumps(document) + "\n")
        stream.flush()

    return sink
