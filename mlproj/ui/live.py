"""Live views: `status --watch` refreshes the run until it ends."""

from __future__ import annotations

import time

from mlproj.runs.store import Store


def watch_status(store: Store, run_id: str, interval: float) -> None:
    from rich.live import Live
    from rich.text import Text as RichText

    from mlproj.runs.control import reconcile
    from mlproj.ui.console import console
    from mlproj.ui.text import Text, status_lines

    plain = Text()
    plain.color = False

    def render() -> RichText:
        record = reconcile(store, store.get(run_id))
        return RichText("\n".join(status_lines(plain, record)))

    with Live(render(), console=console(), auto_refresh=False, transient=True) as live:
        while not store.get(run_id).is_final:
            time.sleep(interval)
            live.update(render(), refresh=True)
