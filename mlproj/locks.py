"""Inter-process file locks (environment builds, the Git clone cache, the reuse cache).

On POSIX systems this is `flock(2)` on a file beside what it guards: the kernel drops the lock when its
holder dies, so a killed build never leaves a stale lock. Elsewhere the `filelock` package does the
same job; it is not used on POSIX because importing it costs about 40 ms, a large share of a run's
start-up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

POLL = 0.05  # seconds between attempts while waiting for a lock another process holds


class LockTimeout(Exception):
    """The lock was still held by another process when the timeout ran out."""


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._fallback: Any = None

    @property
    def held(self) -> bool:
        return self._fd is not None or (self._fallback is not None and self._fallback.is_locked)

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting at most `timeout` seconds (None: as long as it takes).

        Returns False, rather than raising, when another process still holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._acquire_fallback(timeout)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(POLL if deadline is None else max(0.0, min(POLL, deadline - time.monotonic())))
                continue
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return True

    def _acquire_fallback(self, timeout: float | None) -> bool:  # pragma: no cover - not POSIX
        import filelock

        if self._fallback is None:
            self._fallback = filelock.FileLock(str(self.path))
        try:
            self._fallback.acquire(timeout=-1 if timeout is None else timeout)
        except filelock.Timeout:
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        elif self._fallback is not None:  # pragma: no cover - not POSIX
            self._fallback.release()

    def __enter__(self) -> FileLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def locked(path: Path, timeout: float | None, what: str) -> FileLock:
    """A held lock on `path` (use it with `with`); `LockTimeout` naming `what` if it cannot be taken."""
    lock = FileLock(path)
    if not lock.acquire(timeout):
        raise LockTimeout(f"{what} is locked by another process ({path}); gave up after {timeout:g} s")
    return lock
