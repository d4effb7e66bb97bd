"""`local`: this machine. The environment's own launcher starts the workload (a process tree in its
own session, or a container for docker)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlproj.backends.base import Backend

if TYPE_CHECKING:
    from mlproj.envs.base import EnvManager
    from mlproj.process import ExecRequest
    from mlproj.runs.record import RunRecord
    from mlproj.workload import Workload


class LocalBackend(Backend):
    name = "local"
    runs_here = True

    def launch(
        self, record: RunRecord, request: ExecRequest, run_request: Mapping[str, Any], manager: EnvManager
    ) -> Workload:
        return manager.launch(record.run_id, request, run_request)
