"""What a person sees while an environment is prepared: one rich status line on a terminal, plain
lines otherwise. Nothing is imported until the first update (most runs reuse their environment)."""

from __future__ import annotations

from mlproj.ui.console import Text, printable

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any, TextIO


BUILT = "environment built in "  # the line that ends a build's display (PreparedEnv.built_line)


class BuildProgress:
    """The phase of an environment build (`installing requirements`) and how long it has taken: one
    live line on a terminal, one plain line per phase elsewhere. The installer's own lines are in the
    run log (a warning of pip's must not wrap over the display)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._status: Any = None
        self._last_step: str | None = None
        self._plain: Text | None = None
        self._started: float | None = None

    def update(self, text: str | None) -> None:
        """Show the phase `text` (shown escaped, never as markup); `environment built in …` ends the
        display with that line, None without one (the workload is about to start)."""
        import time

        if text is None or text.startswith(BUILT):
            if self._status is not None:
                self._status.stop()
                self._status = None
            if text is not None:  # what the build took, on one line that stays
                (self._plain or Text(self.stream)).print(printable(text))
            return
        if self._started is None:
            self._started = time.monotonic()
        step = printable(text).split(": ", 1)[0]
        if self._plain is None:
            self._plain = Text(self.stream)
        if self._plain.color:
            self._show_live(f"{step} ({time.monotonic() - self._started:.0f} s)")
            return
        if step != self._last_step:  # plain output: one line per phase
            self._last_step = step
            self._plain.print(f"Preparing environment: {step}")

    def _show_live(self, text: str) -> None:
        if self._status is None:
            from rich.status import Status

            from mlproj.ui.console import rich_console as console

            self._status = Status("", console=console(stderr=True))
            self._status.start()
        self._status.update(_plain_text(f"Preparing environment: {text}"))


class DownloadProgress:
    """What a person sees of a big download (a `path` parameter given as a URI): from SHOWN_FROM bytes
    on, a live line on a terminal, or one line when it starts elsewhere. Names are shown escaped."""

    SHOWN_FROM = 64 * 2**20
    REFRESH = 0.1  # seconds between updates of the live line

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._status: Any = None
        self._shown: str | None = None
        self._next = 0.0
        self._text: Text | None = None

    def __call__(self, what: str, done: int, total: int | None) -> None:
        import time

        if max(done, total or 0) < self.SHOWN_FROM or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.REFRESH
        if self._text is None:
            self._text = Text(self.stream)
        what = printable(what)
        of = f" of {_mib(total)}" if total else ""
        line = f"Downloading {what}: {_mib(done)}{of}"
        if self._text.color:
            if self._status is None:
                from rich.status import Status

                from mlproj.ui.console import rich_console as console

                self._status = Status("", console=console(stderr=True))
                self._status.start()
            self._status.update(_plain_text(line))
        elif self._shown != what:
            self._shown = what
            self._text.print(f"Downloading {what}" + (f" ({_mib(total)})" if total else ""))

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _plain_text(line: str) -> Any:
    """A rich Text: a name holding `[...]` is shown as it is, not read as markup."""
    from rich.text import Text as RichText

    return RichText(line)


def _mib(count: int | None) -> str:
    return f"{(count or 0) / 2**20:.1f} MiB"
