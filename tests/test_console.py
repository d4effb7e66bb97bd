"""mlproj.ui.console: what decides colour (NO_COLOR, FORCE_COLOR, TERM=dumb, a terminal), the styled
`Text` stream and its raw-bytes writer, the `Console` of a command (stdout for results, stderr for
people, one JSON document), `printable`, `format_duration`, the plain view and the shared rich console."""

from __future__ import annotations

import io
import json
import sys

import pytest

from mlproj.runs.status import RunStatus
from mlproj.ui import console as console_module
from mlproj.ui.console import STATUS_STYLES, Console, PlainView, Text, format_duration, printable, wants_color


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Flushes(io.StringIO):
    """A text stream that counts its flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class NoIsatty:
    """Something with `write` and no `isatty` at all."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        return


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No colour variables from the shell that runs the tests; an ordinary terminal type."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def binary_stream() -> tuple[io.TextIOWrapper, io.BytesIO]:
    raw = io.BytesIO()
    return io.TextIOWrapper(raw, encoding="utf-8", write_through=False), raw


# --- printable ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "plain", "héllo wörld", "漢字 [bold]x[/bold]", "a\\x1b literal backslash"]
)
def test_printable_text_comes_back_unchanged(text: str) -> None:
    assert printable(text) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("bell\x07", "bell\\x07"),
        ("nul\x00end", "nul\\x00end"),
        ("tab\there", "tab\\there"),
        ("two\nlines\r\n", "two\\nlines\\r\\n"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b2J", "csi\\x9b2J"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("é\x1b]0;title\x07é", "é\\x1b]0;title\\x07é"),
    ],
)
def test_control_characters_are_shown_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(text).isprintable()


# --- format_duration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0.0, "0.00 s"),
        (0.123, "0.12 s"),
        (9.99, "9.99 s"),
        (10.0, "10.0 s"),
        (12.34, "12.3 s"),
        (59.94, "59.9 s"),
        (60.0, "1m00s"),
        (75.9, "1m15s"),
        (3599.9, "59m59s"),
        (3600.0, "1h00m00s"),
        (90061.0, "25h01m01s"),
    ],
)
def test_durations_are_shown_in_seconds_then_minutes_then_hours(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


# --- wants_color --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "terminal", "wanted"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"TERM": None}, True, True),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": ""}, True, True),  # empty: as if unset (no-color.org)
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True, False),
        ({"TERM": "dumb"}, True, False),
        ({"TERM": "dumb", "FORCE_COLOR": "1"}, True, True),
    ],
    ids=[
        "terminal",
        "file",
        "no-term",
        "no-color",
        "empty-no-color",
        "force-color-file",
        "no-color-beats-force",
        "dumb",
        "dumb-forced",
    ],
)
def test_colour_is_wanted_on_a_terminal_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None], terminal: bool, wanted: bool
) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    assert wants_color(Terminal() if terminal else io.StringIO()) is wanted


def test_a_stream_without_isatty_gets_colour_only_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wants_color(NoIsatty()) is False  # type: ignore[arg-type]
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert wants_color(NoIsatty()) is True  # type: ignore[arg-type]


# --- Text -------------------------------------------------------------------------------------------------


def test_text_decides_its_colour_from_its_own_stream() -> None:
    assert Text(Terminal()).color is True
    assert Text(io.StringIO()).color is False


def test_text_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    out = Text()
    assert out.stream is sys.stdout
    out.print("to stdout")
    assert capsys.readouterr() == ("to stdout\n", "")


def test_style_wraps_in_an_ansi_code_only_when_coloured() -> None:
    coloured, plain = Text(Terminal()), Text(io.StringIO())
    assert coloured.style("word", "1;31") == "\x1b[1;31mword\x1b[0m"
    assert coloured.style("word", "") == "word"
    assert plain.style("word", "1;31") == "word"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (RunStatus.FINISHED, "32"),
        (RunStatus.FAILED, "31"),
        (RunStatus.CANCELED, "33"),
        (RunStatus.CANCEL_REQUESTED, "33"),
        (RunStatus.SKIPPED, "2"),
        (RunStatus.RUNNING, "34"),
        (RunStatus.PREPARING, "36"),
        (RunStatus.QUEUED, "36"),
        (RunStatus.NOT_STARTED, "2"),
    ],
)
def test_a_status_is_bold_in_its_colour(status: RunStatus, code: str) -> None:
    assert Text(Terminal()).status(status) == f"\x1b[1;{code}m{status.value}\x1b[0m"
    assert Text(io.StringIO()).status(status) == status.value


def test_every_status_has_a_style() -> None:
    assert set(STATUS_STYLES) == {status.value for status in RunStatus}


def test_print_writes_a_line_and_flushes() -> None:
    stream = Flushes()
    out = Text(stream)
    out.print("one")
    out.print()
    assert stream.getvalue() == "one\n\n"
    assert stream.flushes == 2


def test_bytes_go_to_the_buffer_after_the_text_written_before_them() -> None:
    stream, raw = binary_stream()
    out = Text(stream)
    write = out.bytes()
    stream.write("text first, ")  # still in the wrapper's own buffer
    write(b"raw \xff\xfe bytes\n")
    out.print("then text")
    stream.flush()
    assert raw.getvalue() == b"text first, raw \xff\xfe bytes\nthen text\n"


def test_bytes_to_a_stream_without_a_buffer_are_decoded_with_replacements() -> None:
    stream = Flushes()
    write = Text(stream).bytes()
    write("naïve ".encode())
    write(b"\xff end")
    assert stream.getvalue() == "naïve \ufffd end"
    assert stream.flushes == 2


# --- Console --------------------------------------------------------------------------------------------


def test_results_go_to_stdout_and_notes_and_errors_to_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    app = Console(out=out, err=err)
    app.print("3f2a")
    app.note("Run 3f2a queued")
    app.error("no run with ID 'zz'")
    assert out.getvalue() == "3f2a\n"
    assert err.getvalue() == "Run 3f2a queued\nmlproj: error: no run with ID 'zz'\n"


def test_a_runs_output_goes_to_stdout_unless_stdout_carries_json() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert Console(out=out, err=err).output.stream is out
    app = Console(as_json=True, out=out, err=err)
    assert app.output is app.err
    assert app.output.stream is err


def test_json_writes_exactly_one_indented_document_to_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    app = Console(as_json=True, out=out, err=err)
    document = {"run_id": "3f2a", "status": "Finished", "parameters": {"lr": "0.1"}, "exit_code": 0}
    app.json(document)
    text = out.getvalue()
    assert text.startswith('{\n  "run_id": "3f2a",\n')
    assert text.endswith('  "exit_code": 0\n}\n')
    assert json.loads(text) == document  # one document: json.loads refuses anything after it
    assert err.getvalue() == ""


def test_json_escapes_control_characters_and_is_never_coloured() -> None:
    out = Terminal()
    app = Console(as_json=True, out=out, err=io.StringIO())
    assert app.out.color is True
    app.json([{"run_name": "\x1b[2Jred", "tag": "é"}])
    assert "\x1b" not in out.getvalue()
    assert '"\\u001b[2Jred"' in out.getvalue()
    assert json.loads(out.getvalue()) == [{"run_name": "\x1b[2Jred", "tag": "é"}]


def test_each_stream_of_a_console_has_its_own_colour() -> None:
    app = Console(out=io.StringIO(), err=Terminal())
    assert app.out.color is False
    assert app.err.color is True


def test_a_console_defaults_to_the_process_streams(capsys: pytest.CaptureFixture[str]) -> None:
    app = Console()
    assert app.out.stream is sys.stdout
    assert app.err.stream is sys.stderr
    app.print("result")
    app.error("bad")
    assert capsys.readouterr() == ("result\n", "mlproj: error: bad\n")


# --- PlainView ---------------------------------------------------------------------------------------------


def test_the_plain_view_prints_each_event_escaped_on_its_own_line() -> None:
    stream = io.StringIO()
    view = PlainView(Text(stream))
    view.event("train: Running (code changed)")
    view.event("train: Failed: \x1b[2Jboom\nsecond line")
    assert stream.getvalue() == "train: Running (code changed)\ntrain: Failed: \\x1b[2Jboom\\nsecond line\n"


def test_the_plain_view_prints_nothing_on_refresh_or_close() -> None:
    stream = io.StringIO()
    view = PlainView(Text(stream))
    view.refresh([object(), object()])
    view.close()
    assert stream.getvalue() == ""


# --- the shared rich console ------------------------------------------------------------------------------


def test_the_rich_console_of_a_pipe_is_wide_and_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_module, "_RICH", {})
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    first = console_module.rich_console()
    assert console_module.rich_console() is first
    assert first.width == 200
    assert first.stderr is False
    on_stderr = console_module.rich_console(stderr=True)
    assert on_stderr is not first
    assert on_stderr.stderr is True
    assert console_module.rich_console(stderr=True) is on_stderr
