"""Entry point of a detached supervisor: `python -m mlproj.submit.detached RUN_ID`.

It runs in a session of its own with no terminal; its own stderr goes to `supervisor.log` in the run's
folder. Should it fail unexpectedly, the run is recorded `Failed` with the reason, never left running.
"""

from __future__ import annotations

import sys
import time
import traceback

from mlproj.execution.reconcile import end_processes
from mlproj.execution.supervisor import supervise
from mlproj.home import Home
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store


def main(argv: list[str]) -> int:
    run_id = argv[0]
    home = Home.from_env()
    try:
        store = Store.open(home)
        try:
            if store.get(run_id).kind is RunKind.PIPELINE:
                from mlproj.pipelines.scheduler import PipelineSupervisor

                record = PipelineSupervisor(store, run_id, dedicated=True).run()
            else:
                record = supervise(home, run_id, dedicated=True)
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - the boundary: the run is recorded Failed, never left running
        traceback.print_exc()
        store = Store.open(home)
        error = f"the supervisor failed: {exc}"
        for step in store.steps_of(run_id):
            if not step.is_final:
                end_processes(step)
                store.transition(step.run_id, RunStatus.FAILED, error=error, ended_at=time.time())
        store.transition(run_id, RunStatus.FAILED, error=error, ended_at=time.time())
        end_processes(store.get(run_id))
        return 1
    return 0 if record.status is RunStatus.FINISHED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
