"""What a person sees while an environment is prepared: one rich status line on a terminal, plain
lines otherwise. Nothing is imported until the first update (most runs reuse their environment)."""

from __future__ import annotations

from mlproj.ui.console import Text, printable

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any, TextIO


class BuildProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._status: Any = None
        self._last_step: str | None = None
        self._plain: Text | None = None

    def update(self, text: str | None) -> None:
        """Show `text` (an installer's line: shown escaped, never as markup); None ends the display (the
        workload is about to start)."""
        if text is None:
            if self._status is not None:
                self._status.stop()
                self._status = None
            return
        text = printable(text)
        if self._plain is None:
            self._plain = Text(self.stream)
        if self._plain.color:
            self._show_live(text)
            return
        step = text.split(": ", 1)[0]
        if step != self._last_step:  # plain output: one line per step, not per installer line
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
