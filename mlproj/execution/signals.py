"""What Ctrl-C and SIGTERM/SIGHUP ask of a supervisor, and how a stop is told apart from a failure."""

from __future__ import annotations

import signal
from types import FrameType

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

_STOP_SIGNALS = ("SIGTERM", "SIGHUP")


class Canceled(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignalFlags:
    """What Ctrl-C (SIGINT) and SIGTERM/SIGHUP asked, noted by handlers installed in the main thread
    and read by the supervisors' loops (a pipeline's steps share their pipeline's)."""

    def __init__(self) -> None:
        self.interrupts = 0  # Ctrl-C presses so far
        self.stop_signal: str | None = None

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002 - a signal handler's signature
        self.interrupts += 1

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002 - a signal handler's signature
        self.stop_signal = signal.Signals(signum).name

    def install(self) -> dict[int, Any]:
        """Install the handlers (in the main thread only); returns what they replaced."""
        try:
            previous: dict[int, Any] = {signal.SIGINT: signal.signal(signal.SIGINT, self._on_interrupt)}
        except ValueError:  # not the main thread: only it may (a program running mlproj in a thread)
            return {}
        for name in _STOP_SIGNALS:
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, self._on_stop_signal)
        return previous

    @staticmethod
    def restore(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class InterruptCounter:
    """One supervisor's view of the Ctrl-C presses: each one not yet acted on begins a stop, or
    climbs the ladder a rung at once."""

    def __init__(self, flags: SignalFlags) -> None:
        self.flags = flags
        self.handled = 0

    def pressed(self) -> bool:
        """True once per Ctrl-C not yet acted on."""
        if self.flags.interrupts > self.handled:
            self.handled += 1
            return True
        return False
