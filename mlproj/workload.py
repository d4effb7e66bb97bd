"""What a run executes, as the supervisor sees it: something to wait for, signal, and release.

Most environments run the command as a local process tree (`ProcessWorkload`); an environment may
run it elsewhere (a container) by returning its own `Workload` from `EnvManager.launch`. A workload is
a target of the stop ladder (`signal`, `alive`): after its main process has exited, whatever it left
running is stopped the same way.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from mlproj import process
from mlproj.proctree import RunProcesses, join_cgroup
from mlproj.runs.status import RunStatus

if TYPE_CHECKING:
    import subprocess


class Workload(ABC):
    pid: int | None = None  # the main local process, if there is one
    job_id: str | None = None  # a cluster's job, if there is one

    @property
    def started(self) -> bool:
        """False while a cluster's scheduler has not started it yet."""
        return True

    @property
    def native_state(self) -> str | None:
        """The cluster's own name for the job's state, if there is a cluster."""
        return None

    @property
    def started_at(self) -> float | None:
        """When a cluster says the job started (None: when the supervisor saw it start)."""
        return None

    @property
    def ended_at(self) -> float | None:
        """When a cluster says the job ended (None: when the supervisor saw it end)."""
        return None

    def end(self) -> tuple[RunStatus, str | None] | None:
        """How it ended when its exit code alone does not say (canceled on a cluster, forgotten by
        it); None otherwise."""
        return None

    @abstractmethod
    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after `timeout` seconds (wakes at the exit)."""

    @abstractmethod
    def signal(self, sig: int) -> None:
        """Deliver a stop signal to everything the workload runs."""

    def alive(self) -> bool:
        """Whether anything of it still runs here (after the main process exited: what it left)."""
        return False

    def release(self) -> None:  # noqa: B027 - optional hook
        """Once everything has ended: release what it holds (a container, a cgroup)."""


class ProcessWorkload(Workload):
    """A local process tree: its main process, and everything the run's cgroup (or its process group,
    descendants and environment marker) says is the run's (see mlproj.proctree)."""

    def __init__(self, proc: subprocess.Popen[bytes], processes: RunProcesses) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._waiter = process.Waiter(proc)
        self.processes = processes

    @classmethod
    def start(
        cls, run_id: str, proc: subprocess.Popen[bytes], request: process.ExecRequest
    ) -> ProcessWorkload:
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
