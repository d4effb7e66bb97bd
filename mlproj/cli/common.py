"""What the commands share: the store, record lookup, JSON output, streaming to the terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.store import Store

run_id_argument = click.argument("run_id", metavar="RUN_ID")


if TYPE_CHECKING:  # generic from click 8.2 on; subscripting it at run time would fail before that
    _FloatParam = click.ParamType[float]
else:
    _FloatParam = click.ParamType


class Seconds(_FloatParam):
    """A duration in seconds: a finite number, positive (or at least 0 with `zero`)."""

    name = "seconds"

    def __init__(self, *, zero: bool = False) -> None:
        self.zero = zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import math

        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not self.zero):
            expected = "a number of seconds, 0 or more" if self.zero else "a positive number of seconds"
            self.fail(f"{value}: expected {expected}", param, ctx)
        return seconds


def open_store() -> Store:
    return Store.open(Home.from_env())


def find(store: Store, run_id: str) -> RunRecord:
    from mlproj.execution.reconcile import find_run

    return find_run(store, run_id)


def print_json(document: Any) -> None:
    """The one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def byte_writer(stream: BinaryIO) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        stream.write(data)
        stream.flush()

    return write


def stdout_bytes() -> Callable[[bytes], None]:
    return byte_writer(sys.stdout.buffer)


def stderr_bytes() -> Callable[[bytes], None]:
    return byte_writer(sys.stderr.buffer)
