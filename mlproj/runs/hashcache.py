"""The stat cache of content hashes (mlproj.pipelines.hashing): a file's size, modification time and
inode with the digest they were read with, so that an unchanged file is not read again."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from mlproj.runs.catalog import _Guarded

Entry = tuple[int, int, int, str]  # size, mtime_ns, inode, digest


class FileHashes:
    def __init__(self, db: _Guarded, immediate: Callable[[], AbstractContextManager[None]]) -> None:
        self._db = db
        self._immediate = immediate

    def under(self, prefix: str) -> dict[str, Entry]:
        """The entries of every path that starts with `prefix`."""
        rows = self._db.execute(
            "SELECT path, size, mtime_ns, inode, digest FROM file_hashes WHERE path >= ? AND path < ?",
            (prefix, prefix + "\U0010ffff"),
        )
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def of(self, paths: list[str]) -> dict[str, Entry]:
        """The entries of these paths (those that have one)."""
        found = {}
        for path in paths:
            row = self._db.execute(
                "SELECT size, mtime_ns, inode, digest FROM file_hashes WHERE path = ?", (path,)
            ).fetchone()
            if row is not None:
                found[path] = (row[0], row[1], row[2], row[3])
        return found

    def save(self, rows: list[tuple[str, int, int, int, str]]) -> None:
        with self._immediate():
            self._db.executemany(
                "INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, inode, digest) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
