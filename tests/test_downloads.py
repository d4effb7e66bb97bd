from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlproj.downloads import download
from mlproj.errors import InputError, ParameterError
from mlproj.home import Home
from tests.helpers import command_project, mlproj, mlproj_json, wait_until


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


# --- what is refused, limits, progress, interruptions -------------------------------------------------


def test_a_device_is_refused_before_anything_is_copied(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="/dev/zero is a character device, not a file or folder"):
        download("data", "file:///dev/zero", tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("*"))


def test_a_fifo_and_a_folder_holding_a_link_to_a_device_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ParameterError, match="is a FIFO"):
        download("data", fifo.as_uri(), tmp_path / "run")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    (folder / "zero").symlink_to("/dev/zero")
    with pytest.raises(ParameterError, match="zero is a character device, not a file"):
        download("data", folder.as_uri(), tmp_path / "run")
    assert not any((tmp_path / "run").rglob("*.txt"))


def test_the_size_limit_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 3000)
    monkeypatch.setenv("MLPROJ_DOWNLOAD_LIMIT", "2K")
    with pytest.raises(
        ParameterError, match=r"2.9 KiB is more than the download limit of 2.0 KiB \(MLPROJ_DOWNLOAD_LIMIT\)"
    ):
        download("data", big.as_uri(), tmp_path / "run")
    assert list((tmp_path / "run").rglob("*")) in ([], [tmp_path / "run" / "data"])
    monkeypatch.setenv("MLPROJ_DOWNLOAD_LIMIT", "4K")
    assert download("data", big.as_uri(), tmp_path / "run").read_bytes() == b"x" * 3000
    monkeypatch.setenv("MLPROJ_DOWNLOAD_LIMIT", "lots")
    with pytest.raises(InputError, match="MLPROJ_DOWNLOAD_LIMIT='lots': expected a size such as 500M or 10G"):
        download("data", big.as_uri(), tmp_path / "run")


class Endless(QuietHandler):
    """An HTTP response without a length that never ends (one chunk every few milliseconds)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"y" * 65536)
                time.sleep(0.002)
        except OSError:
            return


@pytest.fixture
def endless() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/stream.bin"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_endless_http_download_stops_at_the_limit_and_leaves_nothing(
    endless: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_DOWNLOAD_LIMIT", "1M")
    with pytest.raises(ParameterError, match=r"more than the download limit of 1.0 MiB"):
        download("data", endless, tmp_path / "run")
    assert not any(p.is_file() for p in (tmp_path / "run").rglob("*"))


def test_progress_is_reported_as_bytes_arrive(served: Path, tmp_path: Path) -> None:
    big = served / "big.bin"
    big.write_bytes(b"z" * (3 * 2**20 + 5))
    seen: list[tuple[str, int, int | None]] = []
    download(
        "data", big.as_uri(), tmp_path / "run", lambda what, done, total: seen.append((what, done, total))
    )
    assert [done for _what, done, _total in seen] == [2**20, 2**21, 3 * 2**20, 3 * 2**20 + 5]
    assert {total for _what, _done, total in seen} == {3 * 2**20 + 5}


def test_mlproj_run_shows_a_big_download(tmp_path: Path, home: Home) -> None:
    data = tmp_path / "data.bin"
    with data.open("wb") as out:
        out.truncate(80 * 2**20)  # sparse: quick to make and to read
    project = command_project(tmp_path / "p", "wc -c < {data}", "    parameters:\n      data: path\n")
    done = mlproj("run", str(project), "-P", f"data={data.as_uri()}")
    assert done.returncode == 0, done.stderr
    assert f"Downloading {data} (80.0 MiB)" in done.stderr
    assert done.stdout.strip() == str(80 * 2**20)


@pytest.mark.parametrize("storage", [False, True])
def test_sigterm_during_a_download_leaves_no_run_and_no_partial_copy(
    endless: str, tmp_path: Path, home: Home, storage: bool
) -> None:
    project = command_project(tmp_path / "p", "cat {data}", "    parameters:\n      data: path\n")
    args = ["--storage-dir", str(tmp_path / "store")] if storage else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "run", str(project), "-P", f"data={endless}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    part_folder = tmp_path / "store" / "data" if storage else None

    def downloading() -> bool:
        folders = [part_folder] if part_folder else list(home.runs_dir.glob("*/downloads/data"))
        return any(folder.exists() and any(folder.glob(".part-*")) for folder in folders if folder)

    wait_until(downloading)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == "mlproj: stopped by SIGTERM"
    assert "Traceback" not in err
    assert mlproj_json("runs") == []
    assert not home.runs_dir.exists() or not any(home.runs_dir.iterdir())
    if part_folder is not None:
        assert not any(part_folder.iterdir())
