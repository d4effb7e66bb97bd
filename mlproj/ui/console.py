"""Everything a person sees goes through here: one `Console` per command (hatch's `Application` is the
model) holding stdout and stderr, styled with ANSI codes only on a terminal (`NO_COLOR` and `FORCE_COLOR`
honoured), the one-line messages, the JSON documents, and rich for the live views, imported only when
one is shown (importing rich costs about as much as the whole budget of `status`).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing's, not imported on the way to a command (start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TextIO

    from rich.console import Console as RichConsole

# Status names (design.md §3) and the ANSI code each is shown in; also told by the word itself.
STATUS_STYLES = {
    "Finished": "32",  # green
    "Failed": "31",  # red
    "Canceled": "33",  # yellow
    "CancelRequested": "33",
    "Skipped": "2",  # dim
    "Running": "34",  # blue
    "Preparing": "36",  # cyan
    "Queued": "36",
    "NotStarted": "2",
}
_RICH: dict[bool, RichConsole] = {}


def printable(text: str) -> str:
    """Text from a run (a name, an error, a tag) made safe to print: control characters, ANSI escapes
    included, are shown escaped (`\\x1b`), never sent to the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def wants_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


class Text:
    """One stream a person reads, styled when it is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.color = wants_color(self.stream)

    def style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and code else text

    def status(self, status: str) -> str:
        """A status name, bold in its colour."""
        return self.style(str(status), "1;" + STATUS_STYLES.get(str(status), ""))

    def print(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def bytes(self) -> Callable[[bytes], None]:
        """A writer of raw bytes (a run's output) to this stream."""
        buffer = getattr(self.stream, "buffer", None)

        def write(data: bytes) -> None:
            if buffer is not None:
                self.stream.flush()
                buffer.write(data)
                buffer.flush()
            else:
                self.stream.write(data.decode("utf-8", errors="replace"))
                self.stream.flush()

        return write


class Console:
    """What one command shows: results on stdout (`out`), everything meant for people on stderr
    (`err`; with `--json`, the workload's output too), and exactly one JSON document on stdout with
    `--json`."""

    def __init__(
        self, *, as_json: bool = False, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.as_json = as_json
        self.out = Text(out if out is not None else sys.stdout)
        self.err = Text(err if err is not None else sys.stderr)

    @property
    def output(self) -> Text:
        """Where a run's own output goes: stdout, or stderr when stdout carries the JSON document."""
        return self.err if self.as_json else self.out

    def print(self, text: str = "") -> None:
        self.out.print(text)

    def note(self, text: str) -> None:
        """A line for people, on stderr."""
        self.err.print(text)

    def error(self, text: str) -> None:
        self.err.print(f"mlproj: error: {text}")

    def json(self, document: Any) -> None:
        """The one JSON document on stdout."""
        import json

        self.out.stream.write(json.dumps(document, indent=2) + "\n")
        self.out.stream.flush()


def rich_console(*, stderr: bool = False) -> RichConsole:
    """The one rich console of a stream, for the live views (made on first use)."""
    if stderr not in _RICH:
        from rich.console import Console as RichConsole

        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() else 200  # tables piped to a file or a program are not squeezed
        _RICH[stderr] = RichConsole(stderr=stderr, highlight=False, soft_wrap=False, width=width)
    return _RICH[stderr]


class PlainView:
    """A pipeline's events as they come, one line each (a pipe, a CI log, `--json`, the Python API)."""

    redraws = False  # it shows no table while the pipeline runs: nobody builds one for it

    def __init__(self, out: Text) -> None:
        self.out = out

    def event(self, line: str) -> None:
        self.out.print(printable(line))

    def refresh(self, steps: Sequence[object]) -> None:  # noqa: ARG002 - the view interface's
        return

    def close(self) -> None:
        return


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    # Rounded first, then the unit chosen, so that 9.999 s is "10.0 s" and 59.96 s is "1m00s".
    if round(seconds, 2) < 10:
        return f"{seconds:.2f} s"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds + 0.5) if seconds < 60 else int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
