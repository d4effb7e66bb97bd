"""Live views: `status --watch` refreshes the run until it ends."""

from __future__ import annotations

import time

from mlproj.runs.status import RunKind
from mlproj.runs.store import Store


def watch_status(store: Store, run_id: str, interval: float) -> None:
    from rich.live import Live
    from rich.text import Text as RichText

    from mlproj.ui.console import rich_console as console

    def render() -> RichText:
        return RichText("\n".join(watch_lines(store, run_id)))

    with Live(render(), console=console(), auto_refresh=False, transient=True) as live:
        while not store.get(run_id).is_final:
            time.sleep(interval)
            live.update(render(), refresh=True)


def watch_lines(store: Store, run_id: str) -> list[str]:
    """What `status --watch` shows now: the run, and a pipeline's steps as they go."""
    from mlproj.cli.render import status_lines, steps_lines
    from mlproj.execution.reconcile import reconcile
    from mlproj.ui.console import Text

    plain = Text()
    plain.color = False
    record = reconcile(store, store.get(run_id))
    lines = status_lines(plain, record)
    if record.kind is RunKind.PIPELINE:
        lines += ["", *steps_lines(plain, store.steps_of(run_id))]
    return lines
