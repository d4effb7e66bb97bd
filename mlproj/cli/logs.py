"""`mlproj logs RUN_ID [--step NAME] [-f]`: a run's combined stdout and stderr."""

from __future__ import annotations

from mlproj.cli.common import find, open_store
from mlproj.runs.status import RunKind

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
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
    if record.reused_from:  # a reused step, named by --step or by its own run ID
        name = record.step or record.run_id
        write(f"mlproj: step {name} was reused from run {record.reused_from}; its log follows\n".encode())
        record = store.get(record.reused_from)
    follow_log(store, record.run_id, write, follow=follow and not record.is_final)
    return 0
