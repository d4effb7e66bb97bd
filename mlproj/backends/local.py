"""`local`: this machine. A workload runs as a process tree in a session (and a cgroup) of its own, or, for
an environment that is an image, in a container through the Docker Engine API."""

from __future__ import annotations

import os

from mlproj import process
from mlproj.backends.base import Backend, Launch
from mlproj.backends.workload import Workload
from mlproj.proctree import RunProcesses, join_cgroup

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from mlproj.runs.record import RunRecord


class LocalBackend(Backend):
    name = "local"
    runs_containers = True

    def launch(self, launch: Launch) -> Workload:
        if launch.container is not None:
            from mlproj.backends.containers import ContainerWorkload

            return ContainerWorkload.start(launch)
        return ProcessWorkload.start(launch.record.run_id, process.spawn(launch.process), launch.process)

    def cancel_job(self, record: RunRecord, grace: float) -> None:  # noqa: ARG002 - the Backend interface's signature
        """A lost run's processes are ended by its cgroup or process group; a container is removed."""
        from mlproj.envs import get_manager
        from mlproj.runs.request import RunRequest

        request = record.request
        if not isinstance(request, RunRequest):
            return

        if get_manager(request.env_manager).in_container:
            from mlproj.backends.containers import remove_containers

            remove_containers(record.run_id)


class ProcessWorkload(Workload):
    """A local process tree: its main process, and everything the run's cgroup (or its process group,
    descendants and environment marker) says is the run's (see mlproj.proctree)."""

    def __init__(self, proc: process.Child, processes: RunProcesses) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._waiter = process.Waiter(proc)
        self.processes = processes

    @classmethod
    def start(cls, run_id: str, proc: process.Child, request: process.ExecRequest) -> ProcessWorkload:
        """`proc` just started by `request`: in its cgroup (it moved itself in before running anything; we
        move it too, in case it could not), or followed by its process group if there is none."""
        cgroup = request.cgroup
        if cgroup is not None and not join_cgroup(cgroup, proc.pid):
            cgroup = None
        leader = process.Proc(proc.pid, process.identity(proc.pid) or "")
        supervisor = os.getpid() if request.adopts else None
        return cls(proc, RunProcesses(run_id, cgroup=cgroup, leader=leader, held=True, supervisor=supervisor))

    def wait(self, timeout: float) -> int | None:
        return self._waiter.wait(timeout)

    def signal(self, sig: int) -> None:
        self.processes.signal(sig)

    def alive(self) -> bool:
        return self.processes.alive()

    def release(self) -> None:
        self._waiter.close()
