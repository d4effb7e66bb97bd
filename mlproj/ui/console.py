"""The one rich Console for everything a person sees in a layout (created on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

_CONSOLES: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    if stderr not in _CONSOLES:
        import sys

        from rich.console import Console

        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() else 200  # tables piped to a file or a program are not squeezed
        _CONSOLES[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)
    return _CONSOLES[stderr]
