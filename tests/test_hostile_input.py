"""Hostile and odd input: an input error (exit 2, one line, nothing recorded), never a traceback or a
run that fails for what could have been refused."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlproj
from mlproj.cli.board import BoardView
from mlproj.cli.live import watch_lines
from mlproj.errors import InputError
from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store, new_run_id
from tests.helpers import assert_input_error, command_project, invoke, mlproj_json, wait_until, write_project
from tests.helpers import mlproj as run_mlproj
from tests.pipelines import write_pipeline

# --- values the OS cannot pass ---------------------------------------------------------------------------


def test_a_nul_character_or_a_huge_value_is_refused_before_anything_is_recorded(
    tmp_path: Path, home: Home
) -> None:
    project = command_project(tmp_path / "p", "echo {x}", "    parameters:\n      x: string\n")
    with pytest.raises(InputError, match="parameter 'x': a value cannot contain a NUL character"):
        mlproj.run(str(project), parameters={"x": "a\0b"})
    with pytest.raises(
        InputError, match=r"the command with its values is 1000005 bytes, more than the 131072 .*'x'"
    ):
        mlproj.run(str(project), parameters={"x": "y" * 1_000_000})
    with pytest.raises(InputError, match="--tag 'k': a value cannot contain a NUL"):
        mlproj.run(str(project), parameters={"x": "1"}, tags={"k": "v\0"})
    assert mlproj_json("runs") == []


def test_a_nul_in_a_default_is_refused_naming_the_parameter(tmp_path: Path, home: Home) -> None:
    project = write_project(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n"
        '      x: {type: string, default: "a\\0b"}\n    command: echo {x}\n',
    )
    done = run_mlproj("run", str(project))
    message = "parameter 'x': a value cannot contain a NUL character (no program can be given one)"
    assert assert_input_error(done) == f"mlproj: error: {message}"
    assert mlproj_json("runs") == []


def test_a_pipeline_input_the_os_cannot_pass_is_refused(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        inputs:
          x: {type: string, default: a}
        jobs:
          a:
            command: echo ${{inputs.x}}
            inputs: {x: '${{parent.inputs.x}}'}
        """,
    )
    with pytest.raises(InputError, match="-P x: a value cannot contain a NUL"):
        mlproj.run(str(pipeline), parameters={"x": "a\0"})
    with pytest.raises(InputError, match=r"jobs\.a\.command: the command with its values is \d+ bytes"):
        mlproj.run(str(pipeline), parameters={"x": "y" * 200_000})
    assert mlproj_json("runs") == []


# --- durations -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["run", ".", "--timeout", "nan"],
        ["run", ".", "--timeout", "inf"],
        ["run", ".", "--timeout", "0"],
        ["wait", "abcd", "--timeout", "-1"],
        ["wait", "abcd", "--timeout", "nan"],
        ["cancel", "abcd", "--grace", "-1"],
        ["cancel", "abcd", "--grace", "nan"],
    ],
)
def test_durations_that_are_not_a_number_of_seconds(tmp_path: Path, home: Home, args: list[str]) -> None:
    line = assert_input_error(invoke(*args))  # in this process: the parser's and click's own checks
    assert line.startswith(f"mlproj: error: {args[2]} {args[3]}: expected ")
    assert mlproj_json("runs") == []


def test_the_python_api_refuses_them_too(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "true")
    with pytest.raises(InputError, match="--timeout nan: expected a positive number of seconds"):
        mlproj.run(str(project), timeout=float("nan"))
    submitted = mlproj.run(str(project))
    with pytest.raises(InputError, match="timeout -1: expected a positive number of seconds"):
        submitted.wait(timeout=-1)


# --- what is printed of a run -----------------------------------------------------------------------------


def test_escape_sequences_in_a_run_name_are_shown_not_sent(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "exit 3")
    name = "\x1b[2J\x1b[31mred\x07"
    run_mlproj("run", str(project), "--run-name", name, "--tag", "t=\x1b]0;title\x07")
    run_id = mlproj_json("runs")[0]["run_id"]
    for args in (["runs"], ["status", run_id]):
        shown = run_mlproj(*args).stdout
        assert "\x1b" not in shown and "\x07" not in shown
        assert "\\x1b[31mred\\x07" in shown


def test_runs_filtered_by_status_are_reconciled_first(tmp_path: Path, home: Home) -> None:
    store = Store.open(home)
    lost = RunRecord(
        run_id=new_run_id(),
        status=RunStatus.RUNNING,
        created_at=time.time() - 60,
        supervisor_pid=999_999_999,
        supervisor_identity="boot:1",
    )
    store.insert(lost)
    assert mlproj_json("runs", "--status", "Running") == []
    (failed,) = mlproj_json("runs", "--status", "Failed")
    assert failed["run_id"] == lost.run_id


def test_a_ctrl_c_while_mlproj_is_still_importing_ends_quietly(tmp_path: Path) -> None:
    """The Ctrl-C is delivered while the command line is imported (by an import hook, so the moment is
    exact): exit 130, one line, no traceback."""
    script = (
        "import os, signal, sys\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mlproj.cli.main':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hook())\n"
        "sys.argv = ['mlproj', 'runs']\n"
        "from mlproj.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 130
    assert done.stderr == "Interrupted.\n"


# --- what the README promises of pipelines --------------------------------------------------------------


def test_status_watch_shows_a_running_pipelines_steps(tmp_path: Path, home: Home) -> None:
    gate = tmp_path / "go"
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        f"""
        type: pipeline
        jobs:
          first:
            command: echo one
          waiting:
            command: while [ ! -e {gate} ]; do sleep 0.05; done
            depends_on: [first]
        """,
    )
    run_id = run_mlproj("run", str(pipeline), "-d").stdout.strip()
    store = Store.open(home)
    wait_until(
        lambda: any(s.step == "waiting" and s.status is RunStatus.RUNNING for s in store.steps_of(run_id))
    )
    lines = watch_lines(store, run_id)
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["STEP", "STATUS", "DURATION", "RUN", "ID", "REUSED", "/", "WHY"]
    assert [line.split()[:2] for line in table[1:]] == [["first", "Finished"], ["waiting", "Running"]]
    gate.touch()
    assert run_mlproj("wait", run_id, "--no-show-output").returncode == 0


def test_the_board_never_cuts_step_names_statuses_or_durations(tmp_path: Path) -> None:
    from rich.console import Console

    log = tmp_path / "log"
    log.write_text("x" * 300 + "\n")
    steps = [
        RunRecord(
            run_id=new_run_id(),
            kind=RunKind.STEP,
            step=name,
            status=status,
            started_at=time.time() - 75,
            ended_at=time.time(),
            log_path=str(log),
            reason="ran: parameters.lr, code changed " * 3,
        )
        for name, status in (
            ("prepare_the_training_data", RunStatus.FINISHED),
            ("train_a_big_model", RunStatus.CANCEL_REQUESTED),
        )
    ]
    for width in (80, 120):
        console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
        board = BoardView(stderr=False, title="taxi-train", run_id="3f2a" * 8, console=console)
        board.refresh(steps)
        board.close()
        text = console.export_text()
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines[0].startswith(f"taxi-train  run {'3f2a' * 8}  ")
        for step in steps:
            row = next(line for line in lines if line.startswith(step.step or ""))
            assert row.split()[:3] == [step.step, step.status.value, "1m15s"]
            assert len(row) <= width
            assert row.endswith("…")  # the log line got what was left
