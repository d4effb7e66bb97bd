"""Warnings for people from modules that never print (design.md §1): a project key mlproj does not
know, an entry point that is not run and would not load, a flag that does not apply. The command line
says them on stderr (`mlproj: warning: …`); the Python API raises them as `UserWarning`s. Each is said
once per process."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable

_listeners: list[Callable[[str], None]] = []
_said: set[str] = set()


def warn(message: str) -> None:
    """Say `message` to whoever listens (stderr when nobody does), once."""
    if message in _said:
        return
    _said.add(message)
    if not _listeners:
        sys.stderr.write(f"mlproj: warning: {message}\n")
        return
    for listener in _listeners:
        listener(message)


def listen(listener: Callable[[str], None]) -> Callable[[], None]:
    """Send warnings to `listener` until the returned function is called."""
    _listeners.append(listener)

    def stop() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return stop


def forget() -> None:
    """Let every message be said again (tests; a long-lived process between requests)."""
    _said.clear()
