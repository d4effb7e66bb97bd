"""The one rich Console for everything a person sees in a layout (created on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

_CONSOLES: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    if stderr not in _CONSOLES:
        from rich.console import Console

        _CONSOLES[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=False)
    return _CONSOLES[stderr]
