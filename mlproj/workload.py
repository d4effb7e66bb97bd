"""What a run executes, as the supervisor sees it: something to wait for, signal, and clean up after.

Most environments run the command as a local process tree (`ProcessWorkload`); an environment may
run it elsewhere (a container) by returning its own `Workload` from `EnvManager.launch`.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from mlproj import process
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

    @abstractmethod
    def finish(self, first_signal: int | None, grace: float) -> None:
        """After the exit: end what is left (`first_signal`, SIGKILL after `grace`) and release it all."""


class ProcessWorkload(Workload):
    def __init__(self, run_id: str, proc: subprocess.Popen[bytes]) -> None:
        self.run_id = run_id
        self.proc = proc
        self.pid = proc.pid
        self._waiter = process.Waiter(proc)

    def wait(self, timeout: float) -> int | None:
        return self._waiter.wait(timeout)

    def signal(self, sig: int) -> None:
        process.signal_all(process.find_run_processes(self.run_id, self.proc.pid, self.proc.pid), sig)

    def finish(self, first_signal: int | None, grace: float) -> None:
        self._waiter.close()
        leftovers = process.find_run_processes(self.run_id, self.proc.pid)
        if leftovers:
            process.end_processes(
                leftovers, grace if first_signal else process.LEFTOVER_GRACE, first_signal or signal.SIGTERM
            )
