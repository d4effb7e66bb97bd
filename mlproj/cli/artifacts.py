"""`mlproj artifacts RUN [--step S] [--download DEST]`: a run's outputs, listed with their sizes, or
copied to DEST."""

from __future__ import annotations

from mlproj.cli.common import find, open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def artifacts(app: Console, *, run_id: str, step: str | None, download: str | None) -> int:
    from pathlib import Path

    from mlproj.cli.render import size_text
    from mlproj.errors import InputError
    from mlproj.runs.artifacts import artifacts as listed
    from mlproj.runs.artifacts import copy

    store = open_store()
    record = find(store, run_id)
    found = listed(store, record, step)
    if download is not None:
        if not record.is_final:
            raise InputError(
                f"run {record.run_id} is still {record.status.value}: wait for it, then download"
            )
        destination = Path(download).expanduser().absolute()
        copied = copy(found, destination)
        if app.as_json:
            app.json(
                {
                    "run_id": record.run_id,
                    "destination": str(destination),
                    "files": len(found),
                    "bytes": copied,
                }
            )
        else:
            app.print(f"Copied {len(found)} files ({size_text(copied)}) to {destination}")
        return 0
    if app.as_json:
        app.json([artifact.to_dict() for artifact in found])
        return 0
    if not found:
        app.print(f"Run {record.run_id} has no outputs.")
        return 0
    from mlproj.cli.render import table_lines

    pipeline = any(artifact.step for artifact in found)
    headers = ["STEP", "OUTPUT", "FILE", "SIZE", "PATH"] if pipeline else ["FILE", "SIZE", "PATH"]
    rows = [
        [
            *([a.step, a.output] if pipeline else []),
            a.name,
            "link" if a.size is None else size_text(a.size),
            a.path,
        ]
        for a in found
    ]
    for line in table_lines(app.out, headers, rows):
        app.print(line)
    return 0
