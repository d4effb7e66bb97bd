"""`mlproj artifacts RUN [--step S] [--download DEST]` (design.md §12): what a run left, listed with sizes
and copied; links listed and copied as links, never followed. Real runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlproj.home import Home
from tests.helpers import assert_input_error, command_project, mlproj, mlproj_json
from tests.pipelines import write_pipeline


def pipeline(tmp_path: Path) -> Path:
    return write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          prep:
            command: >-
              mkdir -p ${{outputs.data}}/part && printf 1234567890 > ${{outputs.data}}/part/a.bin &&
              ln -s /etc/hostname ${{outputs.data}}/link
            outputs:
              data: {type: uri_folder}
          report:
            command: echo done > ${{outputs.note}}
            inputs:
              data: ${{parent.jobs.prep.outputs.data}}
            outputs:
              note: {type: uri_file}
        """,
    )


def test_a_pipeline_run_s_outputs_are_listed_and_copied(tmp_path: Path, home: Home) -> None:
    run = mlproj_json("run", str(pipeline(tmp_path)))
    listed = mlproj_json("artifacts", run["run_id"])
    by_name = {(a["step"], a["output"], a["name"]): a for a in listed}
    assert by_name[("prep", "data", "part/a.bin")]["size"] == 10
    assert by_name[("prep", "data", "link")]["size"] is None  # a link: listed, not followed
    assert by_name[("report", "note", "note")]["size"] == 5
    assert {a["step"] for a in mlproj_json("artifacts", run["run_id"], "--step", "report")} == {"report"}
    step = next(s for s in run["steps"] if s["step"] == "prep")
    own = [a["name"] for a in mlproj_json("artifacts", step["run_id"])]  # a step run: its folder, once
    assert own.count("outputs/data/part/a.bin") == 1 and len(own) == len(set(own))
    table = mlproj("artifacts", run["run_id"]).stdout.splitlines()
    assert table[0].split() == ["STEP", "OUTPUT", "FILE", "SIZE", "PATH"]
    assert any(line.split()[:4] == ["prep", "data", "part/a.bin", "10"] for line in table[1:])
    target = tmp_path / "copy"
    done = mlproj_json("artifacts", run["run_id"], "--download", str(target))
    assert done["files"] == 3 and done["bytes"] == 15
    assert (target / "prep" / "data" / "part" / "a.bin").read_bytes() == b"1234567890"
    assert (target / "report" / "note" / "note").read_text() == "done\n"
    assert os.readlink(target / "prep" / "data" / "link") == "/etc/hostname"  # still a link
    # A second copy into the same folder is refused rather than mixed in.
    assert_input_error(
        mlproj("artifacts", run["run_id"], "--download", str(target)), "expected a new or empty folder"
    )


def test_a_project_run_s_folder_is_listed(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo hello")
    run = mlproj_json("run", str(project))
    listed = mlproj_json("artifacts", run["run_id"])
    assert [a["name"] for a in listed] == ["output.log"] and listed[0]["size"] == 6
    assert_input_error(mlproj("artifacts", run["run_id"], "--step", "x"), "only pipeline runs have steps")
    lines = mlproj("status", run["run_id"]).stdout.splitlines()
    assert [line.split() for line in lines if line.startswith("folder")] == [["folder", run["run_dir"]]]


def test_bad_steps_and_unfinished_runs_are_refused(tmp_path: Path, home: Home) -> None:
    run = mlproj_json("run", str(pipeline(tmp_path)))
    assert_input_error(
        mlproj("artifacts", run["run_id"], "--step", "nope"), "--step 'nope'", "steps: prep, report"
    )
    slow = write_pipeline(tmp_path / "slow.yml", "type: pipeline\njobs:\n  a:\n    command: sleep 30\n")
    running = mlproj("run", str(slow), "--detach").stdout.strip()
    try:
        done = mlproj("artifacts", running, "--download", str(tmp_path / "early"))
        assert_input_error(done, "wait for it")
        assert not (tmp_path / "early").exists()
        assert json.loads(mlproj("artifacts", running, "--json").stdout) is not None  # listing is fine
    finally:
        mlproj("cancel", running, "--grace", "1")
