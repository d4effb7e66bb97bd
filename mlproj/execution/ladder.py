"""The one stop ladder: interrupt → terminate → kill, with named timeouts (nox's popen.py is the model).

Every stop mlproj makes climbs it: `mlproj cancel` (SIGTERM, SIGKILL after `--grace`), Ctrl-C (SIGINT
first, then the same), `--timeout`, the leftovers of a run whose main process has exited (SIGTERM,
SIGKILL after LEFTOVER_GRACE), and the cleanup of a run whose supervisor is gone. A rung's signal goes to
everything the target still runs; the next rung comes when the rung's time is up, or at once when a
person presses Ctrl-C again.
"""

from __future__ import annotations

import math
import os
import signal
import time

from mlproj.process import INTERRUPT_TIMEOUT, KILL_WAIT, LEFTOVER_GRACE, POLL_INTERVAL
from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Target(Protocol):
        """What a ladder stops: a workload, or a run's processes."""

        def signal(self, sig: int) -> object: ...

        def alive(self) -> bool: ...


@dataclass(frozen=True)
class Rung:
    signal: int
    wait: float  # seconds before the next rung


INTERRUPT_VARIABLE = "MLPROJ_INTERRUPT_TIMEOUT"  # seconds between Ctrl-C's SIGINT and SIGTERM


def interrupt_timeout() -> float:
    """How long a program has to stop after the SIGINT of a Ctrl-C before it gets SIGTERM:
    MLPROJ_INTERRUPT_TIMEOUT (seconds), else INTERRUPT_TIMEOUT."""
    try:
        value = float(os.environ.get(INTERRUPT_VARIABLE, ""))
    except ValueError:
        return INTERRUPT_TIMEOUT
    return value if math.isfinite(value) and value >= 0 else INTERRUPT_TIMEOUT


def rungs(grace: float, *, interactive: bool = False) -> tuple[Rung, ...]:
    """SIGTERM, then SIGKILL after `grace` seconds; SIGINT first (for `interrupt_timeout()`) when a
    person pressed Ctrl-C, so that Python programs get their KeyboardInterrupt."""
    ladder = (Rung(int(signal.SIGTERM), grace), Rung(int(signal.SIGKILL), KILL_WAIT))
    return (Rung(int(signal.SIGINT), interrupt_timeout()), *ladder) if interactive else ladder


LEFTOVERS = rungs(LEFTOVER_GRACE)


class Stop:
    """A stop under way: why (None: leftovers of a run that ended on its own), and where on its ladder."""

    def __init__(self, reason: str | None, ladder: tuple[Rung, ...]) -> None:
        self.reason = reason
        self.ladder = ladder
        self.stage = -1
        self.deadline = 0.0

    @property
    def due(self) -> bool:
        """The current rung's time is up (or no rung was climbed yet)."""
        return self.stage < 0 or time.monotonic() >= self.deadline

    @property
    def exhausted(self) -> bool:
        """The last rung was climbed and its time is up."""
        return self.stage == len(self.ladder) - 1 and self.due

    @property
    def interactive(self) -> bool:
        """A person's stop (Ctrl-C): its first rung is SIGINT."""
        return bool(self.ladder) and self.ladder[0].signal == signal.SIGINT

    @property
    def rung(self) -> Rung | None:
        return self.ladder[self.stage] if self.stage >= 0 else None

    def advance(self, target: Target) -> None:
        """Climb to the next rung now (staying on the last): its signal to everything the target runs."""
        self.stage = min(self.stage + 1, len(self.ladder) - 1)
        rung = self.ladder[self.stage]
        target.signal(rung.signal)
        self.deadline = time.monotonic() + rung.wait

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def climb(target: Target, ladder: tuple[Rung, ...], tick: Callable[[], None] | None = None) -> bool:
    """Stop everything `target` runs, rung by rung, waiting each rung's time for it to end. True when
    nothing is left."""
    stop = Stop(None, ladder)
    while target.alive():
        if stop.due:
            if stop.exhausted:
                return False
            stop.advance(target)
        if tick is not None:
            tick()
        time.sleep(POLL_INTERVAL)
    return True
