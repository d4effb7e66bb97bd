"""Downloads of `path` parameters given as URIs (`file://`, `http://`, `https://`) into a run's folder.

Only regular files and folders are copied (a device, a FIFO or a socket would never end), at most
`MLPROJ_DOWNLOAD_LIMIT` bytes (default 10 GiB; a size like `500M` or `2G`), into a temporary name that
is renamed into place once complete and removed on any failure or interruption, so no partial copy is
ever left behind. Big downloads report their progress through a callback.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit

from mlproj.config import LIMIT_VARIABLE, download_limit
from mlproj.errors import ParameterError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import BinaryIO

HTTP_TIMEOUT = 60.0  # seconds without data before an HTTP download fails
DEFAULT_NAME = "download"  # file name when the URL's path does not end with one
CHUNK = 1 << 20

Progress = Callable[[str, int, "int | None"], None]
"""(what is downloaded, bytes so far, total bytes when known)."""


class TooBig(ValueError):
    pass


def download(name: str, uri: str, dest_dir: Path, progress: Progress | None = None) -> Path:
    """Copy or download `uri` into `dest_dir/<name>/` and return the local path of the copy."""
    limit = download_limit()
    try:
        return _fetch(uri, dest_dir / _safe_name(name), limit, progress)
    except (OSError, ValueError) as exc:
        if isinstance(exc, HTTPError):
            exc.close()  # it holds the response's socket
        raise ParameterError(f"parameter {name!r} (path): cannot download {uri}: {_reason(exc)}") from None


def _fetch(uri: str, target_dir: Path, limit: int, progress: Progress | None) -> Path:
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "file":
        return _copy_file_uri(uri, target_dir, limit, progress)
    if scheme in ("http", "https"):
        return _fetch_http(uri, target_dir, limit, progress)
    raise ValueError(f"unsupported scheme {scheme or 'none'!r} (file, http and https are)")


def _safe_name(name: str) -> str:
    """`name` as one folder name; refused when it could lead elsewhere."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError("the parameter name cannot be used as a folder name")
    return name


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _copy_file_uri(uri: str, target_dir: Path, limit: int, progress: Progress | None) -> Path:
    """Copy the regular file, or the folder of regular files, named by a `file://` URI."""
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URIs on another host ({parts.netloc}) are not supported")
    source = Path(unquote(parts.path))
    try:
        mode = source.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file or folder: {source}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{source} is {_kind(mode)}, not a file or folder")
    files = _folder_files(source) if stat.S_ISDIR(mode) else [(source, Path(), source.stat().st_size)]
    total = sum(size for _path, _rel, size in files)
    _check_size(total, limit)
    target = target_dir / (source.name or DEFAULT_NAME)
    target_dir.mkdir(parents=True, exist_ok=True)
    part = target_dir / f".part-{target.name}"
    copier = _Copier(str(source), total, limit, progress)
    try:
        if stat.S_ISDIR(mode):
            part.mkdir()
        for path, relative, _size in files:
            destination = part / relative if stat.S_ISDIR(mode) else part
            destination.parent.mkdir(parents=True, exist_ok=True)
            with path.open("rb") as reader, destination.open("wb") as writer:
                copier.copy(reader, writer)
            shutil.copystat(path, destination)
        if target.is_dir() and stat.S_ISDIR(mode):
            shutil.rmtree(target)  # downloaded again: the new copy replaces the old
        part.replace(target)
    finally:
        _discard(part)
    return target


def _folder_files(folder: Path) -> list[tuple[Path, Path, int]]:
    """Every file of a folder (symlinks followed, but not into folders: no loops): (path, path relative
    to the folder, size); anything that is not a regular file is refused."""
    found = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{path} is {_kind(info.st_mode)}, not a file")
            found.append((path, path.relative_to(folder), info.st_size))
    return found


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise TooBig(f"{_size(size)} is more than the download limit of {_size(limit)} ({LIMIT_VARIABLE})")


class _Copier:
    """Copies streams by chunks, counting every byte of a download against its limit."""

    def __init__(self, what: str, total: int | None, limit: int, progress: Progress | None) -> None:
        self.what, self.total, self.limit, self.progress = what, total, limit, progress
        self.done = 0

    def copy(self, reader: BinaryIO, writer: BinaryIO) -> None:
        while chunk := reader.read(CHUNK):
            self.done += len(chunk)
            if self.done > self.limit:
                raise TooBig(f"more than the download limit of {_size(self.limit)} ({LIMIT_VARIABLE})")
            writer.write(chunk)
            if self.progress is not None:
                self.progress(self.what, self.done, self.total)


def _fetch_http(uri: str, target_dir: Path, limit: int, progress: Progress | None) -> Path:
    """Stream an `http(s)://` URI to a file in `target_dir`, renamed into place once complete."""
    import urllib.request

    file_name = posixpath.basename(unquote(urlsplit(uri).path))
    target = target_dir / (file_name if file_name not in ("", ".", "..") else DEFAULT_NAME)
    target_dir.mkdir(parents=True, exist_ok=True)
    part = target_dir / f".part-{target.name}"
    try:
        # The scheme was checked by the caller: only http and https reach here.
        with urllib.request.urlopen(uri, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None:
                _check_size(total, limit)
            with part.open("wb") as writer:
                _Copier(uri, total, limit, progress).copy(response, writer)
        part.replace(target)
    finally:
        _discard(part)
    return target


def _discard(part: Path) -> None:
    if part.is_dir() and not part.is_symlink():
        shutil.rmtree(part, ignore_errors=True)
    else:
        part.unlink(missing_ok=True)


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover


def _reason(exc: BaseException) -> str:
    """A one-line reason: the HTTP status, the network error, or the file error without its errno."""
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, URLError):
        return str(getattr(exc.reason, "strerror", None) or exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__
