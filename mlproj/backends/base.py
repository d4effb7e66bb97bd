"""The interface every backend implements: where a prepared run executes.

A backend takes a run whose command, working folder and environment are resolved (an `ExecRequest`)
and starts it, returning a `Workload` that the run's supervisor waits for, stops and records, the same
way whichever backend ran it. Cluster backends also answer for a run whose supervisor is gone: its
job's state (`job_state`) and how to cancel it (`cancel_job`), so that `status`, `wait` and `cancel`
work from any shell.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlproj.errors import InputError
from mlproj.proctree import RunProcesses
from mlproj.runs.status import RunStatus
from mlproj.workload import Workload

if TYPE_CHECKING:
    from mlproj.envs.base import EnvManager
    from mlproj.envs.envspec import EnvSpec
    from mlproj.process import ExecRequest
    from mlproj.runs.record import RunRecord

Validator = Callable[[str, Any], Any]  # (key, value) → the value to use; ValueError says why not


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


class Backend(ABC):
    name: str
    # The environment is built where mlproj runs (in an MLPROJ_HOME the cluster's nodes share) and
    # activated in the job by its variables; False: the backend has the cluster build it.
    prepares_environment = True
    runs_here = False  # True for the local backend: environments that launch themselves run with it
    config_fields: Mapping[str, tuple[Validator, str]] = {}  # key → (validator, what it expects)

    def validate_config(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """The configuration with every value checked; an unknown key or a bad value is an input
        error that names the backend and the key."""
        result: dict[str, Any] = {}
        for key, value in (config or {}).items():
            field = self.config_fields.get(key)
            if field is None:
                known = ", ".join(sorted(self.config_fields)) or "none"
                raise InputError(f"backend {self.name}: unknown backend_config key {key!r} (known: {known})")
            try:
                result[key] = field[0](key, value)
            except ValueError as exc:
                raise InputError(
                    f"backend {self.name}: backend_config {key}={value!r}: {exc or f'expected {field[1]}'}"
                ) from None
        return result

    def accept_manager(self, manager: EnvManager) -> None:
        """Raise `InputError` for an environment this backend cannot run: one that starts its own
        workload (docker) runs only where mlproj runs."""
        if manager.launches_itself and not self.runs_here:
            raise InputError(
                f"backend {self.name}: the {manager.name} environment starts its own workload and runs "
                "only with the local backend"
            )

    def check(self, config: Mapping[str, Any], env_spec: EnvSpec | None, manager: EnvManager) -> None:  # noqa: B027
        """Raise `InputError` when the run cannot be submitted (cluster unreachable, no such
        partition, an environment it cannot use) — before anything is recorded."""

    @abstractmethod
    def launch(
        self,
        record: RunRecord,
        request: ExecRequest,
        run_request: Mapping[str, Any],
        manager: EnvManager,
    ) -> Workload:
        """Start the run; the supervisor waits for, stops and records what is returned."""

    def job_state(self, record: RunRecord) -> JobState | None:
        """For a run whose supervisor is gone: its job's state, or None when the cluster no longer
        knows it. Local runs have no job."""
        return None

    def cancel_job(self, record: RunRecord, grace: float) -> None:  # noqa: B027
        """For a run whose supervisor is gone: stop its job."""

    def collect_logs(self, record: RunRecord) -> None:  # noqa: B027
        """For a run whose supervisor is gone and whose job has ended: bring its output into the run's
        log if the cluster keeps it elsewhere."""

    def describe_job(self, record: RunRecord) -> str:
        return f"{self.name} job {record.job_id}"


class ClusterWorkload(Workload):
    """A job on a cluster, polled (at most every `poll` seconds) for its state."""

    first_polls = (0.05, 0.1, 0.2)  # start fast: short jobs end within a second

    def __init__(self, backend: Backend, record: RunRecord, job_id: str, poll: float = 0.5) -> None:
        self.backend = backend
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
            return state.exit_code if state.exit_code < 128 else -(state.exit_code - 128)
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
            return RunStatus.FAILED, f"the cluster no longer knows {self.backend.describe_job(self.record)}"
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


# --- config validators -----------------------------------------------------------------------------


def text(key: str, value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        raise ValueError("expected a non-empty string")
    return str(value).strip()


def positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number of at least 1")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError("expected a whole number of at least 1") from None
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a positive number")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError("expected a positive number") from None
    if not number > 0:
        raise ValueError("expected a positive number")
    return number


def string_list(key: str, value: Any) -> list[str]:
    """A list of strings, or one string split as a shell would."""
    if isinstance(value, str):
        import shlex

        return shlex.split(value)
    if not isinstance(value, list) or not all(isinstance(item, (str, int, float)) for item in value):
        raise ValueError("expected a list of strings")
    return [str(item) for item in value]


def mapping(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected a mapping")
    return {str(k): v for k, v in value.items()}


def matching(pattern: str, expected: str) -> Validator:
    compiled = re.compile(pattern)

    def check(key: str, value: Any) -> str:
        shown = str(value).strip()
        if isinstance(value, bool) or not compiled.fullmatch(shown):
            raise ValueError(f"expected {expected}")
        return shown

    return check
