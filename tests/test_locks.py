"""File locks between real processes: held, waited for, and released when the holder dies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.locks import FileLock, LockTimeout, locked

HOLDER = """
import sys, time
from pathlib import Path
from mlproj.locks import FileLock
lock = FileLock(Path(sys.argv[1]))
assert lock.acquire(0)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    with proc.stdout:
        assert proc.stdout.readline() == "held\n"
    return proc


def test_a_lock_held_elsewhere_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold(path, 300)
    try:
        lock = FileLock(path)
        assert not lock.acquire(0)
        assert not lock.acquire(0.2)
        assert not lock.held
        with pytest.raises(LockTimeout, match=r"the thing is locked by another process .*x\.lock"):
            locked(path, 0.1, "the thing")
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold(path, 300)
    holder.kill()  # SIGKILL: no chance to release it
    holder.wait()
    lock = FileLock(path)
    assert lock.acquire(0)
    assert lock.held
    lock.release()
    assert not lock.held


def test_waiting_takes_the_lock_once_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.lock"  # its folder is created
    holder = hold(path, 0.5)
    try:
        with locked(path, 60, "the thing") as lock:
            assert lock.held
            assert holder.wait(timeout=60) == 0  # it released the lock before we could take it
    finally:
        holder.kill()
        holder.wait()


def test_one_process_cannot_take_its_own_lock_twice_through_two_objects(tmp_path: Path) -> None:
    # flock locks belong to open file descriptions: a second FileLock is a second holder.
    path = tmp_path / "x.lock"
    first = FileLock(path)
    assert first.acquire(0)
    try:
        assert not FileLock(path).acquire(0)
    finally:
        first.release()
