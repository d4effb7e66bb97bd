"""`mlproj gc [--older-than DAYS] [--status S] [--dry-run]`: delete finished runs nothing kept needs,
and say what it freed (mlproj.runs.gc says what is kept and why)."""

from __future__ import annotations

from mlproj.cli.common import open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.runs.status import RunStatus
    from mlproj.ui.console import Console


def gc(app: Console, *, older_than: float | None, statuses: str | None, dry_run: bool) -> int:
    import time

    from mlproj.errors import InputError
    from mlproj.execution.reconcile import reconcile

    if older_than is None and statuses is None:
        raise InputError("gc: say which runs to delete: --older-than DAYS (0: any age), --status, or both")
    wanted = _statuses(statuses or "")
    if statuses is not None and not wanted:  # `--status "$S"` with S empty must not mean every status
        raise InputError(f"--status {statuses!r}: expected Finished, Failed or Canceled (comma-separated)")
    store = open_store(reading=False)
    for unfinished in store.unfinished():  # a run whose supervisor died ends now, or is not a candidate
        reconcile(store, unfinished)
    collector = store.collector()
    garbage = collector.plan(
        before=None if older_than is None else time.time() - older_than * 86400, statuses=wanted
    )
    if not dry_run:
        collector.apply(garbage)
    if app.as_json:
        app.json(
            {
                "dry_run": dry_run,
                "deleted": [record.run_id for record in garbage.delete],
                "steps": garbage.steps,
                "freed_bytes": garbage.freed,
                "kept": [{"run_id": run_id, "why": why} for run_id, why in garbage.kept.items()],
            }
        )
        return 0
    from mlproj.cli.render import size_text

    for run_id, why in garbage.kept.items():
        app.print(f"kept {run_id[:12]}: {why}")
    for record in garbage.delete if dry_run else []:
        app.print(f"would delete {record.run_id[:12]}  {record.status.value}  {record.display_name}")
    count = len(garbage.delete)
    if not count:
        app.print("Nothing to delete.")
    elif dry_run:
        app.print(f"Would delete {count} runs ({garbage.steps} steps), freeing {size_text(garbage.freed)}.")
    else:
        app.print(f"Deleted {count} runs ({garbage.steps} steps), freed {size_text(garbage.freed)}.")
    return 0


def _statuses(text: str) -> list[RunStatus]:
    from mlproj.errors import InputError
    from mlproj.runs.status import RunStatus

    wanted = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        try:
            status = RunStatus.parse(name)
        except ValueError as exc:
            raise InputError(f"--status: {exc}") from None
        if not status.is_final:
            raise InputError(
                f"--status {status.value}: gc deletes only runs that ended (Finished, Failed, Canceled)"
            )
        wanted.append(status)
    return wanted
