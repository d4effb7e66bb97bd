"""Content digests of files and folders, for reuse keys, read once per change.

A file's digest is kept in the run store with what `stat` said of it (size, modification time in
nanoseconds, inode): while those are the same, the file is not read again, so an unchanged 1 GB input
costs one `stat` per file. A folder's digest covers the relative path, kind and digest of everything
in it (symbolic links inside it by their target), so a renamed, added or removed file changes it. A
link given as the path itself is followed: its digest is that of what it points at.

A file modified less than `RACY_SECONDS` before it is read is not kept in the cache ("racy git"): a
file system whose clock ticks coarsely could give a second write the very same `stat` as the first.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

from mlproj.runs.store import Store

IGNORED = frozenset({".git", "__pycache__", ".mlproj", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
CHUNK = 1 << 20
MISSING = "missing"
RACY_SECONDS = 2  # a file modified this recently may change again without its `stat` changing


class ContentHasher:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.files_read = 0  # how many files were actually read (the rest came from the stat cache)

    def digest(self, path: str | os.PathLike[str]) -> str:
        """`sha256:<hex>` of a file or folder, or `missing` when there is nothing at `path`."""
        target = Path(path)
        try:
            info = target.stat()  # a link given as the path is followed: a step reads what it points at
        except OSError:
            return MISSING
        if stat.S_ISDIR(info.st_mode):
            return self._folder(target)
        return self._files({str(target): info}).get(str(target), MISSING)

    def content_key(self, path: str) -> str:
        """What a reuse key holds for a file or folder a step reads."""
        return f"content:{self.digest(path)}"

    def _folder(self, root: Path) -> str:
        entries: list[tuple[str, str, str]] = []  # (relative path, kind, digest or target)
        files: dict[str, os.stat_result] = {}
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in IGNORED)
            base = Path(folder)
            for name in dirs:
                full = base / name
                if full.is_symlink():
                    entries.append((str(full.relative_to(root)), "link", str(full.readlink())))
                else:
                    entries.append((str(full.relative_to(root)), "dir", ""))
            for name in names:
                full = base / name
                try:
                    info = full.lstat()
                except OSError:
                    continue
                relative = str(full.relative_to(root))
                if stat.S_ISLNK(info.st_mode):
                    entries.append((relative, "link", str(full.readlink())))
                elif stat.S_ISREG(info.st_mode):
                    files[str(full)] = info
                    entries.append((relative, "file", str(full)))
        digests = self._files(files, prefix=str(root) + os.sep)
        total = hashlib.sha256()
        for relative, kind, value in sorted(entries):
            shown = digests.get(value, MISSING) if kind == "file" else value
            total.update(f"{relative}\0{kind}\0{shown}\0".encode())
        return "sha256:" + total.hexdigest()

    def _files(self, infos: dict[str, os.stat_result], prefix: str | None = None) -> dict[str, str]:
        """Digests of regular files, from the stat cache where it still holds."""
        if not infos:
            return {}
        cached = (
            self.store.file_hashes().under(prefix) if prefix else self.store.file_hashes().of(list(infos))
        )
        result: dict[str, str] = {}
        fresh: list[tuple[str, int, int, int, str]] = []
        settled = time.time_ns() - RACY_SECONDS * 1_000_000_000  # modified before this: safe to cache
        for path, info in infos.items():
            signature = (info.st_size, info.st_mtime_ns, info.st_ino)
            hit = cached.get(path)
            if hit is not None and hit[:3] == signature:
                result[path] = hit[3]
                continue
            digest = _read_digest(path)
            if digest is None:
                continue
            self.files_read += 1
            result[path] = digest
            if info.st_mtime_ns < settled:
                fresh.append((path, *signature, digest))
        if fresh:
            self.store.file_hashes().save(fresh)
        return result


def _read_digest(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:  # noqa: PTH123 - the plain call is the cheapest here
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return "sha256:" + digest.hexdigest()
