"""What the commands share: the store and finding a run in it."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store


def open_store(*, reading: bool = True) -> Store:
    """The run store. A command that reads runs first sends the MLflow ends that wait for their
    tracking store (design.md §8): any run's, not only the ones it shows (a pipeline's steps too)."""
    from mlproj.home import Home
    from mlproj.runs.store import Store

    store = Store.open(Home.from_env())
    if reading and store.has_tracking_pending():
        from mlproj.tracking.runs import send_pending

        send_pending(store)
    return store


def find(store: Store, run_id: str) -> RunRecord:
    """The run of an ID or a unique prefix, its status brought up to date (design.md §3)."""
    from mlproj.execution.reconcile import find_run

    return find_run(store, run_id)
