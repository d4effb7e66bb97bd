"""Helpers for the pipeline tests: pipeline files written into tmp_path, their runs read back."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.helpers import mlproj

# The §5 fields every record carries (a pipeline's adds `steps`).
RECORD_FIELDS = (
    "run_id",
    "kind",
    "status",
    "exit_code",
    "error",
    "experiment",
    "run_name",
    "uri",
    "version",
    "commit",
    "entry_point",
    "parameters",
    "env_manager",
    "backend",
    "created_at",
    "started_at",
    "ended_at",
    "duration_s",
    "log_path",
    "parent_run_id",
    "step",
    "reused_from",
    "tags",
)


def write_pipeline(path: Path, text: str) -> Path:
    """Write a pipeline file (its text dedented) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def run_pipeline(pipeline: Path | str, *args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    """`mlproj run PIPELINE --json ARGS` (a file or a URI): (exit code, the JSON document on stdout)."""
    done = mlproj("run", str(pipeline), "--json", *args, cwd=cwd)
    assert done.stdout.strip(), done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, document


def run_ok(pipeline: Path | str, *args: str, cwd: Path | None = None) -> dict[str, Any]:
    code, document = run_pipeline(pipeline, *args, cwd=cwd)
    assert code == 0, (document["error"], [(s["step"], s["status"], s["error"]) for s in document["steps"]])
    return document


def steps(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each step's latest attempt, by name."""
    latest: dict[str, dict[str, Any]] = {}
    for step in document["steps"]:
        latest[step["step"]] = step
    return latest


def attempts(document: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [step for step in document["steps"] if step["step"] == name]


def when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def interval(step: dict[str, Any]) -> tuple[datetime, datetime]:
    return when(step["started_at"]), when(step["ended_at"])


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    (start_a, end_a), (start_b, end_b) = interval(a), interval(b)
    return start_a < end_b and start_b < end_a


def status_json(run_id: str) -> dict[str, Any]:
    done = mlproj("status", run_id, "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def recorded_runs() -> list[dict[str, Any]]:
    done = mlproj("runs", "--json")
    assert done.returncode == 0, done.stderr
    runs: list[dict[str, Any]] = json.loads(done.stdout)
    return runs


def step_log(document: dict[str, Any], step: str) -> str:
    """`mlproj logs RUN --step STEP` of a pipeline run's JSON document."""
    from tests.helpers import mlproj

    return mlproj("logs", document["run_id"], "--step", step).stdout


def timestamp(value: Any) -> float:
    """A record's time (ISO text or seconds) as seconds."""
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else float(value)
