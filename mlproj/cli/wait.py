"""`mlproj wait RUN_ID`: wait for the run to end and exit with the code `run` would have."""

from __future__ import annotations

from mlproj.cli.common import find, open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def wait(app: Console, *, run_id: str, timeout: float | None, show_output: bool) -> int:
    from mlproj.cli.render import summary_line
    from mlproj.execution import control
    from mlproj.runs.outcome import EXIT_TIMEOUT, exit_code_for

    store = open_store()
    record = find(store, run_id)
    if show_output:  # with --json, on stderr: stdout holds the document
        final = control.follow(store, record.run_id, app.output.bytes(), timeout=timeout)
    else:
        final = control.wait(store, record.run_id, timeout=timeout)
    if final is None:
        app.note(f"Run {record.run_id} is still {store.get(record.run_id).status} after {timeout:g} s")
        if app.as_json:
            from mlproj.runs.documents import run_document

            app.json(run_document(store, store.get(record.run_id)))
        return EXIT_TIMEOUT
    app.note(summary_line(app.err, final))
    if app.as_json:
        from mlproj.runs.documents import run_document

        app.json(run_document(store, final))
    return exit_code_for(final)
