"""RunRecord: one row of the run store, and the JSON document of design.md §5."""

from __future__ import annotations

import json
import time

from mlproj.runs.request import request_from_dict
from mlproj.runs.status import RunKind, RunStatus
from mlproj.structs import dataclass, field, fields, replace
from mlproj.urls import strip_credentials

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from mlproj.runs.request import Request

# Columns stored as JSON text.
JSON_COLUMNS = ("parameters", "tags", "request", "outputs", "reuse_parts")
_OPTIONAL_JSON = ("request", "reuse_parts")  # None when empty; the others are {} when empty


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    kind: RunKind = RunKind.PROJECT
    status: RunStatus = RunStatus.NOT_STARTED
    exit_code: int | None = None
    error: str | None = None
    experiment: str = "Default"
    experiment_id: int | None = None
    run_name: str | None = None
    uri: str | None = None
    version: str | None = None
    commit: str | None = None
    entry_point: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    env_manager: str | None = None
    backend: str = "local"
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    log_path: str | None = None
    parent_run_id: str | None = None
    step: str | None = None
    reused_from: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    command: str | None = None
    work_dir: str | None = None
    run_dir: str | None = None
    timeout: float | None = None
    # Supervision: who watches the run, and the workload's main process. An identity pairs a PID with
    # its start time (see mlproj.process.identity) so that a reused PID is never taken for ours.
    supervisor_pid: int | None = None
    supervisor_identity: str | None = None
    pid: int | None = None
    pid_identity: str | None = None
    grace: float | None = None
    request: Request | None = None
    env_path: str | None = None
    env_fingerprint: str | None = None
    env_reused: bool | None = None
    # Pipelines: a step's outputs (name → absolute path; a pipeline's named outputs), which attempt of
    # its step a run is, its reuse key and the parts it was made from, and why it ran or was reused.
    outputs: Mapping[str, str] = field(default_factory=dict)
    attempt: int | None = None
    reuse_key: str | None = None
    reuse_parts: Mapping[str, str] | None = None
    reason: str | None = None
    # Cluster backends: the job that runs it, and the cluster's own state name (Slurm's PENDING…).
    job_id: str | None = None
    backend_state: str | None = None
    cgroup: str | None = None  # the run's cgroup (mlproj.proctree), where the machine gives one
    # MLflow tracking (design.md §8): the run's MLflow run, and the final update that waits for the
    # tracking server (JSON: {"status": "FINISHED", "end_time": ms}; None once sent).
    tracking_uri: str | None = None
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    mlflow_artifact_uri: str | None = None
    tracking_pending: str | None = None
    # Publishing (design.md §10): the published pipeline a run was submitted from, through which
    # endpoint, fired by which schedule.
    published_pipeline_id: str | None = None
    endpoint: str | None = None
    schedule: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at
        if end is None:
            if self.is_final:
                return None
            end = time.time()
        return round(max(0.0, end - self.started_at), 3)

    @property
    def display_name(self) -> str:
        return self.run_name or self.step or self.run_id[:8]

    def evolve(self, **changes: Any) -> RunRecord:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of design.md §5 (plus a few added fields); timestamps in ISO 8601 UTC."""
        return {
            "run_id": self.run_id,
            "kind": self.kind.value,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "error": self.error,
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "run_name": self.run_name,
            "uri": self.uri,
            "version": self.version,
            "commit": self.commit,
            "entry_point": self.entry_point,
            "parameters": dict(self.parameters),
            "env_manager": self.env_manager,
            "backend": self.backend,
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at),
            "duration_s": self.duration_s,
            "log_path": self.log_path,
            "parent_run_id": self.parent_run_id,
            "step": self.step,
            "reused_from": self.reused_from,
            "tags": dict(self.tags),
            "command": self.command,
            "work_dir": self.work_dir,
            "run_dir": self.run_dir,
            "timeout": self.timeout,
            "pid": self.pid,
            "env_path": self.env_path,
            "env_fingerprint": self.env_fingerprint,
            "env_reused": self.env_reused,
            "outputs": dict(self.outputs),
            "attempt": self.attempt,
            "reason": self.reason,
            "backend_config": dict((self.request.backend_config if self.request else None) or {}),
            "job_id": self.job_id,
            "backend_state": self.backend_state,
            "tracking_uri": None if self.tracking_uri is None else strip_credentials(self.tracking_uri),
            "mlflow_run_id": self.mlflow_run_id,
            "mlflow_experiment_id": self.mlflow_experiment_id,
            "tracking_pending": self.tracking_pending is not None,
            "published_pipeline_id": self.published_pipeline_id,
            "endpoint": self.endpoint,
            "schedule": self.schedule,
        }

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "request":
                value = None if value is None else json.dumps(value.to_dict())
            elif f.name in JSON_COLUMNS:
                value = None if value is None else json.dumps(dict(value))
            elif f.name in ("status", "kind"):
                value = value.value
            row[f.name] = value
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        values = dict(row)
        for name in JSON_COLUMNS:
            text = values.get(name)
            values[name] = json.loads(text) if text else (None if name in _OPTIONAL_JSON else {})
        values["status"] = RunStatus(values["status"])
        values["kind"] = RunKind(values["kind"])
        values["request"] = request_from_dict(values["kind"], values["request"])
        if values.get("env_reused") is not None:
            values["env_reused"] = bool(values["env_reused"])
        return cls(**values)


COLUMNS = tuple(f.name for f in fields(RunRecord))


def iso_utc(timestamp: float | None) -> str | None:
    """`2026-11-29T10:30:00.123Z`: as `datetime.fromtimestamp(t, timezone.utc).isoformat("milliseconds")`
    writes it (microseconds rounded half to even, then cut to milliseconds), without importing datetime."""
    if timestamp is None:
        return None
    seconds = int(timestamp // 1)
    micro = round((timestamp - seconds) * 1e6)
    if micro >= 1_000_000:
        seconds, micro = seconds + 1, micro - 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micro // 1000:03d}Z"
