"""Helpers shared by the tests: projects written into tmp_path, the CLI run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

PYTHON = sys.executable


def write_project(folder: Path, mlproject: str, files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLproject").write_text(mlproject)
    for name, text in (files or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return folder


def command_project(folder: Path, command: str, parameters: str = "") -> Path:
    """A project whose `main` entry point runs `command` (YAML-quoted for you)."""
    body = f"name: t\nentry_points:\n  main:\n{parameters}    command: {json.dumps(command)}\n"
    return write_project(folder, body)


def mlproj(
    *args: str, cwd: Path | None = None, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the real `mlproj` command in a child process (python -m mlproj)."""
    return subprocess.run(
        [PYTHON, "-m", "mlproj", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **kwargs.pop("env", {})},
        check=False,
        **kwargs,
    )


def mlproj_json(*args: str, cwd: Path | None = None, **kwargs: Any) -> Any:
    done = mlproj(*args, "--json", cwd=cwd, **kwargs)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """True while `pid` is a live process (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]
