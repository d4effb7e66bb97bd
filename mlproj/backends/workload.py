"""What a backend starts, as the supervisor sees it: something to wait for, signal, and release.

A workload is a target of the stop ladder (`signal`, `alive`): once its main process has exited,
whatever it left running is stopped the same way. Clusters' jobs (`ClusterWorkload`) are polled for
their state; their backends also answer for a run whose supervisor is gone (`Backend.job_state`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from mlproj.proctree import RunProcesses
from mlproj.runs.status import RunStatus
from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from pathlib import Path

    from mlproj.runs.record import RunRecord


class Workload(ABC):
    pid: int | None = None  # the main local process, if there is one
    job_id: str | None = None  # a cluster's job, if there is one
    image_id: str | None = None  # the image a container runs (MLflow tags a run with it)

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


@dataclass(frozen=True)
class JobState:
    """What a cluster says of a job, in mlproj's words and its own."""

    status: RunStatus  # Queued, Running, or a final status
    native: str  # the cluster's own state name (PENDING, RUNNING, COMPLETED…)
    exit_code: int | None = None
    reason: str | None = None  # why it failed or was canceled, when the cluster says
    started_at: float | None = None  # the cluster's own times (epoch seconds), when it gives them
    ended_at: float | None = None

    @property
    def started(self) -> bool:
        return self.status is not RunStatus.QUEUED


class ClusterWorkload(Workload):
    """A job on a cluster, polled (at most every `poll` seconds) for its state."""

    first_polls = (0.05, 0.1, 0.2)  # start fast: short jobs end within a second

    def __init__(self, described: str, record: RunRecord, job_id: str, poll: float = 0.5) -> None:
        self.described = described  # how the backend names the job: "slurm job 12"
        self.record = record
        self.job_id: str | None = job_id
        self.poll = poll
        self.state: JobState | None = None
        self._polls = 0
        self._next = 0.0
        self.stopped_by_us = False

    @abstractmethod
    def fetch_state(self) -> JobState | None:
        """The job's current state (None: the cluster does not know it)."""

    def refresh(self) -> JobState | None:
        now = time.monotonic()
        if now >= self._next:
            self.state = self.fetch_state()
            delay = self.first_polls[self._polls] if self._polls < len(self.first_polls) else self.poll
            self._polls += 1
            self._next = now + delay
        return self.state

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.refresh()
            if state is None:
                return 1  # the cluster forgot the job: `end` says so
            if state.status.is_final:
                return self.returncode(state)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, max(0.0, self._next - time.monotonic())))

    @staticmethod
    def returncode(state: JobState) -> int:
        """As Popen reports it: negative for a signal."""
        if state.exit_code is not None:
            return state.exit_code if state.exit_code <= 128 else -(state.exit_code - 128)
        return 0 if state.status is RunStatus.FINISHED else 1

    @property
    def started(self) -> bool:
        state = self.refresh()
        return state is None or state.started

    @property
    def native_state(self) -> str | None:
        return self.state.native if self.state is not None else None

    @property
    def started_at(self) -> float | None:
        return self.state.started_at if self.state is not None else None

    @property
    def ended_at(self) -> float | None:
        state = self.state
        return state.ended_at if state is not None and state.status.is_final else None

    def end(self) -> tuple[RunStatus, str | None] | None:
        """How the job ended when it was not by its own exit code alone: canceled or failed on the
        cluster (a time limit, lost node), or forgotten by it. None: the exit code says it all."""
        state = self.state
        if state is None:
            return RunStatus.FAILED, f"the cluster no longer knows {self.described}"
        if state.status is RunStatus.CANCELED and not self.stopped_by_us:
            return RunStatus.CANCELED, state.reason or f"canceled on the cluster ({state.native})"
        if state.status is RunStatus.FAILED and state.reason:
            return RunStatus.FAILED, state.reason
        return None

    def signal(self, sig: int) -> None:
        """While the job runs: the cluster stops it (`stop_job`). Once it has ended: where the cluster
        is this machine (a single-node cluster, or a job placed here), what the job left behind still
        carries the run's marker, and is stopped as a local run's leftovers are."""
        state = self.state
        if state is not None and state.status.is_final:
            RunProcesses(self.record.run_id).signal(sig)
        else:
            self.stopped_by_us = True
            self.stop_job(sig)

    @abstractmethod
    def stop_job(self, sig: int) -> None:
        """Ask the cluster to deliver `sig` to the job (or to cancel it)."""

    def alive(self) -> bool:
        state = self.state
        return state is not None and state.status.is_final and RunProcesses(self.record.run_id).alive()


def append_missing(log_path: Path, complete: str | bytes, written: int | None = None) -> None:
    """Append to the run's log what it lacks of the job's complete output. `written`: how many bytes
    of it the log already has (default: the log holds the start of it, and nothing else)."""
    data = complete.encode("utf-8") if isinstance(complete, str) else complete
    if written is None:
        try:
            have = log_path.read_bytes()
        except OSError:
            have = b""
        if not data.startswith(have):
            return  # not a prefix of the job's output: leave the log as it is
        written = len(have)
    if len(data) > written:
        with log_path.open("ab") as log:
            log.write(data[written:])
