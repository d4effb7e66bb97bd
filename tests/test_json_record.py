"""The JSON run record is a contract (design.md §5): these names must never be renamed or dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlproj.home import Home
from tests.conftest import make_git_repo
from tests.helpers import command_project, mlproj

REQUIRED: dict[str, type | tuple[type, ...]] = {
    "run_id": str,
    "kind": str,
    "status": str,
    "exit_code": (int, type(None)),
    "error": (str, type(None)),
    "experiment": str,
    "run_name": (str, type(None)),
    "uri": str,
    "version": (str, type(None)),
    "commit": (str, type(None)),
    "entry_point": str,
    "parameters": dict,
    "env_manager": str,
    "backend": str,
    "created_at": str,
    "started_at": (str, type(None)),
    "ended_at": (str, type(None)),
    "duration_s": (float, int, type(None)),
    "log_path": str,
    "parent_run_id": (str, type(None)),
    "step": (str, type(None)),
    "reused_from": (str, type(None)),
    "tags": dict,
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
STATUSES = {
    "NotStarted",
    "Queued",
    "Preparing",
    "Running",
    "CancelRequested",
    "Finished",
    "Failed",
    "Canceled",
    "Skipped",
}


def check_record(record: dict[str, object]) -> None:
    for name, kind in REQUIRED.items():
        assert name in record, name
        assert isinstance(record[name], kind), (name, record[name])
    assert re.fullmatch(r"[0-9a-f]{32}", str(record["run_id"]))
    assert record["status"] in STATUSES
    assert record["kind"] in ("project", "pipeline", "step")
    for name in ("created_at", "started_at", "ended_at"):
        if record[name] is not None:
            assert ISO_UTC.match(str(record[name])), record[name]


def test_record_of_a_finished_git_run(tmp_path: Path, home: Home) -> None:
    repo = tmp_path / "repo"
    commit = make_git_repo(
        repo, {"MLproject": "entry_points:\n  main:\n    parameters:\n      a: int\n    command: echo {a}\n"}
    )
    done = mlproj(
        "run",
        repo.as_uri(),
        "-v",
        "main",
        "-P",
        "a=5",
        "--run-name",
        "n",
        "--tag",
        "team=ml",
        "--experiment-name",
        "exp",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    check_record(record)
    assert record["kind"] == "project"
    assert record["status"] == "Finished"
    assert record["exit_code"] == 0
    assert record["commit"] == commit
    assert record["version"] == "main"
    assert record["uri"] == repo.as_uri()
    assert record["parameters"] == {"a": "5"}
    assert record["tags"] == {"team": "ml"}
    assert record["experiment"] == "exp"
    assert record["run_name"] == "n"
    assert record["entry_point"] == "main"
    assert record["env_manager"] == "local"
    assert record["backend"] == "local"
    assert record["parent_run_id"] is None and record["step"] is None and record["reused_from"] is None
    assert record["duration_s"] >= 0
    assert Path(record["log_path"]).read_text() == "5\n"


def test_detached_json_is_printed_when_recorded(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "sleep 0.5")
    done = mlproj("run", str(project), "-d", "--json")
    record = json.loads(done.stdout)
    check_record({**record, "started_at": None})
    assert record["status"] in ("Queued", "Running")
    assert mlproj("wait", record["run_id"]).returncode == 0


def test_runs_json_is_a_list_of_records(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "exit 4")
    mlproj("run", str(project))
    done = mlproj("runs", "--json")
    (record,) = json.loads(done.stdout)
    check_record(record)
    assert record["status"] == "Failed" and record["exit_code"] == 4


def test_iso_utc_writes_what_datetime_writes() -> None:
    import random
    from datetime import datetime, timezone

    from mlproj.runs.record import iso_utc

    rng = random.Random(7)  # noqa: S311 - test data
    moments = [0.0, 0.0005, 0.9995, 0.9999995, 1_764_600_000.1234995, 1_764_600_000.999_999_6]
    moments += [rng.uniform(0, 4_000_000_000) for _ in range(2000)]
    for moment in moments:
        expected = datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(timespec="milliseconds")
        assert iso_utc(moment) == expected.replace("+00:00", "Z"), moment
    assert iso_utc(None) is None
