"""`--json` on wait, cancel and logs, and `logs -f` of a pipeline with its steps' output (design.md §12).
Real runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlproj.home import Home
from tests.helpers import command_project, mlproj, mlproj_json, wait_until
from tests.pipelines import write_pipeline


def test_wait_and_cancel_print_the_run_s_record(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo out; exit 3")
    run_id = mlproj("run", str(project), "--detach").stdout.strip()
    done = mlproj("wait", run_id, "--json")
    assert done.returncode == 3  # the run's exit code, as without --json
    document = json.loads(done.stdout)  # stdout: the document only; the output went to stderr
    assert document["run_id"] == run_id and document["status"] == "Failed" and "out" in done.stderr
    slow = command_project(tmp_path / "slow", "sleep 30")
    running = mlproj("run", str(slow), "--detach").stdout.strip()
    wait_until(lambda: mlproj_json("status", running)["status"] == "Running", timeout=60)
    waited = mlproj("wait", running, "--json", "--timeout", "0.5")
    assert waited.returncode == 124 and json.loads(waited.stdout)["status"] == "Running"
    canceled = mlproj_json("cancel", running, "--grace", "1")
    assert canceled["status"] == "Canceled" and canceled["already_ended"] is False
    again = mlproj_json("cancel", running)
    assert again["already_ended"] is True


def test_logs_json_gives_each_line_with_its_step(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          first:
            command: printf 'one\\ntwo\\n'
          second:
            command: echo three
            depends_on: [first]
        """,
    )
    run = mlproj_json("run", str(pipeline))
    done = mlproj("logs", run["run_id"], "-f", "--json")
    assert done.returncode == 0
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    by_step: dict[str | None, list[str]] = {}
    for line in lines:
        assert set(line) == {"run_id", "step", "line", "seen_at"} and line["run_id"] == run["run_id"]
        by_step.setdefault(line["step"], []).append(line["line"])
    assert by_step["first"] == ["one", "two"] and by_step["second"] == ["three"]
    assert any("pipeline Finished" in text for text in by_step[None])  # the pipeline's own events
    one_step = [
        json.loads(line)
        for line in mlproj("logs", run["run_id"], "--step", "first", "--json").stdout.splitlines()
    ]
    assert [(line["step"], line["line"]) for line in one_step] == [("first", "one"), ("first", "two")]


def test_logs_follow_of_a_running_pipeline_interleaves_its_steps(tmp_path: Path, home: Home) -> None:
    gate = tmp_path / "gate"
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        f"""
        type: pipeline
        jobs:
          early:
            command: echo early says hi
          late:
            command: while [ ! -e {gate} ]; do sleep 0.1; done; echo late says bye
            depends_on: [early]
        """,
    )
    run_id = mlproj("run", str(pipeline), "--detach").stdout.strip()
    follower = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "logs", run_id, "-f"], stdout=subprocess.PIPE, text=True
    )
    try:
        wait_until(
            lambda: any(
                s["step"] == "late" and s["status"] == "Running"
                for s in mlproj_json("status", run_id)["steps"]
            ),
            timeout=60,
        )
        gate.touch()
        out, _ = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0
    lines = out.splitlines()
    assert "[early] early says hi" in lines and "[late] late says bye" in lines
    assert lines.index("[early] early says hi") < lines.index("[late] late says bye")
    assert any(line.startswith("mlproj: ") and "pipeline Finished" in line for line in lines)
