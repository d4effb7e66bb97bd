"""Downloads of `path` parameters given as URIs (`file://`, `http://`, `https://`) into a run's folder."""

from __future__ import annotations

import posixpath
import shutil
from pathlib import Path
from typing import BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit

from mlproj.errors import ParameterError

HTTP_TIMEOUT = 60.0  # seconds without data before an HTTP download fails
DEFAULT_NAME = "download"  # file name when the URL's path does not end with one


def download(name: str, uri: str, dest_dir: Path) -> Path:
    """Copy or download `uri` into `dest_dir/<name>/` and return the local path of the copy."""
    try:
        return _fetch(uri, dest_dir / _safe_name(name))
    except (OSError, ValueError) as exc:
        if isinstance(exc, HTTPError):
            exc.close()  # it holds the response's socket
        raise ParameterError(f"parameter {name!r} (path): cannot download {uri}: {_reason(exc)}") from None


def _fetch(uri: str, target_dir: Path) -> Path:
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "file":
        return _copy_file_uri(uri, target_dir)
    if scheme in ("http", "https"):
        return _fetch_http(uri, target_dir)
    raise ValueError(f"unsupported scheme {scheme or 'none'!r} (file, http and https are)")


def _safe_name(name: str) -> str:
    """`name` as one folder name; refused when it could lead elsewhere."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError("the parameter name cannot be used as a folder name")
    return name


def _copy_file_uri(uri: str, target_dir: Path) -> Path:
    """Copy the file or folder named by a `file://` URI into `target_dir`."""
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URIs on another host ({parts.netloc}) are not supported")
    source = Path(unquote(parts.path))
    if not source.exists():
        raise FileNotFoundError(f"no such file or folder: {source}")
    target = target_dir / (source.name or DEFAULT_NAME)
    target_dir.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return target


def _fetch_http(uri: str, target_dir: Path) -> Path:
    """Stream an `http(s)://` URI to a file in `target_dir`, renamed into place once complete."""
    import urllib.request

    file_name = posixpath.basename(unquote(urlsplit(uri).path))
    target = target_dir / (file_name if file_name not in ("", ".", "..") else DEFAULT_NAME)
    target_dir.mkdir(parents=True, exist_ok=True)
    # The scheme was checked by the caller: only http and https reach here.
    with urllib.request.urlopen(uri, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
        _save(response, target)
    return target


def _save(stream: BinaryIO, target: Path) -> None:
    """Write `stream` to a temporary file beside `target`, then rename it: no half-written `target`."""
    import tempfile

    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as part:
        try:
            shutil.copyfileobj(stream, part)
        except BaseException:
            Path(part.name).unlink(missing_ok=True)
            raise
    Path(part.name).replace(target)


def _reason(exc: BaseException) -> str:
    """A one-line reason: the HTTP status, the network error, or the file error without its errno."""
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, URLError):
        return str(getattr(exc.reason, "strerror", None) or exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__
