"""Pipelines through the real CLI (design.md §4 to §6): data passing, parallelism, failures, cancel,
resume, the JSON record, logs, graph, validate and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.home import Home
from mlproj.runs.store import Store
from tests.conftest import commit_files, git, make_git_repo
from tests.helpers import alive, mlproj, read_pids, wait_until, write_project
from tests.pipelines import (
    RECORD_FIELDS,
    attempts,
    interval,
    overlap,
    recorded_runs,
    run_ok,
    run_pipeline,
    status_json,
    steps,
    write_pipeline,
)

DIAMOND = """
    type: pipeline
    name: diamond
    experiment_name: shapes
    tags: {team: ml}
    inputs:
      raw: {type: uri_file, default: ./raw.txt}
      n: {type: integer, default: 3}
    outputs:
      report: ${{parent.jobs.join.outputs.report}}
      clean: ${{parent.jobs.prep.outputs.clean}}
    jobs:
      prep:
        type: command
        command: >-
          cp ${{inputs.raw}} ${{outputs.clean}}/data.txt
          && echo n=${{inputs.n}} >> ${{outputs.clean}}/data.txt
        inputs:
          raw: ${{parent.inputs.raw}}
          n: ${{parent.inputs.n}}
        outputs:
          clean: {type: uri_folder}
      left:
        command: sed 's/^/L:/' ${{inputs.data}}/data.txt > ${{outputs.out}}
        inputs:
          data: ${{parent.jobs.prep.outputs.clean}}
        outputs:
          out: {type: uri_file}
      right:
        command: sed 's/^/R:/' ${{inputs.data}}/data.txt > ${{outputs.out}}
        inputs:
          data: ${{parent.jobs.prep.outputs.clean}}
        outputs:
          out: {type: uri_file}
      join:
        command: cat ${{inputs.left}} ${{inputs.right}} > ${{outputs.report}}
        inputs:
          left: ${{parent.jobs.left.outputs.out}}
          right: ${{parent.jobs.right.outputs.out}}
        outputs:
          report: {type: uri_file}
      announce:
        command: echo all done
        depends_on: [join]
"""


def diamond(tmp_path: Path) -> Path:
    (tmp_path / "raw.txt").write_text("a\nb\n")
    return write_pipeline(tmp_path / "diamond.yml", DIAMOND)


# --- data passing, ordering, outputs ----------------------------------------------------------------


def test_diamond_passes_data_in_order_and_records_outputs(tmp_path: Path, home: Home) -> None:
    pipeline = diamond(tmp_path)
    document = run_ok(pipeline, "-P", "n=7")
    assert document["kind"] == "pipeline"
    assert document["status"] == "Finished"
    assert document["exit_code"] in (0, None)
    assert document["experiment"] == "shapes"
    assert document["run_name"] == "diamond"
    assert document["parameters"] == {"raw": "./raw.txt", "n": "7"}
    assert document["tags"] == {"team": "ml"}
    assert document["uri"] == str(pipeline)
    by_name = steps(document)
    assert list(by_name) == ["prep", "left", "right", "join", "announce"]
    assert all(step["status"] == "Finished" for step in by_name.values())
    # The data went through every edge of the diamond.
    report = Path(document["outputs"]["report"])
    assert report.read_text() == "L:a\nL:b\nL:n=7\nR:a\nR:b\nR:n=7\n"
    assert report == Path(by_name["join"]["outputs"]["report"])
    clean = Path(document["outputs"]["clean"])
    assert clean.is_dir() and (clean / "data.txt").read_text() == "a\nb\nn=7\n"
    # Each output lives under the pipeline run's folder.
    run_dir = home.run_dir(document["run_id"])
    assert report.is_relative_to(run_dir) and clean.is_relative_to(run_dir)
    # Every step starts after the steps it depends on ended (bindings and depends_on).
    for up, down in [
        ("prep", "left"),
        ("prep", "right"),
        ("left", "join"),
        ("right", "join"),
        ("join", "announce"),
    ]:
        assert interval(by_name[up])[1] <= interval(by_name[down])[0], (up, down)
    assert Path(by_name["announce"]["log_path"]).read_text() == "all done\n"


def test_a_step_that_does_not_write_its_uri_file_output_fails(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          folder_ok:
            command: "true"
            outputs:
              empty: {type: uri_folder}
          lazy:
            command: echo forgot to write it
            outputs:
              model: {type: uri_file}
          after:
            command: cat ${{inputs.model}}
            inputs:
              model: ${{parent.jobs.lazy.outputs.model}}
        settings:
          continue_on_step_failure: true
        """,
    )
    code, document = run_pipeline(pipeline)
    assert code == 1
    assert document["status"] == "Failed"
    by_name = steps(document)
    # An empty uri_folder output is fine: it was created before the step started.
    assert by_name["folder_ok"]["status"] == "Finished"
    assert Path(by_name["folder_ok"]["outputs"]["empty"]).is_dir()
    assert by_name["lazy"]["status"] == "Failed"
    assert "did not write its output 'model'" in by_name["lazy"]["error"]
    assert by_name["after"]["status"] == "Skipped"
    assert "step lazy" in document["error"]


# --- parallelism -------------------------------------------------------------------------------------

# Each step marks that it started, then waits (up to 60 s) for the other's mark: both can only finish
# if they run at the same time.
RENDEZVOUS = """
    type: pipeline
    jobs:
      one:
        command: touch {marks}/one; bash {marks}/wait_for.sh {marks}/two
      two:
        command: touch {marks}/two; bash {marks}/wait_for.sh {marks}/one
"""
WAIT_FOR = 'for i in $(seq 1200); do test -f "$1" && exit 0; sleep 0.05; done; exit 9\n'
SEQUENCE = """
    type: pipeline
    jobs:
      one:
        command: sleep 0.3; echo one
      two:
        command: sleep 0.3; echo two
      three:
        command: sleep 0.3; echo three
"""


def test_independent_steps_overlap(tmp_path: Path, home: Home) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "wait_for.sh").write_text(WAIT_FOR)
    pipeline = write_pipeline(tmp_path / "p.yml", RENDEZVOUS.format(marks=marks))
    document = run_ok(pipeline, "--max-parallel", "2")
    by_name = steps(document)
    assert overlap(by_name["one"], by_name["two"])


def test_max_parallel_1_runs_one_step_at_a_time(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(tmp_path / "p.yml", SEQUENCE)
    document = run_ok(pipeline, "--max-parallel", "1")
    by_name = steps(document)
    assert all(step["reused_from"] is None for step in by_name.values())
    for a, b in [("one", "two"), ("two", "three"), ("one", "three")]:
        assert not overlap(by_name[a], by_name[b]), (a, b)
    # The setting in the file does the same.
    pipeline = write_pipeline(
        tmp_path / "q.yml", SEQUENCE.replace("jobs:", "settings:\n      max_parallel: 1\n    jobs:", 1)
    )
    document = run_ok(pipeline, "--force-rerun")
    by_name = steps(document)
    assert not overlap(by_name["one"], by_name["two"]) and not overlap(by_name["two"], by_name["three"])


# --- failures ----------------------------------------------------------------------------------------

# `bad` fails at once. `gate` runs beside it, and ends only once the pipeline has logged the failure,
# so the scheduler knows of the failure before anything downstream of `gate` could start.
FAILURE = """
    type: pipeline
    jobs:
      bad:
        command: echo about to fail; exit 3
      gate:
        command: >-
          for i in $(seq 1200); do
          grep -q 'bad: Failed' "$MLPROJ_HOME/runs/$MLPROJ_PIPELINE_RUN_ID/output.log" && exit 0;
          sleep 0.05; done; exit 9
      after_gate:
        command: echo independent branch ran
        depends_on: [gate]
      after_bad:
        command: echo never
        depends_on: [bad]
      after_after_bad:
        command: echo never either
        depends_on: [after_bad]
"""


def test_a_failed_step_fails_the_pipeline_and_stops_new_steps(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(tmp_path / "p.yml", FAILURE)
    code, document = run_pipeline(pipeline, "--max-parallel", "2")
    assert code == 1
    assert document["status"] == "Failed"
    assert document["error"].startswith("step bad Failed")
    by_name = steps(document)
    assert by_name["bad"]["status"] == "Failed"
    assert by_name["bad"]["exit_code"] == 3
    assert by_name["gate"]["status"] == "Finished"  # already running: it finishes
    # No new step starts after the failure, not even on an independent branch.
    assert by_name["after_gate"]["status"] == "Skipped"
    assert by_name["after_gate"]["started_at"] is None
    assert by_name["after_bad"]["status"] == "Skipped"
    assert by_name["after_after_bad"]["status"] == "Skipped"
    assert not Path(by_name["after_gate"]["log_path"]).exists()


def test_continue_on_step_failure_runs_independent_branches(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(tmp_path / "p.yml", FAILURE)
    code, document = run_pipeline(pipeline, "--max-parallel", "2", "--continue-on-step-failure")
    assert code == 1
    assert document["status"] == "Failed"
    by_name = steps(document)
    assert by_name["bad"]["status"] == "Failed"
    assert by_name["gate"]["status"] == "Finished"
    assert by_name["after_gate"]["status"] == "Finished"
    assert Path(by_name["after_gate"]["log_path"]).read_text() == "independent branch ran\n"
    assert by_name["after_bad"]["status"] == "Skipped"
    assert "bad" in by_name["after_bad"]["error"]
    assert by_name["after_after_bad"]["status"] == "Skipped"
    # The setting in the file does the same.
    in_file = FAILURE.replace("jobs:", "settings:\n      continue_on_step_failure: true\n    jobs:", 1)
    code, document = run_pipeline(write_pipeline(tmp_path / "q.yml", in_file), "--max-parallel", "2")
    assert code == 1
    assert steps(document)["after_gate"]["status"] == "Finished"


def test_retries_run_a_failed_step_again(tmp_path: Path, home: Home) -> None:
    flaky = tmp_path / "flaky-ran"
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        f"""
        type: pipeline
        jobs:
          flaky:
            command: >-
              if [ -f {flaky} ]; then echo second time lucky > ${{{{outputs.o}}}};
              else touch {flaky}; exit 5; fi
            retries: 2
            outputs:
              o: {{type: uri_file}}
          hopeless:
            command: echo attempt; exit 6
            retries: 1
          after:
            command: cat ${{{{inputs.o}}}}
            inputs:
              o: ${{{{parent.jobs.flaky.outputs.o}}}}
        settings:
          continue_on_step_failure: true
        """,
    )
    code, document = run_pipeline(pipeline)
    assert code == 1
    first, second = attempts(document, "flaky")
    assert (first["attempt"], first["status"], first["exit_code"]) == (1, "Failed", 5)
    assert (second["attempt"], second["status"]) == (2, "Finished")
    assert second["run_id"] != first["run_id"]
    assert "retry" in second["reason"]
    assert Path(second["outputs"]["o"]).read_text() == "second time lucky\n"
    # The downstream step read the output of the attempt that finished.
    assert Path(steps(document)["after"]["log_path"]).read_text() == "second time lucky\n"
    hopeless = attempts(document, "hopeless")
    assert [(s["attempt"], s["status"]) for s in hopeless] == [(1, "Failed"), (2, "Failed")]
    assert Path(hopeless[0]["log_path"]) != Path(hopeless[1]["log_path"])
    assert document["status"] == "Failed"


@pytest.mark.slow
def test_a_step_timeout_fails_it_and_ends_its_processes(tmp_path: Path, home: Home) -> None:
    pids = tmp_path / "pids.txt"
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        f"""
        type: pipeline
        jobs:
          slow:
            command: sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait
            timeout: 0.5
            retries: 1
          after:
            command: echo never
            depends_on: [slow]
        """,
    )
    code, document = run_pipeline(pipeline)
    assert code == 1
    assert document["status"] == "Failed"
    tries = attempts(document, "slow")
    assert [s["status"] for s in tries] == ["Failed", "Failed"]  # a timed-out step is retried
    assert all(s["error"] == "timed out after 0.5 s" for s in tries)
    assert steps(document)["after"]["status"] == "Skipped"
    assert len(read_pids(pids)) == 4
    wait_until(lambda: not any(alive(pid) for pid in read_pids(pids)), timeout=10)


# --- cancel, Ctrl-C, a lost supervisor -------------------------------------------------------------


def sleeper(pids: Path, name: str) -> str:
    """A step command that records its shell's and its background child's PIDs, then waits."""
    return f"sleep 300 & echo $! >> {pids}/{name}; echo $$ >> {pids}/{name}; wait"


def started(pids: Path, *names: str) -> bool:
    return all((pids / n).exists() and len(read_pids(pids / n)) == 2 for n in names)


CANCELABLE = """
    type: pipeline
    jobs:
      one:
        command: {one}
        retries: 2
      two:
        command: {two}
      later:
        command: echo never
        depends_on: [one]
"""


def cancelable(tmp_path: Path) -> tuple[Path, Path]:
    pids = tmp_path / "pids"
    pids.mkdir()
    text = CANCELABLE.format(one=sleeper(pids, "one"), two=sleeper(pids, "two"))
    return write_pipeline(tmp_path / "p.yml", text), pids


def all_pids(pids: Path) -> list[int]:
    return [pid for file in pids.iterdir() for pid in read_pids(file)]


@pytest.mark.slow
def test_cancel_of_a_detached_pipeline_cancels_every_step(tmp_path: Path, home: Home) -> None:
    pipeline, pids = cancelable(tmp_path)
    done = mlproj("run", str(pipeline), "-d", "--max-parallel", "2")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    wait_until(lambda: started(pids, "one", "two"))
    assert all(alive(pid) for pid in all_pids(pids))
    assert status_json(run_id)["status"] == "Running"
    done = mlproj("cancel", run_id[:8], "--grace", "2")
    assert done.returncode == 0, done.stderr
    assert "now Canceled" in done.stdout
    document = status_json(run_id)
    assert document["status"] == "Canceled"
    assert document["error"] == "canceled by mlproj cancel"
    # Every step is Canceled, running or not started, and a canceled step is not retried.
    assert [(s["step"], s["status"]) for s in document["steps"]] == [
        ("one", "Canceled"),
        ("two", "Canceled"),
        ("later", "Canceled"),
    ]
    wait_until(lambda: not any(alive(pid) for pid in all_pids(pids)), timeout=10)
    assert mlproj("wait", run_id, "--no-show-output").returncode == 130
    again = mlproj("cancel", run_id)
    assert again.returncode == 0 and "already ended: Canceled" in again.stdout


@pytest.mark.slow
def test_ctrl_c_cancels_a_foreground_pipeline(tmp_path: Path, home: Home) -> None:
    pipeline, pids = cancelable(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(pipeline), "--json", "--max-parallel", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: started(pids, "one", "two"))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    document = json.loads(out)
    assert document["status"] == "Canceled"
    assert document["error"] == "canceled by Ctrl-C"
    assert {s["step"]: s["status"] for s in document["steps"]} == {
        "one": "Canceled",
        "two": "Canceled",
        "later": "Canceled",
    }
    assert len(document["steps"]) == 3
    wait_until(lambda: not any(alive(pid) for pid in all_pids(pids)), timeout=10)
    assert status_json(document["run_id"])["status"] == "Canceled"


@pytest.mark.slow
def test_kill_9_of_a_pipeline_supervisor_is_reconciled(tmp_path: Path, home: Home) -> None:
    pipeline, pids = cancelable(tmp_path)
    done = mlproj("run", str(pipeline), "-d", "--max-parallel", "2")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    wait_until(lambda: started(pids, "one", "two"))
    store = Store.open(home)
    supervisor = store.get(run_id).supervisor_pid
    store.close()
    assert supervisor is not None and alive(supervisor)
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not alive(supervisor), timeout=10)
    document = status_json(run_id)
    assert document["status"] == "Failed"
    assert "is gone" in document["error"]
    by_name = steps(document)
    assert by_name["one"]["status"] == "Failed"
    assert by_name["two"]["status"] == "Failed"
    assert by_name["later"]["status"] == "Skipped"
    assert all(s["error"] for s in by_name.values())
    wait_until(lambda: not any(alive(pid) for pid in all_pids(pids)), timeout=10)
    assert mlproj("wait", run_id, "--no-show-output").returncode == 1


def test_pipeline_timeout_cancels_it_and_exits_124(tmp_path: Path, home: Home) -> None:
    pipeline, pids = cancelable(tmp_path)
    code, document = run_pipeline(pipeline, "--timeout", "1", "--max-parallel", "2")
    assert code == 124
    assert document["status"] == "Canceled"
    assert document["error"] == "timed out after 1 s"
    assert {s["step"]: s["status"] for s in document["steps"]} == {
        "one": "Canceled",
        "two": "Canceled",
        "later": "Canceled",
    }
    # The pipeline's timeout cancels its steps (a step's own timeout would fail it).
    assert all(s["error"] == "canceled: the pipeline timed out after 1 s" for s in document["steps"])
    wait_until(lambda: not any(alive(pid) for pid in all_pids(pids)), timeout=10)


def test_canceling_one_step_is_not_retried_and_fails_the_pipeline(tmp_path: Path, home: Home) -> None:
    pipeline, pids = cancelable(tmp_path)
    done = mlproj("run", str(pipeline), "-d", "--max-parallel", "2")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    wait_until(lambda: started(pids, "one", "two"))
    one = steps(status_json(run_id))["one"]
    done = mlproj("cancel", one["run_id"], "--grace", "2")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: not any(alive(pid) for pid in read_pids(pids / "one")), timeout=10)
    assert status_json(run_id)["status"] == "Running"  # the other step goes on
    mlproj("cancel", steps(status_json(run_id))["two"]["run_id"], "--grace", "2")
    assert mlproj("wait", run_id, "--no-show-output").returncode == 1
    document = status_json(run_id)
    assert document["status"] == "Failed"
    assert document["error"].startswith("step one Canceled")
    assert [(s["step"], s["attempt"], s["status"]) for s in attempts(document, "one")] == [
        ("one", 1, "Canceled")
    ]
    assert steps(document)["later"]["status"] == "Skipped"
    wait_until(lambda: not any(alive(pid) for pid in all_pids(pids)), timeout=10)


def test_sigterm_to_a_foreground_pipeline_cancels_it(tmp_path: Path, home: Home) -> None:
    pipeline, pids = cancelable(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(pipeline), "--max-parallel", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: started(pids, "one", "two"))
        proc.terminate()
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    (record,) = recorded_runs()
    document = status_json(record["run_id"])
    assert document["status"] == "Canceled"
    assert "SIGTERM" in document["error"]
    assert {s["status"] for s in document["steps"]} == {"Canceled"}
    wait_until(lambda: not any(alive(pid) for pid in all_pids(pids)), timeout=10)


def test_the_board_on_a_terminal_shows_step_output_as_it_is(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          noisy:
            command: echo '[/oops] [bold]not markup'
          after:
            command: echo done
            depends_on: [noisy]
        """,
    )
    done = mlproj("run", str(pipeline), env={"FORCE_COLOR": "1", "NO_COLOR": "", "TERM": "xterm"})
    assert done.returncode == 0, done.stderr
    assert "[/oops] [bold]not markup" in done.stdout
    assert "[/]" not in done.stdout
    assert "Finished" in done.stderr


# --- resume ------------------------------------------------------------------------------------------


def test_resume_reuses_finished_steps_and_runs_the_failed_ones(tmp_path: Path, home: Home) -> None:
    fixed = tmp_path / "fixed"
    counter = tmp_path / "first-ran.txt"
    write_pipeline(
        tmp_path / "p.yml",
        f"""
        type: pipeline
        inputs:
          word: hello
        jobs:
          first:
            command: echo ran >> {counter}; echo ${{{{inputs.word}}}} > ${{{{outputs.o}}}}/word.txt
            allow_reuse: false
            inputs:
              word: ${{{{parent.inputs.word}}}}
            outputs:
              o: {{type: uri_folder}}
          second:
            command: test -f {fixed} || exit 4; cat ${{{{inputs.w}}}}/word.txt > ${{{{outputs.o}}}}
            inputs:
              w: ${{{{parent.jobs.first.outputs.o}}}}
            outputs:
              o: {{type: uri_file}}
          third:
            command: cat ${{{{inputs.w}}}}
            inputs:
              w: ${{{{parent.jobs.second.outputs.o}}}}
        """,
    )
    code, failed = run_pipeline(Path("p.yml"), "-P", "word=bonjour", cwd=tmp_path)
    assert code == 1
    before = steps(failed)
    assert [before[n]["status"] for n in ("first", "second", "third")] == ["Finished", "Failed", "Skipped"]
    fixed.touch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = mlproj("resume", failed["run_id"][:10], "--json", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    assert resumed["run_id"] != failed["run_id"]
    assert resumed["status"] == "Finished"
    assert resumed["parameters"] == {"word": "bonjour"}  # the same inputs
    assert resumed["tags"]["mlproj.resumed_from"] == failed["run_id"]
    after = steps(resumed)
    # The finished step is reused (even with allow_reuse: false), the others run.
    assert after["first"]["reused_from"] == before["first"]["run_id"]
    assert "resume" in after["first"]["reason"]
    assert counter.read_text() == "ran\n"
    assert after["second"]["reused_from"] is None and after["second"]["status"] == "Finished"
    assert after["third"]["reused_from"] is None
    assert Path(after["third"]["log_path"]).read_text() == "bonjour\n"
    # Resuming a finished run reuses every step; unknown runs and project runs are input errors.
    done = mlproj("resume", resumed["run_id"], "--json")
    assert done.returncode == 0, done.stderr
    assert all(s["reused_from"] for s in json.loads(done.stdout)["steps"])
    assert mlproj("resume", "ffff" * 8).returncode == 2
    project = write_project(tmp_path / "proj", "entry_points:\n  main:\n    command: 'true'\n")
    project_run = json.loads(mlproj("run", str(project), "--json").stdout)["run_id"]
    done = mlproj("resume", project_run)
    assert done.returncode == 2 and "only pipeline runs" in done.stderr


# --- the record, logs, graph, validate ----------------------------------------------------------------


def test_json_record_of_a_pipeline_and_its_steps(tmp_path: Path, home: Home) -> None:
    pipeline = diamond(tmp_path)
    document = run_ok(pipeline, "--run-name", "first", "--tag", "who=me", "--experiment-name", "exp")
    for field in (*RECORD_FIELDS, "steps"):
        assert field in document, field
    assert document["run_name"] == "first"
    assert document["experiment"] == "exp"
    assert document["tags"] == {"team": "ml", "who": "me"}
    assert document["parent_run_id"] is None and document["step"] is None
    assert len(document["steps"]) == 5
    for step in document["steps"]:
        for field in RECORD_FIELDS:
            assert field in step, field
        assert step["kind"] == "step"
        assert step["parent_run_id"] == document["run_id"]
        assert step["status"] == "Finished"
        assert step["reused_from"] is None
        assert step["experiment"] == "exp"
        assert step["started_at"] and step["ended_at"] and step["duration_s"] is not None
        assert step["reason"].startswith("ran: ")
    assert [s["step"] for s in document["steps"]] == ["prep", "left", "right", "join", "announce"]
    # `status --json` gives the same document, from any shell; a step's ID gives the step's record.
    status = status_json(document["run_id"][:8])
    assert status["run_id"] == document["run_id"]
    assert [s["run_id"] for s in status["steps"]] == [s["run_id"] for s in document["steps"]]
    assert status["outputs"] == document["outputs"]
    step = status_json(document["steps"][0]["run_id"])
    assert step["kind"] == "step" and step["step"] == "prep" and "steps" not in step
    # The runs list shows the pipeline, not its steps.
    (listed,) = recorded_runs()
    assert listed["run_id"] == document["run_id"] and listed["kind"] == "pipeline"
    # The table form names every step.
    table = mlproj("status", document["run_id"])
    assert table.returncode == 0
    for name in ("prep", "left", "right", "join", "announce"):
        assert name in table.stdout


def test_detached_json_is_printed_when_recorded(tmp_path: Path, home: Home) -> None:
    pipeline = diamond(tmp_path)
    done = mlproj("run", str(pipeline), "-d", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["kind"] == "pipeline"
    assert {s["step"] for s in document["steps"]} == {"prep", "left", "right", "join", "announce"}
    followed = mlproj("logs", document["run_id"], "-f")
    assert followed.returncode == 0
    assert followed.stdout.rstrip().endswith("pipeline Finished")
    waited = mlproj("wait", document["run_id"])
    assert waited.returncode == 0
    assert "join" in waited.stdout and "Finished" in waited.stderr
    assert status_json(document["run_id"])["status"] == "Finished"
    # A failed pipeline makes `wait` exit 1, whatever its step's own exit code.
    failing = write_pipeline(tmp_path / "failing.yml", "type: pipeline\njobs:\n  a: {command: exit 7}\n")
    done = mlproj("run", str(failing), "-d")
    assert done.returncode == 0, done.stderr
    assert mlproj("wait", done.stdout.strip(), "--no-show-output").returncode == 1


def test_logs_of_a_step_and_of_a_reused_step(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          hello:
            command: echo hello from the step; echo to stderr >&2
        """,
    )
    first = run_ok(pipeline)
    done = mlproj("logs", first["run_id"], "--step", "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from the step\nto stderr\n"
    # The pipeline's own log holds its events.
    events = mlproj("logs", first["run_id"]).stdout
    assert "hello" in events and "pipeline Finished" in events
    second = run_ok(pipeline)
    hello = steps(second)["hello"]
    assert hello["reused_from"] == steps(first)["hello"]["run_id"]
    done = mlproj("logs", second["run_id"], "--step", "hello")
    assert done.returncode == 0, done.stderr
    header, *rest = done.stdout.splitlines()
    assert "reused" in header and hello["reused_from"] in header
    assert rest == ["hello from the step", "to stderr"]
    unknown = mlproj("logs", second["run_id"], "--step", "nope")
    assert unknown.returncode == 2
    assert "nope" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1


def test_graph_of_a_file_and_of_a_run(tmp_path: Path, home: Home) -> None:
    pipeline = diamond(tmp_path)
    expected = {
        "nodes": ["prep", "left", "right", "join", "announce"],
        "edges": [
            ["prep", "left"],
            ["prep", "right"],
            ["left", "join"],
            ["right", "join"],
            ["join", "announce"],
        ],
    }
    done = mlproj("graph", str(pipeline), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
    document = run_ok(pipeline)
    done = mlproj("graph", document["run_id"][:6], "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
    for fmt, needle in [("text", "join"), ("mermaid", "graph TD"), ("dot", "digraph")]:
        done = mlproj("graph", str(pipeline), "--format", fmt)
        assert done.returncode == 0 and needle in done.stdout
    assert mlproj("graph", "abcdef").returncode == 2


def test_validate_plans_everything_and_records_nothing(tmp_path: Path, home: Home) -> None:
    pipeline = diamond(tmp_path)
    done = mlproj("validate", str(pipeline), "-P", "n=4")
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout
    for name in ("prep", "left", "right", "join", "announce"):
        assert name in done.stdout
    done = mlproj("validate", str(pipeline), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["steps"] == ["prep", "left", "right", "join", "announce"]
    assert recorded_runs() == []
    assert not home.runs_dir.exists() or not any(home.runs_dir.iterdir())
    bad = mlproj("validate", str(pipeline), "-P", "n=many")
    assert bad.returncode == 2 and "-P n" in bad.stderr


# --- bad input ---------------------------------------------------------------------------------------

PROJECT = """
name: trainer
entry_points:
  main:
    parameters:
      lr: float
      epochs: {type: int, default: 2}
      out: string
    command: echo lr={lr} epochs={epochs} > {out}/model.txt
"""
GOOD_STEP = """
      ok:
        command: echo ok
"""


@pytest.mark.parametrize(
    ("body", "args", "key", "message"),
    [
        (
            "jobs:\n  a: {command: echo a, depends_on: [b]}\n  b: {command: echo b, depends_on: [a]}\n",
            [],
            "jobs.",
            "cycle: ",
        ),
        (
            "jobs:\n  a:\n    command: cat ${{inputs.d}}\n"
            "    inputs: {d: '${{parent.jobs.nope.outputs.x}}'}\n",
            [],
            "jobs.a.inputs.d",
            "unknown step 'nope'",
        ),
        (
            "jobs:\n  up: {command: 'true'}\n  a:\n    command: cat ${{inputs.d}}\n"
            "    inputs: {d: '${{parent.jobs.up.outputs.x}}'}\n",
            [],
            "jobs.a.inputs.d",
            "declares no output 'x'",
        ),
        (
            "jobs:\n  a:\n    command: echo ${{inputs.d}}\n    inputs: {d: '${{parent.inputs.nope}}'}\n",
            [],
            "jobs.a.inputs.d",
            "has no input 'nope'",
        ),
        (
            "jobs:\n  a:\n    command: echo ${{inputs.missing}}\n",
            [],
            "jobs.a.command",
            "declares no input 'missing'",
        ),
        (
            "jobs:\n  a: {type: spark, command: echo}\n",
            [],
            "jobs.a.type",
            "is an Azure ML spark job: it needs Azure",
        ),
        (
            "jobs:\n  a: {command: echo, depends_on: [ghost]}\n",
            [],
            "jobs.a.depends_on",
            "unknown step 'ghost'",
        ),
        (
            "jobs:\n  train:\n    type: mlflow_project\n    uri: ./proj\n"
            "    parameters: {lr: abc, out: '${{outputs.m}}'}\n    outputs: {m: {type: uri_folder}}\n",
            [],
            "jobs.train.parameters",
            "parameter 'lr' (float)",
        ),
        (
            "jobs:\n  train:\n    type: mlflow_project\n    uri: ./proj\n"
            "    parameters: {out: '${{outputs.m}}'}\n    outputs: {m: {type: uri_folder}}\n",
            [],
            "jobs.train.parameters",
            "no value for lr",
        ),
        (
            "jobs:\n  train:\n    type: mlflow_project\n    uri: ./proj\n    entry_point: nope\n",
            [],
            "jobs.train",
            "nope",
        ),
        (
            "inputs:\n  lr: {type: number, default: 0.1}\njobs:\n  a: {command: 'echo ${{inputs.lr}}', "
            "inputs: {lr: '${{parent.inputs.lr}}'}}\n",
            ["-P", "lr=abc"],
            "-P lr",
            "expected a number",
        ),
        ("jobs:\n  a: {command: echo}\n", ["-P", "nope=1"], "-P nope", "no input 'nope'"),
        (
            "inputs:\n  data: {type: uri_folder, default: ./no-such-folder}\n"
            "jobs:\n  a: {command: 'ls ${{inputs.d}}', inputs: {d: '${{parent.inputs.data}}'}}\n",
            [],
            "inputs.data",
            "no such folder",
        ),
        (
            "inputs:\n  data: {type: uri_file}\n"
            "jobs:\n  a: {command: 'cat ${{inputs.d}}', inputs: {d: '${{parent.inputs.data}}'}}\n",
            ["-P", "data=missing.csv"],
            "-P data",
            "no such file",
        ),
        (
            "inputs:\n  data: {type: uri_file}\n"
            "jobs:\n  a: {command: 'cat ${{inputs.d}}', inputs: {d: '${{parent.inputs.data}}'}}\n",
            [],
            "inputs.data",
            "no value",
        ),
        ("jobs:\n  a: {command: echo, retries: -1}\n", [], "jobs.a.retries", "at least 0"),
        # Names are parts of bindings and of folder names: no dots, no slashes.
        ("jobs:\n  ../../escape: {command: echo}\n", [], "jobs", "'../../escape': a name is"),
        (
            "jobs:\n  a: {command: echo, outputs: {a/b: {type: uri_folder}}}\n",
            [],
            "jobs.a.outputs",
            "'a/b': a name is",
        ),
        ("inputs:\n  x.y: 1\njobs:\n  a: {command: echo}\n", [], "inputs", "'x.y': a name is"),
        # A parameter the entry point does not declare: refused before anything runs, with its line.
        (
            "jobs:\n  train:\n    type: mlflow_project\n    uri: ./proj\n"
            "    parameters:\n      lr: 0.1\n      out: '${{outputs.m}}'\n      epohcs: 3\n"
            "    outputs: {m: {type: uri_folder}}\n",
            [],
            "bad.yml:10: jobs.train.parameters.epohcs",
            "declares no parameter 'epohcs'",
        ),
        # A job defined twice: YAML would keep the second silently.
        (
            "jobs:\n  a: {command: echo one}\n  a: {command: echo two}\n",
            [],
            "bad.yml:5: jobs.a",
            "duplicate key 'a' (first given on line 4)",
        ),
        # A binding where no value can be quoted, and a string where only an integer is safe.
        (
            "inputs:\n  x: hi\njobs:\n  a: {command: 'eval echo ${{parent.inputs.x}}'}\n",
            [],
            "jobs.a.command",
            "argument of `eval`",
        ),
        (
            "inputs:\n  x: hi\njobs:\n  a: {command: 'echo $(( ${{parent.inputs.x}} + 1 ))'}\n",
            [],
            "jobs.a.command",
            "only an integer is safe",
        ),
    ],
)
def test_bad_input_is_exit_2_naming_the_key_and_nothing_is_recorded(
    tmp_path: Path, home: Home, body: str, args: list[str], key: str, message: str
) -> None:
    write_project(tmp_path / "proj", PROJECT)
    pipeline = tmp_path / "bad.yml"
    pipeline.write_text("type: pipeline\nname: bad\n" + body)
    done = mlproj("run", str(pipeline), *args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlproj: error: ")
    assert key in line and message in line, line
    if not key.startswith("-P"):
        assert str(pipeline) in line
    assert done.stdout == ""
    assert recorded_runs() == []
    # validate finds the same problem.
    checked = mlproj("validate", str(pipeline), *args, cwd=tmp_path)
    assert checked.returncode == 2 and message in checked.stderr
    assert not home.runs_dir.exists() or not any(home.runs_dir.iterdir())


def test_cycle_error_names_the_cycle(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          a:
            command: cat ${{inputs.x}}
            inputs: {x: '${{parent.jobs.c.outputs.o}}'}
            outputs: {o: {type: uri_file}}
          b:
            command: cat ${{inputs.x}}
            inputs: {x: '${{parent.jobs.a.outputs.o}}'}
            outputs: {o: {type: uri_file}}
          c:
            command: cat ${{inputs.x}}
            depends_on: [b]
            inputs: {x: '${{parent.jobs.b.outputs.o}}'}
            outputs: {o: {type: uri_file}}
          d:
            command: echo outside the cycle
        """,
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2
    message = done.stderr.strip()
    assert "cycle" in message
    cycle = message.split("cycle: ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert recorded_runs() == []


# --- step kinds: mlflow projects, code folders, Git projects --------------------------------------------


def test_mlflow_project_steps_and_command_steps_with_code(tmp_path: Path, home: Home) -> None:
    write_project(
        tmp_path / "proj",
        PROJECT + "  other:\n    parameters:\n      model: path\n"
        "    command: cat {model}/model.txt; echo other ran\n"
        "  export:\n    parameters:\n      model: path\n      folder: path\n      file: path\n"
        "    command: cp {model}/model.txt {folder}/copy.txt && cp {model}/model.txt {file}\n",
    )
    code = tmp_path / "src"
    code.mkdir()
    (code / "report.sh").write_text('echo "report of $(cat "$1")"; pwd\n')
    pipeline = write_pipeline(
        tmp_path / "flow" / "p.yml",
        """
        type: pipeline
        inputs:
          lr: {type: number, default: 0.5}
        jobs:
          train:
            type: mlflow_project
            uri: ../proj
            parameters:
              lr: ${{parent.inputs.lr}}
              out: ${{outputs.model}}
            outputs:
              model: {type: uri_folder}
          check:
            type: mlflow_project
            uri: ../proj
            entry_point: other
            parameters:
              model: ${{parent.jobs.train.outputs.model}}
          export:  # `path` parameters bound to the step's own outputs, which do not exist yet
            type: mlflow_project
            uri: ../proj
            entry_point: export
            parameters:
              model: ${{parent.jobs.train.outputs.model}}
              folder: ${{outputs.folder}}
              file: ${{outputs.file}}
            outputs:
              folder: {type: uri_folder}
              file: {type: uri_file}
          report:
            code: ../src
            command: bash report.sh ${{inputs.model}}/model.txt
            inputs:
              model: ${{parent.jobs.train.outputs.model}}
        """,
    )
    document = run_ok(pipeline, "-P", "lr=0.25")
    by_name = steps(document)
    train = by_name["train"]
    assert train["entry_point"] == "main"
    assert train["uri"] == str(tmp_path / "proj")
    # The step run records its entry point's parameters, as given or defaulted.
    assert train["parameters"] == {"lr": "0.25", "epochs": "2", "out": train["outputs"]["model"]}
    assert by_name["report"]["parameters"] == {"model": train["outputs"]["model"]}
    assert (Path(train["outputs"]["model"]) / "model.txt").read_text() == "lr=0.25 epochs=2\n"
    assert by_name["check"]["entry_point"] == "other"
    assert Path(by_name["check"]["log_path"]).read_text() == "lr=0.25 epochs=2\nother ran\n"
    export = by_name["export"]
    assert (Path(export["outputs"]["folder"]) / "copy.txt").read_text() == "lr=0.25 epochs=2\n"
    assert Path(export["outputs"]["file"]).read_text() == "lr=0.25 epochs=2\n"
    # A command step with `code` runs in that folder.
    assert Path(by_name["report"]["log_path"]).read_text() == f"report of lr=0.25 epochs=2\n{code}\n"


def test_a_command_step_may_use_pipeline_values_in_its_command(tmp_path: Path, home: Home) -> None:
    """`${{parent...}}` bindings written straight into a command make an edge and are part of the key."""
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        inputs:
          word: {type: string, default: first}
        jobs:
          write:
            command: echo ${{parent.inputs.word}} > ${{outputs.o}}/word.txt
            outputs:
              o: {type: uri_folder}
          read:
            command: cat ${{parent.jobs.write.outputs.o}}/word.txt
        """,
    )
    graph = json.loads(mlproj("graph", str(pipeline), "--format", "json").stdout)
    assert graph["edges"] == [["write", "read"]]
    document = run_ok(pipeline)
    assert Path(steps(document)["read"]["log_path"]).read_text() == "first\n"
    document = run_ok(pipeline, "-P", "word=second")
    by_name = steps(document)
    assert by_name["write"]["reused_from"] is None
    assert "parent.inputs.word changed" in by_name["write"]["reason"]
    assert Path(by_name["read"]["log_path"]).read_text() == "second\n"


@pytest.mark.slow
def test_a_git_project_step(tmp_path: Path, home: Home) -> None:
    repo = tmp_path / "repo"
    first = make_git_repo(
        repo,
        {
            "tools/MLproject": "name: tool\nentry_points:\n  main:\n    parameters:\n      out: string\n"
            "    command: cat version.txt > {out}/version.txt\n",
            "tools/version.txt": "one\n",
        },
    )
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        f"""
        type: pipeline
        jobs:
          tool:
            type: mlflow_project
            uri: {repo.as_uri()}#tools
            version: main
            parameters:
              out: ${{{{outputs.o}}}}
            outputs:
              o: {{type: uri_folder}}
        """,
    )
    document = run_ok(pipeline)
    tool = steps(document)["tool"]
    assert tool["commit"] == first
    assert tool["version"] == "main"
    assert tool["uri"] == repo.as_uri()
    assert (Path(tool["outputs"]["o"]) / "version.txt").read_text() == "one\n"
    # The step ran in a copy inside the run's folder; the user's repository is untouched.
    assert Path(tool["work_dir"]).is_relative_to(home.run_dir(document["run_id"]))
    assert git(repo, "status", "--porcelain") == ""
    # The same commit is reused; a new commit on the branch runs again.
    again = steps(run_ok(pipeline))["tool"]
    assert again["reused_from"] == tool["run_id"]
    second = commit_files(repo, {"tools/version.txt": "two\n"})
    changed = steps(run_ok(pipeline))["tool"]
    assert changed["commit"] == second
    assert changed["reused_from"] is None
    assert "code changed" in changed["reason"]
    assert (Path(changed["outputs"]["o"]) / "version.txt").read_text() == "two\n"
    # An unknown version is an input error, found before anything runs.
    bad = write_pipeline(tmp_path / "bad.yml", pipeline.read_text().replace("version: main", "version: nope"))
    done = mlproj("run", str(bad))
    assert done.returncode == 2
    assert "jobs.tool" in done.stderr


def test_a_pipeline_file_in_a_git_repository(tmp_path: Path, home: Home) -> None:
    repo = tmp_path / "repo"
    commit = make_git_repo(
        repo,
        {
            "proj/MLproject": "entry_points:\n  main:\n    parameters:\n      out: path\n"
            "    command: echo from git > {out}/x.txt\n",
            "pipelines/p.yml": "type: pipeline\nname: in-git\njobs:\n"
            "  make:\n    type: mlflow_project\n    uri: ../proj\n"
            "    parameters: {out: '${{outputs.o}}'}\n    outputs: {o: {type: uri_folder}}\n"
            "  show:\n    code: ../proj\n    command: cat ${{inputs.i}}/x.txt\n"
            "    inputs: {i: '${{parent.jobs.make.outputs.o}}'}\n",
        },
    )
    uri = f"{repo.as_uri()}#pipelines/p.yml"
    done = mlproj("graph", uri, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"nodes": ["make", "show"], "edges": [["make", "show"]]}
    document = run_ok(uri, "-v", "main")
    assert document["commit"] == commit
    assert document["version"] == "main"
    by_name = steps(document)
    assert Path(by_name["show"]["log_path"]).read_text() == "from git\n"
    # Every step works in the run's own copy of the checkout.
    run_dir = home.run_dir(document["run_id"])
    assert all(Path(s["work_dir"]).resolve().is_relative_to(run_dir) for s in by_name.values())
    assert git(repo, "status", "--porcelain") == ""
    done = mlproj("validate", uri, "-v", commit[:10])
    assert done.returncode == 0, done.stderr


def test_an_integer_input_may_stand_in_arithmetic(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        inputs:
          n: {type: integer, default: 20}
        jobs:
          twice:
            command: echo $(( ${{inputs.n}} * 2 )) > ${{outputs.out}}/n.txt
            inputs: {n: '${{parent.inputs.n}}'}
            outputs: {out: {type: uri_folder}}
        """,
    )
    document = run_ok(pipeline, "-P", "n=21")
    assert (Path(steps(document)["twice"]["outputs"]["out"]) / "n.txt").read_text() == "42\n"
