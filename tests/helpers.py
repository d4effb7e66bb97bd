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


# --- input errors and the in-process command line --------------------------------------------------


class Result:
    """What a command did: its exit code and what it wrote, as `subprocess.CompletedProcess` has them."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def __repr__(self) -> str:
        return f"Result(returncode={self.returncode}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def invoke(*args: str) -> Result:
    """The command line in this process (the console script's `run_cli`), for what a child process adds
    nothing to: input errors, and commands that only read the store. Its output is captured."""
    import contextlib
    import io

    from mlproj.cli.main import run_cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def assert_input_error(done: Result | subprocess.CompletedProcess[str], *fragments: str) -> str:
    """An input error (design.md §4): exit 2, nothing on stdout, and one line on stderr, `mlproj: error:`
    and no traceback, holding every fragment. Returns the line."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == "", done.stdout
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mlproj: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_nothing_unfinished(home: Any) -> None:
    """No run left in a non-final status (an input error records nothing, or ends what it recorded)."""
    from mlproj.runs.store import Store

    if not Path(home.db_file).exists():
        return
    store = Store.open(home)
    try:
        unfinished = [(run.run_id, run.status.value) for run in store.unfinished()]
    finally:
        store.close()
    assert unfinished == []
