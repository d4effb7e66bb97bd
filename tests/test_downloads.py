from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlproj.downloads import download
from mlproj.errors import InputError, ParameterError


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.csv").write_text("a,b\n1,2\n")
    (folder / "data" / "with space.txt").write_text("spaced")
    return folder


@pytest.fixture
def server(served: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving `served`; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_file_uri_file_is_copied(served: Path, tmp_path: Path) -> None:
    source = served / "data" / "train.csv"
    local = download("data", source.as_uri(), tmp_path / "run")
    assert local == tmp_path / "run" / "data" / "train.csv"
    assert local.read_text() == "a,b\n1,2\n"
    local.write_text("changed")
    assert source.read_text() == "a,b\n1,2\n"


def test_file_uri_folder_is_copied(served: Path, tmp_path: Path) -> None:
    local = download("data", (served / "data").as_uri(), tmp_path / "run")
    assert local == tmp_path / "run" / "data" / "data"
    assert sorted(p.name for p in local.iterdir()) == ["train.csv", "with space.txt"]
    assert download("data", (served / "data").as_uri(), tmp_path / "run") == local  # again: overwritten


def test_file_uri_with_localhost_and_quoted_characters(served: Path, tmp_path: Path) -> None:
    uri = f"file://localhost{served}/data/with%20space.txt"
    assert download("p", uri, tmp_path).read_text() == "spaced"


def test_missing_file_uri(tmp_path: Path) -> None:
    missing = (tmp_path / "missing.csv").as_uri()
    with pytest.raises(ParameterError, match=r"^parameter 'data' \(path\): cannot download file://.*missing"):
        download("data", missing, tmp_path / "run")


def test_http_download(server: str, tmp_path: Path) -> None:
    local = download("train", f"{server}/data/train.csv", tmp_path / "run")
    assert local == tmp_path / "run" / "train" / "train.csv"
    assert local.read_text() == "a,b\n1,2\n"
    assert [p.name for p in local.parent.iterdir()] == ["train.csv"]  # no partial file left


def test_http_download_without_a_file_name(server: str, tmp_path: Path) -> None:
    local = download("listing", f"{server}/data/", tmp_path)
    assert local.name == "download"
    assert "train.csv" in local.read_text()
    assert download("spaced", f"{server}/data/with%20space.txt", tmp_path).name == "with space.txt"


def test_http_404_names_the_parameter(server: str, tmp_path: Path) -> None:
    uri = f"{server}/nothing.csv"
    with pytest.raises(ParameterError) as caught:
        download("data", uri, tmp_path / "run")
    assert str(caught.value) == f"parameter 'data' (path): cannot download {uri}: HTTP 404 File not found"
    assert isinstance(caught.value, InputError)
    assert not (tmp_path / "run" / "data" / "nothing.csv").exists()


def test_connection_refused(tmp_path: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler) as closed:
        port = closed.server_address[1]
    with pytest.raises(ParameterError, match=r"parameter 'data' .*Connection refused"):
        download("data", f"http://127.0.0.1:{port}/x.csv", tmp_path)


@pytest.mark.parametrize("uri", ["s3://bucket/key", "ftp://host/file", "relative/path"])
def test_unsupported_scheme(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="unsupported scheme"):
        download("data", uri, tmp_path)


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_parameter_name_cannot_escape_the_folder(name: str, served: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="cannot be used as a folder name"):
        download(name, (served / "data" / "train.csv").as_uri(), tmp_path / "run")
    assert not (tmp_path / "escape").exists()
