"""The interface every backend implements: where a prepared run executes.

A backend takes a run whose command, working folder and environment are resolved (a `Launch`: the
run's `RunRequest`, the process to start, or the image to run it in) and starts it, returning a
`Workload` that the run's supervisor waits for, stops and records, the same way whichever backend ran
it. Cluster backends also answer for a run whose supervisor is gone: its job's state (`job_state`) and
how to cancel it (`cancel_job`), so that `status`, `wait` and `cancel` work from any shell. Backends
ask environments what they need (an image, or packages a cluster installs), never their names.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping

from mlproj.errors import InputError
from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.backends.workload import JobState, Workload
    from mlproj.envs.base import Container, EnvManager, PortableEnv
    from mlproj.process import ExecRequest
    from mlproj.runs.envspec import EnvSpec
    from mlproj.runs.record import RunRecord
    from mlproj.runs.request import RunRequest

if TYPE_CHECKING:
    Validator = Callable[[str, Any], Any]  # (key, value) → the value to use; ValueError says why not
else:
    Validator = Callable  # the same for code that imports it at run time (typing is not imported)


@dataclass(frozen=True)
class Launch:
    """A recorded run, prepared: what its backend starts."""

    record: RunRecord
    request: RunRequest
    process: ExecRequest  # the command with its whole environment, its log, its cgroup
    container: Container | None = None  # the image it runs in, for an environment that is one
    portable: PortableEnv | None = None  # what the cluster installs, for a backend that builds it


class Backend(ABC):
    name: str
    # The environment is built where mlproj runs (in an MLPROJ_HOME the cluster's nodes share) and
    # activated in the job by its variables; False: the backend has the cluster build it.
    prepares_environment = True
    runs_containers = False  # True: it can run an environment that is an image (`Container`)
    queues = False  # True: a cluster's scheduler starts the job when it sees fit (`Queued` until then)
    copies_working_dir = False  # True: the job runs in the cluster's copy of its working folder
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

    def environment_options(self, config: Mapping[str, Any]) -> dict[str, Any]:  # noqa: ARG002 - the Backend interface's signature
        """What the environment must do for this backend on top of the run's docker options (build the
        project into its image and push it, for a cluster that pulls images)."""
        return {}

    def accept(self, manager: EnvManager) -> None:
        """Raise `InputError` for an environment this backend cannot run (an image, without containers)."""
        if manager.in_container and not self.runs_containers:
            raise InputError(
                f"backend {self.name}: the {manager.name} environment runs in a container, which this "
                "backend cannot start; run it with the local backend"
            )

    def check(self, config: Mapping[str, Any], manager: EnvManager, spec: EnvSpec | None) -> None:  # noqa: ARG002 - the Backend interface's signature
        """Raise `InputError` when the run cannot be submitted (cluster unreachable, no such
        partition, an environment it cannot use) — before anything is recorded."""
        self.accept(manager)

    @abstractmethod
    def launch(self, launch: Launch) -> Workload:
        """Start the run; the supervisor waits for, stops and records what is returned."""

    def job_state(self, record: RunRecord) -> JobState | None:  # noqa: ARG002 - the Backend interface's signature
        """For a run whose supervisor is gone: its job's state, or None when the cluster no longer
        knows it. Local runs have no job."""
        return None

    def cancel_job(self, record: RunRecord, grace: float) -> None:  # noqa: B027 - optional hook
        """For a run whose supervisor is gone: stop what it runs outside this machine's process tree
        (a cluster's job, a container)."""

    def collect_logs(self, record: RunRecord) -> None:  # noqa: B027 - optional hook
        """For a run whose supervisor is gone and whose job has ended: bring its output into the run's
        log if the cluster keeps it elsewhere."""

    def describe_job(self, record: RunRecord) -> str:
        return f"{self.name} job {record.job_id}"


def config_of(record: RunRecord) -> Mapping[str, Any]:
    """The backend config a recorded run was submitted with (for a run whose supervisor is gone)."""
    from mlproj.runs.request import RunRequest

    request = record.request
    return request.backend_config if isinstance(request, RunRequest) else {}


# --- config validators -----------------------------------------------------------------------------


def text(key: str, value: Any) -> str:  # noqa: ARG001 - a Validator's signature
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        raise ValueError("expected a non-empty string")
    return str(value).strip()


def positive_int(key: str, value: Any) -> int:  # noqa: ARG001 - a Validator's signature
    """A whole number of at least 1, written with ASCII digits (as `mlproj.values` wants numbers)."""
    shown = str(value).strip()
    if isinstance(value, bool) or not (shown.isascii() and shown.isdigit()) or int(shown) < 1:
        raise ValueError("expected a whole number of at least 1")
    return int(shown)


def positive_number(key: str, value: Any) -> float:  # noqa: ARG001 - a Validator's signature
    if isinstance(value, bool):
        raise ValueError("expected a positive number")
    shown = str(value).strip()
    try:
        number = float(shown) if shown.isascii() and "_" not in shown else math.nan
    except ValueError:
        raise ValueError("expected a positive number") from None
    if not (number > 0 and math.isfinite(number)):
        raise ValueError("expected a positive number")
    return number


def string_list(key: str, value: Any) -> list[str]:  # noqa: ARG001 - a Validator's signature
    """A list of strings, or one string split as a shell would."""
    if isinstance(value, str):
        import shlex

        return shlex.split(value)
    if not isinstance(value, list) or not all(isinstance(item, (str, int, float)) for item in value):
        raise ValueError("expected a list of strings")
    return [str(item) for item in value]


def mapping(key: str, value: Any) -> dict[str, Any]:  # noqa: ARG001 - a Validator's signature
    if not isinstance(value, dict):
        raise ValueError("expected a mapping")
    return {str(k): v for k, v in value.items()}


def matching(pattern: str, expected: str) -> Validator:
    compiled = re.compile(pattern, re.ASCII)  # \d is 0-9, not any script's digits

    def check(key: str, value: Any) -> str:  # noqa: ARG001 - a Validator's signature
        shown = str(value).strip()
        if isinstance(value, bool) or not compiled.fullmatch(shown):
            raise ValueError(f"expected {expected}")
        return shown

    return check
