"""What a person sees while an environment is prepared: one rich status line on a terminal, plain
lines otherwise. Nothing is imported until the first update (most runs reuse their environment)."""

from __future__ import annotations

from typing import Any, TextIO

from mlproj.ui.text import Text


class BuildProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._status: Any = None
        self._last_step: str | None = None
        self._plain: Text | None = None

    def update(self, text: str | None) -> None:
        """Show `text`; None ends the display (the workload is about to start)."""
        if text is None:
            if self._status is not None:
                self._status.stop()
                self._status = None
            return
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

            from mlproj.ui.console import console

            self._status = Status("", console=console(stderr=True))
            self._status.start()
        self._status.update(f"Preparing environment: {text}")
