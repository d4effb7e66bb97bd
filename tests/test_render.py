"""How runs are shown: mlproj.cli.render (the summary line, `status`, the `runs` table, a pipeline's steps),
the live board of mlproj.cli.board, `status --watch`'s lines (mlproj.cli.live) and the environment and
download progress of mlproj.ui.progress. Exact lines: which rows appear, their padding, colour only on a
terminal, and text from a run (names, errors, tags, log lines) always shown escaped, never sent."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console as RichConsole

from mlproj import process
from mlproj.cli.board import MAX_ROWS, BoardView, last_line, make_view
from mlproj.cli.live import watch_lines
from mlproj.cli.render import runs_lines, status_lines, steps_lines, summary_line, table_lines
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store
from mlproj.ui import console as console_module
from mlproj.ui.console import PlainView, Text
from mlproj.ui.progress import BuildProgress, DownloadProgress

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
RUN_ID = "3f2a" * 8
HOSTILE = "\x1b[2J\x1b[31mred\x07"
SHOWN = "\\x1b[2J\\x1b[31mred\\x07"
MIB = 2**20


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No colour variables from the shell that runs the tests; an ordinary terminal type."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


@pytest.fixture
def plain() -> Text:
    return Text(io.StringIO())


@pytest.fixture
def coloured() -> Text:
    return Text(Terminal())


def step(name: str | None, status: RunStatus, run_id: str = "", **changes: Any) -> RunRecord:
    """A pipeline step's run."""
    return RunRecord(
        run_id=run_id or (name or "x")[:1] * 32, kind=RunKind.STEP, step=name, status=status, **changes
    )


def full_record() -> RunRecord:
    return RunRecord(
        run_id=RUN_ID,
        status=RunStatus.FAILED,
        exit_code=3,
        error="the command exited with code 3",
        experiment="taxi",
        run_name="nightly",
        uri="/home/u/train",
        version="v1.2",
        commit="abc123",
        entry_point="main",
        parameters={"lr": "0.1", "epochs": "20"},
        env_manager="uv",
        tags={"team": "ml", "ci": "true"},
        created_at=T0,
        started_at=T0 + 1.5,
        ended_at=T0 + 4.0,
        outputs={"model": "/runs/model.pkl"},
        reason="ran: code changed",
        log_path="/runs/3f2a/output.log",
    )


def rich_console(*, terminal: bool, width: int = 120) -> RichConsole:
    return RichConsole(
        file=io.StringIO(),
        force_terminal=terminal,
        width=width,
        color_system="standard" if terminal else None,
        highlight=False,
    )


def written(console: RichConsole) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def use_rich(monkeypatch: pytest.MonkeyPatch, *, stderr: bool, console: RichConsole) -> None:
    """`console` as the shared rich console of stderr (or stdout), for this test only."""
    monkeypatch.setitem(console_module._RICH, stderr, console)


@contextlib.contextmanager
def board(console: RichConsole, title: str = "taxi", run_id: str = RUN_ID) -> Iterator[BoardView]:
    view = BoardView(stderr=False, title=title, run_id=run_id, console=console)
    try:
        yield view
    finally:
        view.close()


# --- summary_line ------------------------------------------------------------------------------------------


def test_the_summary_of_a_finished_run_says_how_long_it_took(plain: Text) -> None:
    record = RunRecord(run_id=RUN_ID, status=RunStatus.FINISHED, started_at=T0, ended_at=T0 + 75)
    assert summary_line(plain, record) == f"Run {RUN_ID} Finished in 1m15s"


def test_the_summary_of_a_failed_run_ends_with_its_error_escaped(plain: Text) -> None:
    record = RunRecord(
        run_id=RUN_ID, status=RunStatus.FAILED, started_at=T0, ended_at=T0 + 2.5, error=f"boom {HOSTILE}"
    )
    assert summary_line(plain, record) == f"Run {RUN_ID} Failed in 2.50 s: boom {SHOWN}"


def test_the_summary_of_a_run_that_never_started_has_no_duration(plain: Text) -> None:
    record = RunRecord(run_id=RUN_ID, status=RunStatus.CANCELED, error="")
    assert summary_line(plain, record) == f"Run {RUN_ID} Canceled in -"


def test_the_summary_status_is_coloured_on_a_terminal(coloured: Text) -> None:
    record = RunRecord(run_id=RUN_ID, status=RunStatus.FAILED, error="x")
    assert summary_line(coloured, record) == f"Run {RUN_ID} \x1b[1;31mFailed\x1b[0m in -: x"


# --- status_lines ------------------------------------------------------------------------------------------


def test_status_shows_every_field_of_a_run_aligned(plain: Text) -> None:
    assert status_lines(plain, full_record()) == [
        f"run          {RUN_ID}",
        "status       Failed (exit code 3)",
        "error        the command exited with code 3",
        "name         nightly",
        "experiment   taxi",
        "uri          /home/u/train @ v1.2",
        "commit       abc123",
        "entry point  main",
        "parameters   lr=0.1 epochs=20",
        "env manager  uv",
        "backend      local",
        "tags         team=ml ci=true",
        "created      2023-11-14T22:13:20.000Z",
        "started      2023-11-14T22:13:21.500Z",
        "ended        2023-11-14T22:13:24.000Z",
        "duration     2.50 s",
        "outputs      model=/runs/model.pkl",
        "why          ran: code changed",
        "log          /runs/3f2a/output.log",
    ]


def test_status_of_a_bare_run_has_only_the_rows_it_can_fill(plain: Text) -> None:
    assert status_lines(plain, RunRecord(run_id="abcd")) == [
        "run         abcd",
        "status      NotStarted",
        "experiment  Default",
        "backend     local",
    ]


def test_empty_values_and_mappings_are_left_out(plain: Text) -> None:
    record = RunRecord(
        run_id="abcd", error="", run_name="", commit="", parameters={}, tags={}, outputs={}, version="v2"
    )
    keys = [line.split()[0] for line in status_lines(plain, record)]
    assert keys == ["run", "status", "experiment", "backend"]  # a version without a URI is not shown


def test_a_uri_without_a_version_is_shown_alone(plain: Text) -> None:
    lines = status_lines(plain, RunRecord(run_id="abcd", uri="https://github.com/o/r"))
    assert "uri         https://github.com/o/r" in lines


def test_exit_code_zero_is_shown_with_the_status(plain: Text) -> None:
    record = RunRecord(run_id="abcd", status=RunStatus.FINISHED, exit_code=0)
    assert status_lines(plain, record)[1] == "status      Finished (exit code 0)"


def test_a_reused_step_says_where_from_and_not_why(plain: Text) -> None:
    record = step(
        "train", RunStatus.FINISHED, run_id="abcd", reused_from="9" * 32, reason="reused: same inputs"
    )
    lines = status_lines(plain, record)
    assert lines[-1] == f"reused from  {'9' * 32}"
    assert not any(line.startswith("why") for line in lines)
    assert lines[0] == "run          abcd"  # padded to "reused from"


def test_duration_is_shown_once_started_even_without_an_end(plain: Text) -> None:
    never = status_lines(plain, RunRecord(run_id="abcd", status=RunStatus.FAILED, created_at=T0))
    assert not any(line.startswith("duration") for line in never)
    lost = RunRecord(run_id="abcd", status=RunStatus.FAILED, created_at=T0, started_at=T0 + 1)
    assert "duration    -" in status_lines(plain, lost)


def test_duration_of_a_running_run_counts_up_to_now(plain: Text) -> None:
    record = RunRecord(run_id="abcd", status=RunStatus.RUNNING, started_at=1.0)  # started in 1970
    (duration,) = [line for line in status_lines(plain, record) if line.startswith("duration")]
    assert re.fullmatch(r"duration    \d+h\d\dm\d\ds", duration)


def test_text_from_a_run_is_escaped_in_status(plain: Text) -> None:
    record = RunRecord(
        run_id="abcd",
        error=f"e{HOSTILE}",
        run_name=f"n{HOSTILE}",
        experiment=f"x{HOSTILE}",
        parameters={"p": f"v{HOSTILE}"},
        tags={f"t{HOSTILE}": "v\n2"},
        reason="line\nbreak",
    )
    lines = status_lines(plain, record)
    assert "\x1b" not in "".join(lines)
    assert "\x07" not in "".join(lines)
    assert lines[2:5] == [f"error       e{SHOWN}", f"name        n{SHOWN}", f"experiment  x{SHOWN}"]
    assert f"parameters  p=v{SHOWN}" in lines
    assert f"tags        t{SHOWN}=v\\n2" in lines
    assert "why         line\\nbreak" in lines


def test_status_keys_are_dim_and_the_status_bold_in_colour_on_a_terminal(coloured: Text) -> None:
    record = RunRecord(run_id="abcd", status=RunStatus.RUNNING, exit_code=None)
    assert status_lines(coloured, record) == [
        "\x1b[2mrun       \x1b[0m  abcd",
        "\x1b[2mstatus    \x1b[0m  \x1b[1;34mRunning\x1b[0m",
        "\x1b[2mexperiment\x1b[0m  Default",
        "\x1b[2mbackend   \x1b[0m  local",
    ]


def test_force_color_colours_status_on_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    lines = status_lines(Text(io.StringIO()), RunRecord(run_id="abcd", status=RunStatus.QUEUED))
    assert lines[1] == "\x1b[2mstatus    \x1b[0m  \x1b[1;36mQueued\x1b[0m"


# --- table_lines -------------------------------------------------------------------------------------------


def test_a_table_without_rows_is_its_header(plain: Text) -> None:
    assert table_lines(plain, ["A", "STATUS", "LAST"], []) == ["A  STATUS  LAST"]


def test_columns_are_padded_to_their_widest_cell_but_not_the_last(plain: Text) -> None:
    lines = table_lines(plain, ["ID", "STATUS", "NOTE"], [["a", "Finished", "x"], ["long-id", "-", ""]])
    assert lines == [
        "ID       STATUS    NOTE",
        "a        Finished  x",
        "long-id  -",  # no trailing spaces for an empty last cell
    ]


def test_cells_are_escaped_before_they_are_measured(plain: Text) -> None:
    lines = table_lines(plain, ["NAME", "S"], [["\x1b", "x"], ["ab", "y"]])
    assert lines == ["NAME  S", "\\x1b  x", "ab    y"]


def test_only_the_status_column_gets_a_rows_style(coloured: Text) -> None:
    lines = table_lines(
        coloured, ["ID", "STATUS", "END"], [["a", "Failed", "z"], ["b", "Finished", "z"]], ["31", ""]
    )
    assert lines == [
        "\x1b[1mID  STATUS    END\x1b[0m",
        "a   \x1b[31mFailed  \x1b[0m  z",
        "b   Finished  z",
    ]


def test_row_styles_are_ignored_without_colour(plain: Text) -> None:
    assert table_lines(plain, ["ID", "STATUS"], [["a", "Failed"]], ["31"]) == ["ID  STATUS", "a   Failed"]


# --- runs_lines --------------------------------------------------------------------------------------------


def test_the_runs_table(plain: Text, central_european_time: None) -> None:
    records = [
        full_record(),
        RunRecord(run_id="b" * 32, status=RunStatus.RUNNING, experiment="Default", uri=None),
    ]
    assert runs_lines(plain, records) == [
        "RUN ID        STATUS   NAME     KIND     EXPERIMENT  ENTRY  CREATED                  DURATION  URI",
        "3f2a3f2a3f2a  Failed   nightly  project  taxi        main   2023-11-14 23:13:20 CET  2.50 s    "
        "/home/u/train (v1.2)",  # local time with its zone; the version asked
        "bbbbbbbbbbbb  Running           project  Default            -                        -",
    ]


def test_the_runs_table_escapes_names_and_colours_statuses(
    coloured: Text, central_european_time: None
) -> None:
    records = [
        RunRecord(run_id="a" * 32, status=RunStatus.FINISHED, run_name=HOSTILE, created_at=T0 + 0.9999),
        RunRecord(run_id="c" * 32, status=RunStatus.CANCEL_REQUESTED, experiment="e\tf"),
    ]
    header, first, second = runs_lines(coloured, records)
    assert header.startswith("\x1b[1mRUN ID  ") and header.endswith("URI\x1b[0m")
    assert first == (
        f"aaaaaaaaaaaa  \x1b[32mFinished       \x1b[0m  {SHOWN}  project  Default            "
        "2023-11-14 23:13:20 CET  -"
    )
    assert second.startswith("cccccccccccc  \x1b[33mCancelRequested\x1b[0m  ")
    assert "  e\\tf  " in second


def test_no_runs_is_just_the_header(plain: Text) -> None:
    assert runs_lines(plain, []) == ["RUN ID  STATUS  NAME  KIND  EXPERIMENT  ENTRY  CREATED  DURATION  URI"]


# --- steps_lines -------------------------------------------------------------------------------------------


def steps_row(name: str, status: str, duration: str, run_id: str, why: str) -> str:
    return f"{name:<17}  {status:<8}  {duration:<8}  {run_id:<32}  {why}".rstrip()


def pipeline_steps() -> list[RunRecord]:
    """A pipeline's step runs in the order they were made: `train` failed, then `report` was reused,
    then `train` was retried."""
    ran = {"started_at": T0, "ended_at": T0 + 10, "reason": "ran: no previous run"}
    failed = {"attempt": 1, "started_at": T0, "ended_at": T0 + 5, "error": "the command exited with code 1"}
    retried = {"attempt": 2, "started_at": T0, "ended_at": T0 + 75, "reason": "ran: retry 2 of 2"}
    steps = [
        step("prep", RunStatus.FINISHED, "1" * 32, **ran),
        step("train", RunStatus.FAILED, "2" * 32, reason="ran: code changed", **failed),
        step("report", RunStatus.FINISHED, "4" * 32, reused_from="9" * 32, reason="reused: same inputs"),
        step("train", RunStatus.FINISHED, "3" * 32, **retried),
    ]
    return [record.evolve(created_at=T0 + index) for index, record in enumerate(steps)]


PIPELINE_STEPS_TABLE = [
    steps_row("STEP", "STATUS", "DURATION", "RUN ID", "REUSED / WHY"),
    steps_row("prep", "Finished", "10.0 s", "1" * 32, "no previous run"),
    steps_row("train", "Failed", "5.00 s", "2" * 32, "the command exited with code 1"),
    steps_row("train (attempt 2)", "Finished", "1m15s", "3" * 32, "retry 2 of 2"),
    steps_row("report", "Finished", "-", "4" * 32, f"reused from {'9' * 32}"),
]


def test_a_pipelines_steps_keep_their_attempts_together(plain: Text) -> None:
    assert steps_lines(plain, pipeline_steps()) == PIPELINE_STEPS_TABLE


@pytest.mark.parametrize(
    ("status", "error", "reason", "why"),
    [
        (RunStatus.FAILED, "exit 2", "ran: code changed", "exit 2"),
        (RunStatus.SKIPPED, "train Failed", "train Failed", "train Failed"),
        (RunStatus.CANCELED, "canceled by mlproj cancel", None, "canceled by mlproj cancel"),
        (RunStatus.FAILED, None, "ran: code changed", "code changed"),
        (RunStatus.FINISHED, "stale error", "ran: parameters.lr", "parameters.lr"),
        (RunStatus.RUNNING, None, "forced: ran: again", "forced: ran: again"),
        (RunStatus.QUEUED, None, None, ""),
    ],
)
def test_why_a_step_ran_or_what_went_wrong(
    plain: Text, status: RunStatus, error: str | None, reason: str | None, why: str
) -> None:
    (_header, row) = steps_lines(plain, [step("s", status, "5" * 32, error=error, reason=reason)])
    assert row == f"s     {status.value:<{max(6, len(status.value))}}  -         {'5' * 32}  {why}".rstrip()


def test_step_errors_and_names_are_escaped_and_statuses_coloured(coloured: Text) -> None:
    steps = [step(None, RunStatus.FAILED, "6" * 32, error=HOSTILE), step("b", RunStatus.SKIPPED, "7" * 32)]
    header, first, second = steps_lines(coloured, steps)
    assert header == f"\x1b[1mSTEP  STATUS   DURATION  {'RUN ID':<32}  REUSED / WHY\x1b[0m"
    assert first == f"      \x1b[31mFailed \x1b[0m  -         {'6' * 32}  {SHOWN}"
    assert second == f"b     \x1b[2mSkipped\x1b[0m  -         {'7' * 32}"


# --- the board ----------------------------------------------------------------------------------------------


def test_the_board_on_a_non_terminal_prints_only_its_final_table(tmp_path: Path) -> None:
    console = rich_console(terminal=False)
    log = tmp_path / "output.log"
    log.write_text("epoch 1\nepoch 2 loss=0.3\n\n")
    steps = [
        step("prep", RunStatus.FINISHED, started_at=T0, ended_at=T0 + 75, reason="ran: no previous run"),
        step("train", RunStatus.RUNNING, log_path=str(log), reason="ran: code changed"),
        step("report", RunStatus.FINISHED, reused_from="9" * 32),
        step(None, RunStatus.NOT_STARTED, run_id="abcdef12" * 4, log_path=str(log)),
    ]
    with board(console) as view:
        view.refresh(steps)
        view.refresh(steps)
        assert written(console) == ""
    lines = [line.rstrip() for line in written(console).splitlines()]
    assert re.fullmatch(rf"taxi  run {RUN_ID}  \d+\.\d\d s", lines[0])
    assert lines[1:] == [
        "STEP      STATUS      DURATION  REUSED / WHY          LAST LINE",
        "prep      Finished    1m15s     no previous run",
        "train     Running     -         code changed          epoch 2 loss=0.3",
        "report    Finished    -         reused from 99999999",
        "abcdef12  NotStarted  -",
    ]


def test_the_board_shows_iterations_under_their_loop_and_a_parallel_job_s_batches(tmp_path: Path) -> None:
    console = rich_console(terminal=False)
    (tmp_path / "score").mkdir()
    (tmp_path / "score" / "output.log").write_text("working\n")
    (tmp_path / "score" / "progress.json").write_text('{"done": 3, "total": 10, "failed": 1}')
    steps = [
        step("loop", RunStatus.RUNNING),
        step("loop.0", RunStatus.FINISHED, run_id="1" * 32),
        step("loop.1", RunStatus.RUNNING, run_id="2" * 32),
        step(
            "score",
            RunStatus.RUNNING,
            run_id="3" * 32,
            run_dir=str(tmp_path / "score"),
            log_path=str(tmp_path / "score" / "output.log"),
        ),
        step("stage.10", RunStatus.NOT_STARTED, run_id="4" * 32),  # no step `stage`: not an iteration
    ]
    with board(console) as view:
        view.refresh(steps)
    lines = [line.rstrip() for line in written(console).splitlines()]
    assert lines[2:] == [
        "loop      Running     -",
        "  loop.0  Finished    -",
        "  loop.1  Running     -",
        "score     Running     -                       mini-batches 3/10 done, 1 failed",
        "stage.10  NotStarted  -",
    ]


def test_a_board_without_a_title_is_headed_pipeline() -> None:
    console = rich_console(terminal=False)
    with board(console, title="", run_id="r1") as view:
        view.refresh([])
    assert written(console).startswith("pipeline  run r1  ")


def test_the_board_escapes_hostile_names_titles_reasons_and_log_lines(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_bytes(f"ok\n[bold]{HOSTILE}[/bold]\n".encode())
    steps = [step(f"s{HOSTILE}", RunStatus.RUNNING, log_path=str(log), reason=f"ran: {HOSTILE}")]
    console = rich_console(terminal=True, width=200)
    with board(console, title=f"t{HOSTILE}") as view:
        view.refresh(steps)
    text = written(console)
    assert "\x1b[2J" not in text and "\x1b[31m" not in text and "\x07" not in text
    assert f"t{SHOWN}" in text
    assert f"s{SHOWN}" in text
    assert f"[bold]{SHOWN}[/bold]" in text  # not taken for rich markup either


def test_the_board_on_a_terminal_colours_each_status() -> None:
    steps = [
        step("a", RunStatus.FINISHED),
        step("b", RunStatus.FAILED),
        step("c", RunStatus.PREPARING),
        step("d", RunStatus.SKIPPED),
    ]
    console = rich_console(terminal=True)
    with board(console) as view:
        view.refresh(steps)
    text = written(console)
    assert "\x1b[1;32mFinished" in text
    assert "\x1b[1;31mFailed" in text
    assert "\x1b[1;36mPreparing" in text
    assert "\x1b[1;2mSkipped" in text


def test_a_big_pipeline_shows_its_unfinished_steps_and_counts_the_others() -> None:
    steps = [step(f"finished_{i:02d}", RunStatus.FINISHED, run_id=f"{i:032d}") for i in range(MAX_ROWS)]
    steps += [step(f"waiting_{i:02d}", RunStatus.QUEUED, run_id=f"{i + 100:032d}") for i in range(3)]
    console = rich_console(terminal=False)
    with board(console) as view:
        view.refresh(steps)
    rows = [line.split() for line in written(console).splitlines()[2:]]
    assert rows == [
        ["waiting_00", "Queued", "-"],
        ["waiting_01", "Queued", "-"],
        ["waiting_02", "Queued", "-"],
        ["…", "40", "more"],
    ]


def test_the_count_of_hidden_steps_is_never_cut_short() -> None:
    """Short step names: the STEP column is as wide as the "… N more" row needs."""
    steps = [step(f"s{i:02d}", RunStatus.FINISHED, run_id=f"{i:032d}") for i in range(MAX_ROWS + 1)]
    steps.append(step("train", RunStatus.RUNNING, run_id="9" * 32))
    console = rich_console(terminal=False)
    with board(console) as view:
        view.refresh(steps)
    rows = written(console).splitlines()[2:]
    assert [row.split()[:2] for row in rows] == [["train", "Running"], ["…", "41"]]
    assert rows[1].rstrip() == "… 41 more"


def test_a_board_of_more_unfinished_steps_than_rows_shows_the_first_ones() -> None:
    steps = [step(f"waiting_{i:02d}", RunStatus.RUNNING, run_id=f"{i:032d}") for i in range(MAX_ROWS + 5)]
    console = rich_console(terminal=False)
    with board(console) as view:
        view.refresh(steps)
    rows = [line.split()[0:3] for line in written(console).splitlines()[2:]]
    assert rows == [*([f"waiting_{i:02d}", "Running", "-"] for i in range(MAX_ROWS)), ["…", "5", "more"]]


def test_a_pipeline_of_max_rows_steps_shows_them_all() -> None:
    steps = [step(f"s{i}", RunStatus.FINISHED, run_id=f"{i:032d}") for i in range(MAX_ROWS)]
    console = rich_console(terminal=False)
    with board(console) as view:
        view.refresh(steps)
    names = [line.split()[0] for line in written(console).splitlines()[2:]]
    assert names == [f"s{i}" for i in range(MAX_ROWS)]


def test_a_long_reason_is_cut_to_leave_room_for_the_log_line() -> None:
    steps = [step("train", RunStatus.RUNNING, reason="ran: " + "parameters.lr changed, " * 10)]
    console = rich_console(terminal=False, width=80)
    with board(console) as view:
        view.refresh(steps)
    row = written(console).splitlines()[2]
    assert len(row) == 80
    assert row.rstrip() == "train  Running  -         parameters.lr ch…"  # 17 of the 52 columns left


def test_the_board_keeps_failures_and_pipeline_lines_above_it_and_drops_the_rest() -> None:
    console = rich_console(terminal=False)
    with board(console) as view:
        view.event("prep: Running (no previous run)")
        view.event("prep: Finished in 1.00 s")
        view.event("train: Failed: the command exited with code 1")
        view.event("report: Skipped: train Failed")
        view.event("pipeline Failed: step train Failed")
        view.event("environment uv abc123 built")
        assert written(console).splitlines() == [
            "train: Failed: the command exited with code 1",
            "report: Skipped: train Failed",
            "pipeline Failed: step train Failed",
        ]


def test_a_failure_line_is_not_taken_for_markup() -> None:
    console = rich_console(terminal=True)
    with board(console) as view:
        view.event("train: Failed: [red]x[/red] [/unbalanced]")
    assert "train: Failed: [red]x[/red] [/unbalanced]" in written(console)


def test_a_failure_line_above_the_board_is_escaped_as_plain_lines_are() -> None:
    """A step's error can be any exception's message: shown escaped, never sent to the terminal."""
    console = rich_console(terminal=True)
    with board(console) as view:
        view.event(f"pipeline Failed: step train Failed: {HOSTILE}")
    text = written(console)
    assert f"pipeline Failed: step train Failed: {SHOWN}" in text
    assert "\x1b[2J" not in text


# --- last_line ----------------------------------------------------------------------------------------------


def test_the_last_line_is_the_last_non_empty_one_stripped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("first\n  second  \n\n   \n")
    assert last_line(step("s", RunStatus.RUNNING, log_path=str(log))) == "second"


def test_a_progress_bar_redrawn_with_carriage_returns_shows_its_last_state(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"10%\r50%\r100%\r")
    assert last_line(step("s", RunStatus.FINISHED, log_path=str(log))) == "100%"


def test_a_long_last_line_is_cut_with_an_ellipsis(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("0123456789abc\n")
    record = step("s", RunStatus.RUNNING, log_path=str(log))
    assert last_line(record, width=10) == "012345678…"
    assert last_line(record, width=13) == "0123456789abc"


def test_only_the_tail_of_a_big_log_is_read_and_bad_bytes_are_replaced(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"x" * 10_000 + b"\nthe end \xff\n")
    assert last_line(step("s", RunStatus.RUNNING, log_path=str(log))) == "the end \ufffd"


def test_a_log_line_longer_than_the_tail_is_shown_from_its_end(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("a" * 5000 + "z\n")
    shown = last_line(step("s", RunStatus.RUNNING, log_path=str(log)), width=4096)
    assert shown == "a" * 2046 + "z"


@pytest.mark.parametrize(
    "changes",
    [
        {"status": RunStatus.FINISHED, "reused_from": "9" * 32},
        {"status": RunStatus.RUNNING, "log_path": None},
        {"status": RunStatus.NOT_STARTED},
        {"status": RunStatus.RUNNING, "log_path": "/nonexistent/output.log"},
    ],
    ids=["reused", "no-log", "not-started", "missing-log"],
)
def test_no_last_line_without_a_log_of_its_own(tmp_path: Path, changes: dict[str, Any]) -> None:
    log = tmp_path / "log"
    log.write_text("something\n")
    record = step("s", RunStatus.RUNNING, log_path=str(log)).evolve(**changes)
    assert last_line(record) == ""


# --- make_view ---------------------------------------------------------------------------------------------


def test_a_pipe_gets_plain_lines() -> None:
    stream = io.StringIO()
    view = make_view(stream, plain=False, title="t", run_id="r")
    assert isinstance(view, PlainView)
    view.event(f"train: Failed: {HOSTILE}")
    view.refresh([])
    view.close()
    assert stream.getvalue() == f"train: Failed: {SHOWN}\n"


def test_a_terminal_gets_plain_lines_when_asked_or_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_view(Terminal(), plain=True), PlainView)
    monkeypatch.setenv("NO_COLOR", "1")
    assert isinstance(make_view(Terminal(), plain=False), PlainView)


def test_a_terminal_gets_the_board_on_its_own_rich_console(monkeypatch: pytest.MonkeyPatch) -> None:
    on_stdout, on_stderr = rich_console(terminal=False), rich_console(terminal=False)
    use_rich(monkeypatch, stderr=False, console=on_stdout)
    use_rich(monkeypatch, stderr=True, console=on_stderr)
    view = make_view(Terminal(), plain=False, title="taxi", run_id="r1")
    assert isinstance(view, BoardView)
    view.close()
    assert (view.console, view.title, view.run_id) == (on_stdout, "taxi", "r1")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    view = make_view(terminal, plain=False)
    assert isinstance(view, BoardView)
    view.close()
    assert view.console is on_stderr
    assert terminal.getvalue() == ""


def test_force_color_gets_the_board_on_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    use_rich(monkeypatch, stderr=False, console=rich_console(terminal=False))
    view = make_view(io.StringIO(), plain=False)
    assert isinstance(view, BoardView)
    view.close()


# --- status --watch -----------------------------------------------------------------------------------------


def pipeline_record(**changes: Any) -> RunRecord:
    return RunRecord(run_id="p" * 32, kind=RunKind.PIPELINE, created_at=T0, **changes)


def test_watching_a_finished_pipeline_shows_it_and_its_steps(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # the watch lines are never coloured
    ended = {"status": RunStatus.FINISHED, "exit_code": 0, "started_at": T0, "ended_at": T0 + 95}
    store.insert(pipeline_record(run_name="taxi", uri="/pipes/taxi.yml", **ended))
    for record in pipeline_steps():
        store.insert(record.evolve(parent_run_id="p" * 32))
    assert watch_lines(store, "p" * 32) == [
        f"run         {'p' * 32}",
        "status      Finished (exit code 0)",
        "name        taxi",
        "experiment  Default",
        "uri         /pipes/taxi.yml",
        "backend     local",
        "created     2023-11-14T22:13:20.000Z",
        "started     2023-11-14T22:13:20.000Z",
        "ended       2023-11-14T22:14:55.000Z",
        "duration    1m35s",
        "",
        *PIPELINE_STEPS_TABLE,
    ]


def test_watching_a_project_run_shows_no_steps_table(store: Store) -> None:
    store.insert(RunRecord(run_id="a" * 32, status=RunStatus.CANCELED, error=HOSTILE, created_at=T0))
    assert watch_lines(store, "a" * 32) == [
        f"run         {'a' * 32}",
        "status      Canceled",
        f"error       {SHOWN}",
        "experiment  Default",
        "backend     local",
        "created     2023-11-14T22:13:20.000Z",
    ]


def test_watching_a_supervised_pipeline_shows_it_as_it_is(store: Store) -> None:
    me = os.getpid()
    store.insert(
        pipeline_record(status=RunStatus.RUNNING, supervisor_pid=me, supervisor_identity=process.identity(me))
    )
    store.insert(step("prep", RunStatus.RUNNING, "1" * 32, parent_run_id="p" * 32, created_at=T0))
    lines = watch_lines(store, "p" * 32)
    assert lines[1] == "status      Running"
    assert lines[-2:] == [
        f"STEP  STATUS   DURATION  {'RUN ID':<32}  REUSED / WHY",
        f"prep  Running  -         {'1' * 32}",
    ]


def test_watching_a_pipeline_whose_supervisor_is_gone_shows_it_failed(store: Store) -> None:
    gone = {"supervisor_pid": 999_999_999, "supervisor_identity": "boot:1"}
    store.insert(pipeline_record(status=RunStatus.RUNNING, started_at=T0, **gone))
    store.insert(
        step("prep", RunStatus.RUNNING, "1" * 32, parent_run_id="p" * 32, created_at=T0, started_at=T0)
    )
    store.insert(step("train", RunStatus.QUEUED, "2" * 32, parent_run_id="p" * 32, created_at=T0 + 1))
    lines = watch_lines(store, "p" * 32)
    assert lines[1:3] == [
        "status      Failed",
        "error       the supervising process (pid 999999999) is gone: mlproj was killed or the machine "
        "restarted; what was left of the run's processes was ended",
    ]
    why = "the pipeline's supervising process (pid 999999999) is gone"
    assert [line.split("  ")[0] for line in lines[-2:]] == ["prep", "train"]
    assert lines[-2].endswith(f"{'1' * 32}  {why}")
    assert lines[-1].endswith(f"{'2' * 32}  never started: {why}")
    assert "Failed" in lines[-2] and "Skipped" in lines[-1]
    assert store.get("p" * 32).status is RunStatus.FAILED  # reconciled, not only shown


# --- environment and download progress ----------------------------------------------------------------------


def test_environment_progress_on_a_pipe_is_one_line_per_step() -> None:
    stream = io.StringIO()
    progress = BuildProgress(stream)
    progress.update(None)
    assert stream.getvalue() == ""
    progress.update("dependencies: Collecting numpy")
    progress.update("dependencies: Installing numpy")
    progress.update("build dependencies")
    progress.update("dependencies")
    progress.update(None)
    assert stream.getvalue() == (
        "Preparing environment: dependencies\n"
        "Preparing environment: build dependencies\n"
        "Preparing environment: dependencies\n"
    )


def test_environment_progress_on_a_terminal_is_one_live_line(monkeypatch: pytest.MonkeyPatch) -> None:
    console = rich_console(terminal=True)
    use_rich(monkeypatch, stderr=True, console=console)
    stream = Terminal()
    progress = BuildProgress(stream)
    progress.update("waiting for another run building this uv environment")
    progress.update("dependencies")
    progress.update(None)
    progress.update(None)
    assert stream.getvalue() == ""  # the live line is on the rich console, not the plain stream
    text = written(console)
    assert "Preparing environment: dependencies" in text
    assert text.count("\x1b[?25l") == text.count("\x1b[?25h") == 1  # started once, stopped once


def test_environment_progress_shows_the_phase_escaped_and_ends_with_what_the_build_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The phase is text, not rich markup (`requests[socks]`, `[/bar]`), and what it holds of the
    terminal's control characters is shown escaped; the installer's own line is not shown (it is in
    the run log); the display ends with one line saying what the build took."""
    console = rich_console(terminal=True)
    use_rich(monkeypatch, stderr=True, console=console)
    stream = Terminal()
    progress = BuildProgress(stream)
    progress.update("requests[socks] [/bar] \x1b]0;title\x07: Collecting pandas (WARNING: a long warning)")
    progress.update("environment built in 3.3 s (uv, 12 packages)")
    text = written(console)
    assert "Preparing environment: requests[socks] [/bar] \\x1b]0;title\\x07 (0 s)" in text
    assert "\x1b]0;" not in text and "Collecting" not in text and "WARNING" not in text
    assert "environment built in 3.3 s (uv, 12 packages)\n" in stream.getvalue()
    plain = io.StringIO()
    BuildProgress(plain).update("\x1b[2Jdependencies: x")
    assert plain.getvalue() == "Preparing environment: \\x1b[2Jdependencies\n"


def test_a_download_named_with_brackets_or_control_characters_is_shown_escaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = rich_console(terminal=True)
    use_rich(monkeypatch, stderr=True, console=console)
    progress = DownloadProgress(Terminal())
    progress("/data/[/raw]/big\x1b[31m.bin", 96 * MIB, 128 * MIB)  # a file:// URI may hold "[/raw]"
    progress.close()
    text = written(console)
    assert "Downloading /data/[/raw]/big\\x1b[31m.bin: 96.0 MiB of 128.0 MiB" in text
    stream = io.StringIO()
    DownloadProgress(stream)("/tmp/\x1bx", 96 * MIB, None)
    assert stream.getvalue() == "Downloading /tmp/\\x1bx\n"


def test_small_downloads_show_nothing() -> None:
    stream = io.StringIO()
    progress = DownloadProgress(stream)
    progress("data.csv", 10 * MIB, 63 * MIB)
    progress("data.csv", 63 * MIB, None)
    progress.close()
    assert stream.getvalue() == ""


def test_a_big_download_on_a_pipe_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    progress = DownloadProgress(stream)
    monkeypatch.setattr(progress, "REFRESH", 0.0)
    progress("data.csv", 1 * MIB, 128 * MIB)  # shown from the start: the whole is big
    assert stream.getvalue() == "Downloading data.csv (128.0 MiB)\n"
    progress("data.csv", 64 * MIB, 128 * MIB)
    progress("data.csv", 128 * MIB, 128 * MIB)
    progress("https://h/stream", 64 * MIB, None)
    progress("https://h/stream", 70 * MIB, None)
    progress.close()
    assert stream.getvalue() == "Downloading data.csv (128.0 MiB)\nDownloading https://h/stream\n"


def test_download_updates_come_at_most_every_refresh_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    progress = DownloadProgress(stream)
    monkeypatch.setattr(progress, "REFRESH", 3600.0)
    progress("a.bin", 64 * MIB, None)
    progress("b.bin", 64 * MIB, None)  # within the interval: not shown yet
    assert stream.getvalue() == "Downloading a.bin\n"


def test_a_big_download_on_a_terminal_is_a_live_line(monkeypatch: pytest.MonkeyPatch) -> None:
    console = rich_console(terminal=True)
    use_rich(monkeypatch, stderr=True, console=console)
    stream = Terminal()
    progress = DownloadProgress(stream)
    progress("data.csv", 96 * MIB, 128 * MIB)
    progress.close()
    progress.close()
    assert stream.getvalue() == ""
    text = written(console)
    assert "Downloading data.csv: 96.0 MiB of 128.0 MiB" in text
    assert text.count("\x1b[?25l") == text.count("\x1b[?25h") == 1
