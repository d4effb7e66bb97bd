"""Schedules fire (design.md §10): while `mlproj serve` runs, each active schedule's latest tick is
fired once — the store's primary key on (schedule, tick) lets one process take it, however many
servers look and however often they restart — and a tick missed while nothing ran is not made up.
Each fire records the run it started, or why it could not start one.
"""

from __future__ import annotations

import threading
import time

from mlproj.errors import MlprojError
from mlproj.publish.cron import latest_tick
from mlproj.runs.catalog import ACTIVE, ConflictError, Fire

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable

    from mlproj.home import Home
    from mlproj.runs.catalog import Schedule
    from mlproj.runs.store import Store

PERIOD = 0.5  # seconds between two looks at the schedules
MAX_LATE = 30.0  # a tick found later than this (the server was down) is missed, not made up


def due(schedule: Schedule, now: float, since: float | None = None) -> float | None:
    """The tick of `schedule` to fire now, if any: its latest, if not fired yet, and either after the
    previous look of a server that has been running (`since`: however long that look took), or not
    older than a server just started may make up (older ones were missed while none ran)."""
    tick = latest_tick(schedule.cron, schedule.every_s, schedule.created_at, now)
    if tick is None or (schedule.last_tick is not None and tick <= schedule.last_tick):
        return None
    if since is not None and tick > since:
        return tick
    late = min(MAX_LATE, max(PERIOD * 2, (schedule.every_s or 60.0) / 2))
    return tick if now - tick <= late else None


def fire(store: Store, schedule: Schedule, tick: float, *, manual: bool = False) -> Fire | None:
    """Take the tick and start its run (detached); None when another process took the tick."""
    catalog = store.catalog()
    if not catalog.claim_tick(schedule.name, tick, advance=not manual):
        return None
    from mlproj.publish import submit_endpoint, submit_published

    run_id = error = None
    try:
        if schedule.endpoint is not None:
            record = submit_endpoint(
                store,
                schedule.endpoint,
                parameters=schedule.parameters,
                experiment=schedule.experiment,
                schedule=schedule.name,
            )
        else:
            record = submit_published(
                store,
                schedule.pipeline_id or "",
                parameters=schedule.parameters,
                experiment=schedule.experiment,
                schedule=schedule.name,
            )
        run_id = record.run_id
    except MlprojError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a fire records why it failed, whatever it was
        error = f"{type(exc).__name__}: {exc}"
    catalog.fired(schedule.name, tick, run_id=run_id, error=error)
    return Fire(schedule.name, tick, time.time(), run_id, error)


def trigger(store: Store, name: str) -> Fire:
    """Fire a schedule now, outside its ticks (`mlproj schedules trigger`)."""
    schedule = store.catalog().schedule(name)
    if schedule.status != ACTIVE:
        raise ConflictError(f"schedule {name!r} is disabled")
    now = time.time()
    for _ in range(100):  # a tick is a time: two triggers within one clock step get their own
        fired = fire(store, schedule, now, manual=True)
        if fired is not None:
            return fired
        now += 1e-3
    raise MlprojError(f"schedule {name!r}: could not take a tick to trigger")


def look(store: Store, now: float | None = None, since: float | None = None) -> list[Fire]:
    """Fire what is due among the active schedules (`since`: when the previous look began)."""
    now = time.time() if now is None else now
    fired = []
    for schedule in store.catalog().schedules(active_only=True):
        tick = due(schedule, now, since)
        if tick is not None:
            found = fire(store, schedule, tick)
            if found is not None:
                fired.append(found)
    return fired


class Ticker:
    """A thread that looks at the schedules every PERIOD seconds until `stop()`."""

    def __init__(self, home: Home, on_error: Callable[[str], None]) -> None:
        self.home = home
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlproj-schedules", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from mlproj.runs.store import Store

        store = None
        since = None  # the first look may make up only what is barely late
        while not self._stop.is_set():
            began = time.time()
            try:
                store = store or Store.open(self.home)
                look(store, began, since)
                since = began
            except Exception as exc:  # noqa: BLE001 - said, and tried again: the ticker must not die
                self.on_error(f"schedules: {exc}")
            self._stop.wait(PERIOD)
        if store is not None:
            store.close()
