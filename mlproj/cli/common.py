"""What the commands share: the store, record lookup, JSON output, streaming to the terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import click

from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.store import Store

run_id_argument = click.argument("run_id", metavar="RUN_ID")


def open_store() -> Store:
    return Store.open(Home.from_env())


def find(store: Store, run_id: str) -> RunRecord:
    from mlproj.runs.control import find_run

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
