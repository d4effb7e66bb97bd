"""`mlproj gc` (design.md §12): finished runs deleted with their steps, logs and outputs; never a run that
has not ended, never one whose outputs a kept run reuses, never a folder that is not the run's own.
Real runs in a real store (creation times moved back in the database to make them old)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from mlproj.home import Home
from tests.helpers import assert_input_error, command_project, mlproj, mlproj_json
from tests.pipelines import write_pipeline

DAY = 86400


def age(home: Home, run_id: str, days: float) -> None:
    """Make a run (and its steps) look `days` days old."""
    with sqlite3.connect(home.db_file) as db:
        db.execute(
            "UPDATE runs SET created_at = ? WHERE run_id = ? OR parent_run_id = ?",
            (time.time() - days * DAY, run_id, run_id),
        )


def exists(run_id: str) -> bool:
    return mlproj("status", run_id).returncode == 0


def test_old_finished_runs_go_with_their_folders_and_new_ones_stay(tmp_path: Path, home: Home) -> None:
    project = command_project(
        tmp_path / "p", "echo hello; exit {code}", "    parameters:\n      code: {type: int, default: 0}\n"
    )
    old_ok = mlproj_json("run", str(project))
    old_failed = mlproj("run", str(project), "-P", "code=3", "--json")
    assert old_failed.returncode == 3  # the command's own exit code
    old_failed_id = json.loads(old_failed.stdout)["run_id"]
    new = mlproj_json("run", str(project))
    for run_id in (old_ok["run_id"], old_failed_id):
        age(home, run_id, 30)
    preview = mlproj_json("gc", "--older-than", "7", "--dry-run")
    assert (
        sorted(preview["deleted"]) == sorted([old_ok["run_id"], old_failed_id]) and preview["freed_bytes"] > 0
    )
    assert exists(old_ok["run_id"]) and Path(old_ok["run_dir"]).is_dir()  # a dry run deletes nothing
    failed_only = mlproj_json("gc", "--older-than", "7", "--status", "Failed")
    assert failed_only["deleted"] == [old_failed_id]
    done = mlproj("gc", "--older-than", "7")
    assert done.returncode == 0 and "Deleted 1 runs (0 steps), freed" in done.stdout
    assert not exists(old_ok["run_id"]) and not Path(old_ok["run_dir"]).exists()
    assert exists(new["run_id"]) and Path(new["run_dir"]).is_dir()
    assert "Nothing to delete." in mlproj("gc", "--older-than", "7").stdout


def test_a_run_that_has_not_ended_is_never_deleted(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(tmp_path / "slow.yml", "type: pipeline\njobs:\n  a:\n    command: sleep 30\n")
    running = mlproj("run", str(pipeline), "--detach").stdout.strip()
    try:
        age(home, running, 90)
        assert mlproj_json("gc", "--older-than", "0")["deleted"] == []
        assert mlproj_json("status", running)["status"] in ("Queued", "Preparing", "Running")
    finally:
        mlproj("cancel", running, "--grace", "1")


def test_a_run_whose_outputs_a_kept_run_reuses_is_kept(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          make:
            command: echo data > ${{outputs.out}}
            outputs:
              out: {type: uri_file}
          use:
            command: cat ${{inputs.data}}
            inputs:
              data: ${{parent.jobs.make.outputs.out}}
        """,
    )
    first = mlproj_json("run", str(pipeline))
    second = mlproj_json("run", str(pipeline))
    reused = {step["step"]: step for step in second["steps"]}["make"]
    assert reused["reused_from"]  # its outputs are in the first run's folder
    age(home, first["run_id"], 30)
    result = mlproj_json("gc", "--older-than", "7")
    assert result["deleted"] == []
    assert result["kept"] == [
        {"run_id": first["run_id"], "why": f"step make of run {second['run_id']} reuses its outputs"}
    ]
    assert Path(reused["outputs"]["out"]).read_text() == "data\n"
    age(home, second["run_id"], 30)  # both old now: nothing kept needs the first, both go
    result = mlproj_json("gc", "--older-than", "7")
    assert sorted(result["deleted"]) == sorted([first["run_id"], second["run_id"]]) and result["steps"] == 4
    assert not Path(first["run_dir"]).exists()


def test_a_folder_that_is_not_the_run_s_own_is_left_alone(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo hello")
    run = mlproj_json("run", str(project))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with sqlite3.connect(home.db_file) as db:
        db.execute("UPDATE runs SET run_dir = ? WHERE run_id = ?", (str(precious), run["run_id"]))
    assert mlproj_json("gc", "--older-than", "0")["deleted"] == [run["run_id"]]
    assert (precious / "keep.txt").read_text() == "mine"


def test_gc_needs_to_be_told_what_to_delete(home: Home) -> None:
    assert_input_error(mlproj("gc"), "say which runs to delete")
    assert_input_error(mlproj("gc", "--status", ""), "--status '': expected Finished, Failed or Canceled")
    assert_input_error(
        mlproj("gc", "--status", "Running"), "--status Running: gc deletes only runs that ended"
    )
    assert_input_error(mlproj("gc", "--status", "Sleeping"), "--status")


def test_a_run_whose_mlflow_end_is_still_to_be_sent_is_left(tmp_path: Path, home: Home) -> None:
    run = mlproj_json("run", str(command_project(tmp_path / "p", "echo hello")))
    age(home, run["run_id"], 30)
    with sqlite3.connect(home.db_file) as db:  # as a supervisor leaves it while the server is away
        db.execute(
            "UPDATE runs SET tracking_pending = ? WHERE run_id = ?", ('{"status": "FINISHED"}', run["run_id"])
        )
    assert mlproj_json("gc", "--older-than", "7")["deleted"] == []
    assert exists(run["run_id"])


def test_a_run_being_resumed_is_kept(tmp_path: Path, home: Home) -> None:
    flag = tmp_path / "flag"
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        f"""
        type: pipeline
        jobs:
          first:
            command: echo first
          second:
            command: test -e {flag} && sleep 30
            depends_on: [first]
        """,
    )
    failed = mlproj("run", str(pipeline), "--json")
    assert failed.returncode != 0
    earlier = json.loads(failed.stdout)["run_id"]
    flag.touch()
    resumed = mlproj("resume", earlier, "--detach").stdout.strip()
    try:
        age(home, earlier, 30)
        result = mlproj_json("gc", "--older-than", "7")
        assert result["deleted"] == [] and [k["run_id"] for k in result["kept"]] == [earlier]
        assert exists(earlier)
    finally:
        mlproj("cancel", resumed, "--grace", "1")
