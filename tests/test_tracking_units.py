"""MLflow tracking's parts on their own: the HTTP client against a real socket server that answers as
we tell it, URIs, the REST answers, credentials, experiments, and the store's waiting final updates
(with an in-memory stand-in for a tracking store where only the rule is under test)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mlproj.errors import InputError, ParameterError, TrackingError, TrackingUnreachable
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store, new_run_id
from mlproj.sources import remote_url, source_name
from mlproj.tracking import absolute_uri, display_uri, run_link, tracking_uri
from mlproj.tracking import runs as tracking_runs
from mlproj.tracking.base import TrackedRun, Tracker, local_artifact_dir, unquote
from mlproj.tracking.http import Endpoint, HttpError, Session
from mlproj.tracking.rest import RestTracker, _answer, _auth_headers, quote, quote_value
from mlproj.urls import strip_credentials
from tests.conftest import git, make_git_repo

# --- a socket server that answers with the bytes a test gives ---------------------------------------

Reply = Callable[[bytes], bytes | None]  # the request's bytes → the raw answer (None: close at once)


class RawServer:
    """Accepts connections on 127.0.0.1; for each request read, sends what `reply` returns. `close_after`
    closes a connection after that many answers (a server ending a kept-alive connection)."""

    def __init__(self, reply: Reply, close_after: int | None = None) -> None:
        self.reply, self.close_after = reply, close_after
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        answered, buffer = 0, b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                request, buffer = head + b"\r\n\r\n" + rest[:length], rest[length:]
                self.requests.append(request)
                answer = self.reply(request)
                if answer is None:
                    return
                conn.sendall(answer)
                answered += 1
                if self.close_after is not None and answered >= self.close_after:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(reply: Reply, close_after: int | None = None) -> RawServer:
        servers.append(RawServer(reply, close_after))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


_OPENED: list[Session | Tracker] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def session(port: int, timeout: float = 5) -> Session:
    _OPENED.append(
        Session(Endpoint.parse(f"http://127.0.0.1:{port}"), {"Accept": "application/json"}, timeout)
    )
    return _OPENED[-1]  # type: ignore[return-value]


def rest(uri: str) -> RestTracker:
    _OPENED.append(RestTracker(uri))
    return _OPENED[-1]  # type: ignore[return-value]


# --- the HTTP client -------------------------------------------------------------------------------


def test_endpoint_parse() -> None:
    e = Endpoint.parse("http://127.0.0.1:5000")
    assert (e.scheme, e.host, e.port, e.prefix) == ("http", "127.0.0.1", 5000, "")
    e = Endpoint.parse("https://u:p@mlflow.example.org/team/")
    assert (e.scheme, e.host, e.port, e.prefix) == ("https", "mlflow.example.org", 443, "/team")
    assert e.origin == "https://mlflow.example.org"
    e = Endpoint.parse("HTTP://[::1]:8080/x")
    assert (e.scheme, e.host, e.port, e.prefix, e.origin) == ("http", "::1", 8080, "/x", "http://[::1]:8080")
    assert Endpoint.parse("http://h").port == 80
    for bad in ("ftp://h", "h:5000", "http://", "http://h:port", "http://h:70000"):
        with pytest.raises(ValueError, match=r"\S"):
            Endpoint.parse(bad)


def test_a_request_with_a_body_and_a_sized_answer(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda _: ok(b'{"a": 1}'))
    got = session(server.port).request("POST", "/api/x?y=1", b'{"k": "v"}')
    assert (got.status, got.body) == (200, b'{"a": 1}')
    request = server.requests[0]
    assert request.startswith(b"POST /api/x?y=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}".encode() in request
    assert b"Content-Length: 10\r\n" in request and request.endswith(b'{"k": "v"}')
    assert b"Accept: application/json" in request


def test_a_chunked_answer_and_an_interim_one(serve: Callable[..., RawServer]) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nTrailer: x\r\n\r\n"
    )
    server = serve(lambda _: chunked)
    client = session(server.port)
    assert client.request("GET", "/").body == b"abcdefg"
    assert client.request("GET", "/").body == b"abcdefg"  # the same connection, kept alive
    assert server.connections == 1


def test_an_answer_read_until_the_server_closes(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda _: b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", close_after=1)
    client = session(server.port)
    assert client.request("GET", "/").body == b"all of it"
    assert client.request("GET", "/").body == b"all of it"  # opened again
    assert server.connections == 2


def test_a_kept_alive_connection_the_server_closed_is_opened_again(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda _: ok(b"{}"), close_after=1)
    client = session(server.port)
    for _ in range(3):
        assert client.request("GET", "/").status == 200
    assert server.connections == 3
    assert len(server.requests) == 3  # each request sent once


def test_connection_close_is_honoured(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda _: ok(b"{}", "Connection: close\r\n"))
    client = session(server.port)
    client.request("GET", "/")
    client.request("GET", "/")
    assert server.connections == 2


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (None, "closed the connection"),
    ],
)
def test_what_is_not_http_is_an_http_error(
    serve: Callable[..., RawServer], answer: bytes | None, words: str
) -> None:
    server = serve(lambda _: answer)
    with pytest.raises(HttpError, match=words):
        session(server.port).request("GET", "/")


def test_refused_and_silent_servers() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HttpError, match="connection refused"):
        session(port).request("GET", "/")
    with socket.socket() as silent:  # accepts (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(HttpError, match="timed out"):
            session(silent.getsockname()[1], timeout=0.3).request("GET", "/")


# --- URIs, quoting ---------------------------------------------------------------------------------


def test_quote_and_unquote() -> None:
    assert quote("a b/c?d") == "a%20b/c%3Fd"
    assert quote_value("a b/c&d=é") == "a%20b%2Fc%26d%3D%C3%A9"
    assert unquote("a%20b%2Fc%C3%A9") == "a b/cé"
    assert unquote("100%") == "100%" and unquote("%zz") == "%zz"


def test_absolute_uri(tmp_path: Path) -> None:
    assert absolute_uri("http://h:5000", tmp_path) == "http://h:5000"
    assert absolute_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert absolute_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert absolute_uri("file:./mlruns", tmp_path) == f"file://{tmp_path}/mlruns"
    assert absolute_uri("file:///abs/mlruns", tmp_path) == "file:///abs/mlruns"
    assert absolute_uri("mlruns", tmp_path) == f"file://{tmp_path}/mlruns"
    assert absolute_uri("../up/mlruns", tmp_path) == f"file://{tmp_path.parent}/up/mlruns"
    assert absolute_uri("databricks", tmp_path) == "databricks"
    assert absolute_uri("databricks://profile", tmp_path) == "databricks://profile"
    assert absolute_uri("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"


def test_tracking_uri_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking_uri(None, enabled=True, caller_dir=tmp_path) is None  # nothing known: off
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-variable:5000")
    assert tracking_uri(None, enabled=True, caller_dir=tmp_path) == "http://from-variable:5000"
    assert tracking_uri("http://flag:1", enabled=True, caller_dir=tmp_path) == "http://flag:1"
    assert tracking_uri("http://flag:1", enabled=False, caller_dir=tmp_path) is None
    with pytest.raises(InputError, match="line break"):
        tracking_uri("http://h\n", enabled=True, caller_dir=tmp_path)


def test_display_uri_and_links() -> None:
    assert display_uri("https://u:secret@h/x") == "https://h/x"
    assert run_link("http://u:p@h:5000/", "3", "abc") == "http://h:5000/#/experiments/3/runs/abc"
    assert run_link("sqlite:////m.db", "3", "abc") is None


def test_local_artifact_dir() -> None:
    assert local_artifact_dir("file:///data/art%20ifacts/1") == "/data/art ifacts/1"
    assert local_artifact_dir("file://localhost/data/a") == "/data/a"
    assert local_artifact_dir("/data/a") == "/data/a"
    assert local_artifact_dir("file://otherhost/a") is None
    assert local_artifact_dir("s3://bucket/a") is None


# --- REST answers and credentials ------------------------------------------------------------------


def test_rest_answers() -> None:
    uri = "http://h"
    assert _answer(uri, 200, b'{"a": 1}') == {"a": 1}
    assert _answer(uri, 200, b"") == {}
    with pytest.raises(TrackingError, match="not JSON"):
        _answer(uri, 200, b"<html>")
    with pytest.raises(TrackingError, match="Could not find") as found:
        _answer(uri, 404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Could not find it"}')
    assert found.value.code == "RESOURCE_DOES_NOT_EXIST"
    assert not isinstance(found.value, TrackingUnreachable)
    with pytest.raises(TrackingError, match="MLFLOW_TRACKING_TOKEN"):
        _answer(uri, 401, b"Unauthorized")
    with pytest.raises(TrackingError, match="404"):
        _answer(uri, 404, b"<html>not found</html>")
    with pytest.raises(TrackingUnreachable, match="503"):
        _answer(uri, 503, b"busy")


def test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert "Authorization" not in _auth_headers("http://h")
    basic = _auth_headers("http://al%40ice:s%3Acret@h")["Authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"al@ice:s:cret"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    assert base64.b64decode(_auth_headers("http://h")["Authorization"][6:]) == b"bob:pw"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    assert _auth_headers("http://h")["Authorization"] == "Bearer tok"


def test_the_rest_client_sends_credentials_and_never_puts_them_in_the_request_line(
    serve: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    server = serve(lambda _: ok(b'{"experiment": {"experiment_id": "7", "lifecycle_stage": "active"}}'))
    tracker = rest(f"http://user:pw@127.0.0.1:{server.port}/prefix")
    assert tracker.experiment_id_by_name("a b&c") == "7"
    request = server.requests[0].decode()
    assert request.startswith("GET /prefix/api/2.0/mlflow/experiments/get-by-name?experiment_name=a%20b%26c ")
    assert "Authorization: Bearer tok" in request and "pw" not in request


def test_a_deleted_experiment_is_refused(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda _: ok(b'{"experiment": {"experiment_id": "7", "lifecycle_stage": "deleted"}}'))
    with pytest.raises(TrackingError, match="deleted"):
        rest(f"http://127.0.0.1:{server.port}").experiment_id_by_name("old")


def test_a_batch_of_more_than_100_params_is_split(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda _: ok(b"{}"))
    rest(f"http://127.0.0.1:{server.port}").log_batch("r", params={f"p{i}": str(i) for i in range(150)})
    bodies = [json.loads(r.partition(b"\r\n\r\n")[2]) for r in server.requests]
    assert [len(b["params"]) for b in bodies] == [100, 50]
    assert all(b["run_id"] == "r" for b in bodies)


def test_an_artifact_root_the_server_proxies_and_one_on_this_machine(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    server = serve(lambda _: ok(b"{}"))
    tracker = rest(f"http://127.0.0.1:{server.port}")
    tracker.upload_artifact("r", "mlflow-artifacts:/1/r/artifacts", "mlproj/output.log", b"log")
    tracker.upload_artifact("r", "mlflow-artifacts://h:5000/2/r/artifacts", "a b.log", b"x")
    lines = [r.split(b"\r\n")[0] for r in server.requests]
    assert lines == [
        b"PUT /api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/mlproj/output.log HTTP/1.1",
        b"PUT /api/2.0/mlflow-artifacts/artifacts/2/r/artifacts/a%20b.log HTTP/1.1",
    ]
    tracker.upload_artifact("r", f"file://{tmp_path}/art", "mlproj/output.log", b"local")
    assert (tmp_path / "art" / "mlproj" / "output.log").read_bytes() == b"local"
    with pytest.raises(TrackingError, match="mlproj\\[mlflow\\]"):
        tracker.upload_artifact("r", "s3://bucket/x", "a", b"")


# --- experiments, with a stand-in for the tracking store ------------------------------------------


class MemoryTracker(Tracker):
    """A tracking store in memory: only the rules around it are under test (the real server is in
    test_tracking.py)."""

    def __init__(self, *, away: bool = False, refuse: bool = False) -> None:
        self.uri = "http://memory"
        self.experiments: dict[str, str] = {"Default": "0"}
        self.calls: list[tuple[str, Any]] = []
        self.away, self.refuse = away, refuse
        self.race = False

    def _check(self) -> None:
        if self.away:
            raise TrackingUnreachable("tracking server http://memory: connection refused")
        if self.refuse:
            raise TrackingError(
                "tracking server http://memory: run not found", code="RESOURCE_DOES_NOT_EXIST"
            )

    def experiment_id_by_name(self, name: str) -> str | None:
        self._check()
        return self.experiments.get(name)

    def create_experiment(self, name: str) -> str:
        self._check()
        if self.race:  # another run made it first
            self.experiments[name] = "41"
            raise TrackingError("already exists", code="RESOURCE_ALREADY_EXISTS")
        self.experiments[name] = str(len(self.experiments))
        return self.experiments[name]

    def experiment_name(self, experiment_id: str) -> str:
        self._check()
        for name, known in self.experiments.items():
            if known == experiment_id:
                return name
        raise TrackingError("no such experiment", code="RESOURCE_DOES_NOT_EXIST")

    def create_run(
        self, experiment_id: str, *, run_name: str | None, start_time: int, user: str, tags: Mapping[str, str]
    ) -> TrackedRun:
        self._check()
        self.calls.append(("create", (experiment_id, run_name, start_time, user, dict(tags))))
        return TrackedRun(
            run_id="m1", experiment_id=experiment_id, artifact_uri="mlflow-artifacts:/0/m1/artifacts"
        )

    def log_batch(
        self, run_id: str, *, params: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None
    ) -> None:
        self._check()
        self.calls.append(("batch", (run_id, dict(params or {}), dict(tags or {}))))

    def end_run(self, run_id: str, status: str, end_time: int) -> None:
        self._check()
        self.calls.append(("end", (run_id, status, end_time)))

    def get_run(self, run_id: str) -> dict[str, Any]:
        self._check()
        return {"info": {"run_id": run_id}, "data": {"metrics": [{"key": "rmse", "value": 0.5}]}}

    def search_runs(self, experiment_ids: Sequence[str], run_ids: Sequence[str]) -> list[dict[str, Any]]:
        return [self.get_run(r) for r in run_ids if experiment_ids]

    def upload_artifact(self, run_id: str, artifact_uri: str, path: str, data: bytes) -> None:
        self._check()
        self.calls.append(("artifact", (run_id, artifact_uri, path, data)))


def test_resolve_experiment() -> None:
    tracker = MemoryTracker()
    resolve = tracking_runs.resolve_experiment
    assert resolve(tracker, None, None) == tracking_runs.Experiment(id="0", name="Default")
    made = resolve(tracker, "new", None)
    assert tracker.experiments["new"] == made.id and made.name == "new"
    assert resolve(tracker, "new", None) == made  # found, not made again
    assert resolve(tracker, None, made.id) == made
    with pytest.raises(InputError, match="not both"):
        resolve(tracker, "new", "1")
    tracker.race = True
    assert resolve(tracker, "raced", None).id == "41"


def test_start_run_tags_and_params(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ada")
    tracker = MemoryTracker()
    run = tracking_runs.start_run(
        tracker,
        tracking_runs.Experiment("0", "Default"),
        run_name="r",
        tags={"team": "ml"},
        params={"alpha": "0.1"},
        start_time=1.5,
    )
    assert run.run_id == "m1"
    assert tracker.calls[0] == (
        "create",
        ("0", "r", 1500, "ada", {"mlflow.user": "ada", "team": "ml", "mlflow.runName": "r"}),
    )
    assert tracker.calls[1] == ("batch", ("m1", {"alpha": "0.1"}, {}))
    tracker.calls.clear()
    tracking_runs.start_run(
        tracker, tracking_runs.Experiment("0", "Default"), run_name=None, tags={}, params={}
    )
    assert [c[0] for c in tracker.calls] == ["create"]  # no parameters: no batch


def test_the_workload_variables_never_hold_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """They are recorded with the run's request: the credentials stay in the environment, which the
    workload inherits (containers and Ray jobs are given process.CREDENTIAL_VARIABLES)."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    env = tracking_runs.workload_env("http://h", "r1", "3")
    assert env == {"MLFLOW_RUN_ID": "r1", "MLFLOW_TRACKING_URI": "http://h", "MLFLOW_EXPERIMENT_ID": "3"}


# --- the store's waiting final updates -------------------------------------------------------------


def _tracked_run(store: Store, tmp_path: Path, *, tracked: bool = True) -> RunRecord:
    run_id = new_run_id()
    run_dir = tmp_path / run_id
    run_dir.mkdir()
    (run_dir / "output.log").write_text("the log\n")
    record = RunRecord(
        run_id=run_id,
        status=RunStatus.RUNNING,
        log_path=str(run_dir / "output.log"),
        run_dir=str(run_dir),
        tracking_uri="http://memory" if tracked else None,
        mlflow_run_id="m1" if tracked else None,
        mlflow_experiment_id="0" if tracked else None,
        mlflow_artifact_uri="mlflow-artifacts:/0/m1/artifacts" if tracked else None,
    )
    return store.insert(record)


@pytest.mark.parametrize(
    ("status", "mlflow"),
    [(RunStatus.FINISHED, "FINISHED"), (RunStatus.FAILED, "FAILED"), (RunStatus.CANCELED, "KILLED")],
)
def test_a_final_status_leaves_the_mlflow_end_waiting_in_the_store(
    store: Store, tmp_path: Path, status: RunStatus, mlflow: str
) -> None:
    record = _tracked_run(store, tmp_path)
    assert store.transition(record.run_id, status, ended_at=12.5)
    pending = store.get(record.run_id).tracking_pending
    assert pending is not None and json.loads(pending) == {"status": mlflow, "end_time": 12500}
    assert [r.run_id for r in store.tracking_pending()] == [record.run_id]
    untracked = _tracked_run(store, tmp_path, tracked=False)
    store.transition(untracked.run_id, status, ended_at=1.0)
    assert store.get(untracked.run_id).tracking_pending is None
    assert store.get(untracked.run_id).to_dict()["tracking_pending"] is False
    assert store.transition(record.run_id, RunStatus.CANCEL_REQUESTED) is False  # final: unchanged
    store.tracking_sent(record.run_id, "something else")  # only the update that was sent is cleared
    assert store.get(record.run_id).tracking_pending == pending
    store.tracking_sent(record.run_id, pending)
    assert store.get(record.run_id).tracking_pending is None and store.tracking_pending() == []


def _use(monkeypatch: pytest.MonkeyPatch, tracker: MemoryTracker) -> list[str]:
    opened: list[str] = []

    def fake_open(uri: str, timeout: float) -> Tracker:
        opened.append(uri)
        return tracker

    monkeypatch.setattr(tracking_runs, "_open", fake_open)
    monkeypatch.setattr(tracking_runs, "_AWAY", set())
    return opened


def test_send_pending_uploads_the_log_then_ends_the_run(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = MemoryTracker()
    _use(monkeypatch, tracker)
    record = _tracked_run(store, tmp_path)
    store.transition(record.run_id, RunStatus.FINISHED, ended_at=2.0)
    assert tracking_runs.send_pending(store) == 1
    assert tracker.calls == [
        ("artifact", ("m1", "mlflow-artifacts:/0/m1/artifacts", "mlproj/output.log", b"the log\n")),
        ("end", ("m1", "FINISHED", 2000)),
    ]
    assert store.get(record.run_id).tracking_pending is None
    assert tracking_runs.send_pending(store) == 0


def test_a_server_away_keeps_the_update_and_is_tried_once_per_command(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = MemoryTracker(away=True)
    opened = _use(monkeypatch, tracker)
    records = [_tracked_run(store, tmp_path) for _ in range(3)]
    for record in records:
        store.transition(record.run_id, RunStatus.FAILED, ended_at=3.0)
    assert tracking_runs.send_pending(store) == 0
    assert len(opened) == 1  # the first failure marks the server away for this process
    assert all(store.get(r.run_id).tracking_pending is not None for r in records)
    tracker.away = False
    monkeypatch.setattr(tracking_runs, "_AWAY", set())  # the next command
    assert tracking_runs.send_pending(store) == 3
    assert [c[1][1] for c in tracker.calls if c[0] == "end"] == ["FAILED"] * 3


def test_an_update_refused_for_good_is_dropped_with_a_note(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, MemoryTracker(refuse=True))
    record = _tracked_run(store, tmp_path)
    store.transition(record.run_id, RunStatus.FINISHED, ended_at=2.0)
    assert tracking_runs.send_pending(store) == 1
    assert store.get(record.run_id).tracking_pending is None
    note = (Path(str(record.run_dir)) / "tracking.log").read_text()
    assert "MLflow did not take the run's end" in note and "run not found" in note


def test_describe_shows_the_link_and_the_latest_metrics(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, MemoryTracker())
    record = _tracked_run(store, tmp_path)
    where, metrics = tracking_runs.describe(record)
    assert where == "http://memory/#/experiments/0/runs/m1"
    assert metrics == "rmse=0.5"
    _use(monkeypatch, MemoryTracker(away=True))
    assert "not available" in tracking_runs.describe(record)[1]


# --- what MLflow's tags say of a local source ------------------------------------------------------


def test_source_name_and_remote_url(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert source_name(plain) == str(plain)
    assert remote_url(plain) is None
    repo = tmp_path / "repo"
    make_git_repo(repo, {"sub/MLproject": "name: x\n"})
    assert source_name(repo) == f"file://{repo}"
    assert source_name(repo / "sub") == f"file://{repo}#sub"
    assert remote_url(repo) is None
    git(repo, "remote", "add", "origin", "https://me:token@example.invalid/x.git")
    assert remote_url(repo / "sub") == "https://example.invalid/x.git"
    assert strip_credentials("git@example.invalid:x.git") == "git@example.invalid:x.git"
    assert strip_credentials("ssh://me@h/x") == "ssh://h/x"


# --- a local store, seen from a container ----------------------------------------------------------


def test_a_local_store_and_its_artifacts_are_mounted_at_the_same_paths(tmp_path: Path) -> None:
    from mlproj.backends.base import Launch
    from mlproj.backends.containers import local_tracking_volumes
    from mlproj.process import ExecRequest
    from mlproj.runs.request import RunRequest

    store = tmp_path / "store"
    store.mkdir()
    artifacts = tmp_path / "mlruns" / "1" / "abc" / "artifacts"

    def launch(uri: str, artifact_uri: str | None) -> Launch:
        request = RunRequest(
            command="true", cwd=str(tmp_path), env={"MLFLOW_TRACKING_URI": uri} if uri else {}
        )
        record = RunRecord(run_id=new_run_id(), mlflow_artifact_uri=artifact_uri)
        process = ExecRequest(argv=("true",), cwd=tmp_path, env={}, log_path=tmp_path / "log")
        return Launch(record=record, request=request, process=process)

    assert local_tracking_volumes(launch(f"sqlite:///{store}/mlflow.db", str(artifacts))) == [
        f"{store}:{store}:rw",
        f"{artifacts}:{artifacts}:rw",
    ]
    assert artifacts.is_dir()  # made, so the engine mounts a folder (not a new root-owned one)
    assert local_tracking_volumes(launch(f"file://{store}", f"file://{artifacts}")) == [
        f"{store}:{store}:rw",
        f"{artifacts}:{artifacts}:rw",
    ]
    assert local_tracking_volumes(launch("http://127.0.0.1:5000", "mlflow-artifacts:/1/abc/artifacts")) == []
    assert local_tracking_volumes(launch("", None)) == []


# --- requests answered later: the prefetched experiment, deferred parameters, the end together -----


def _first_line(request: bytes) -> str:
    return request.split(b"\r\n")[0].decode()


def test_a_prefetched_experiment_is_read_without_asking_again(serve: Callable[..., RawServer]) -> None:
    from mlproj.tracking import rest

    server = serve(lambda _: ok(b'{"experiment": {"experiment_id": "9", "lifecycle_stage": "active"}}'))
    uri = f"http://127.0.0.1:{server.port}"
    rest.prefetch_experiment(uri, "named")
    assert (uri, "named") in rest._PREFETCHED
    tracker = RestTracker(uri)
    _OPENED.append(tracker)
    assert tracker.experiment_id_by_name("named") == "9"
    assert [_first_line(r) for r in server.requests] == [
        "GET /api/2.0/mlflow/experiments/get-by-name?experiment_name=named HTTP/1.1"
    ]
    assert (uri, "named") not in rest._PREFETCHED
    # Another name is asked the usual way.
    assert tracker.experiment_id_by_name("other") == "9"
    assert len(server.requests) == 2


def test_a_prefetch_that_failed_is_asked_again(serve: Callable[..., RawServer]) -> None:
    from mlproj.tracking import rest

    answers = iter([None, ok(b'{"experiment": {"experiment_id": "4"}}')])
    server = serve(lambda _: next(answers))
    uri = f"http://127.0.0.1:{server.port}"
    rest.prefetch_experiment(uri, "x")  # its connection is closed without an answer
    tracker = RestTracker(uri)
    _OPENED.append(tracker)
    assert tracker.experiment_id_by_name("x") == "4"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    rest.prefetch_experiment(f"http://127.0.0.1:{closed}", "y")  # refused: nothing kept
    assert (f"http://127.0.0.1:{closed}", "y") not in rest._PREFETCHED


def test_parameters_sent_now_are_settled_later(
    serve: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(lambda _: ok(b'{"run": {"info": {"run_id": "r9", "experiment_id": "0"}}}'))
    tracker = RestTracker(f"http://127.0.0.1:{server.port}")
    _OPENED.append(tracker)
    monkeypatch.setattr(tracking_runs, "_UNSETTLED", [])
    run = tracking_runs.start_run(
        tracker,
        tracking_runs.Experiment("0", "Default"),
        run_name=None,
        tags={},
        params={"a": "1"},
        defer_params=True,
    )
    assert run.run_id == "r9"
    assert len(tracking_runs._UNSETTLED) == 1
    tracking_runs.settle()
    assert tracking_runs._UNSETTLED == []
    lines = [_first_line(r) for r in server.requests]
    assert lines == [
        "POST /api/2.0/mlflow/runs/create HTTP/1.1",
        "POST /api/2.0/mlflow/runs/log-batch HTTP/1.1",
    ]
    assert json.loads(server.requests[1].partition(b"\r\n\r\n")[2])["params"] == [{"key": "a", "value": "1"}]


def test_parameters_that_failed_are_sent_again_and_else_warned(
    serve: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def first_fails() -> Callable[[], None]:
        def later() -> None:
            raise TrackingUnreachable("tracking server: connection reset")

        return later

    server = serve(lambda _: ok(b"{}"))
    uri = f"http://127.0.0.1:{server.port}"
    tracking_runs._settle_params(first_fails(), uri, "r1", {"a": "1"})
    assert [_first_line(r) for r in server.requests] == ["POST /api/2.0/mlflow/runs/log-batch HTTP/1.1"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    tracking_runs._settle_params(first_fails(), f"http://127.0.0.1:{closed}", "r2", {"a": "1"})
    assert "the parameters of MLflow run r2 were not logged" in capsys.readouterr().err


def test_the_log_and_the_end_go_together(serve: Callable[..., RawServer], tmp_path: Path) -> None:
    def reply(request: bytes) -> bytes:
        if request.startswith(b"PUT"):
            body = b'{"message": "artifacts read-only"}'
            return b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        return ok(b"{}")

    server = serve(reply)
    tracker = RestTracker(f"http://127.0.0.1:{server.port}")
    _OPENED.append(tracker)
    problem = tracker.finish(
        "r", "FINISHED", 5, ("mlflow-artifacts:/1/r/artifacts", "mlproj/output.log", b"log")
    )
    assert problem is not None and "artifacts read-only" in problem
    lines = sorted(_first_line(r) for r in server.requests)
    assert lines == [
        "POST /api/2.0/mlflow/runs/update HTTP/1.1",
        "PUT /api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/mlproj/output.log HTTP/1.1",
    ]
    assert server.connections == 2  # on two connections, at once
    assert tracker.finish("r", "FAILED", 6, None) is None  # no log: the end alone


# --- what a review found: no POST twice, nothing dropped or leaked, every answer checked ------------


def test_a_post_that_timed_out_is_not_sent_again(serve: Callable[..., RawServer]) -> None:
    def slow(request: bytes) -> bytes:
        if b"runs/create" in request:
            time.sleep(1.0)
        return ok(b'{"run": {"info": {"run_id": "r", "experiment_id": "0"}}}')

    server = serve(slow)
    client = session(server.port, timeout=0.3)
    client.request("GET", "/warm")  # the connection is now a kept-alive one
    with pytest.raises(HttpError, match="timed out"):
        client.request("POST", "/api/2.0/mlflow/runs/create", b"{}")
    time.sleep(1.2)
    assert [_first_line(r) for r in server.requests].count("POST /api/2.0/mlflow/runs/create HTTP/1.1") == 1


def test_control_characters_never_reach_a_request_line() -> None:
    for bad in ("http://h:1/x\r\nX-Injected: yes", "http://h\x00:1", "http://h:1/\x7f"):
        with pytest.raises(ValueError, match="control characters"):
            Endpoint.parse(bad)
    with pytest.raises(TrackingError, match="tracking URI"):
        RestTracker("http://h:1/a\r\nX: y")


def test_messages_never_carry_the_credentials_of_the_uri(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda _: b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
    tracker = rest(f"http://alice:s3cret@127.0.0.1:{server.port}")
    with pytest.raises(TrackingError) as caught:
        tracker.experiment_id_by_name("x")
    assert "s3cret" not in str(caught.value) and "alice" not in str(caught.value)
    assert f"http://127.0.0.1:{server.port}" in str(caught.value)
    record = RunRecord(run_id=new_run_id(), tracking_uri="https://bob:token@mlflow.example/x")
    assert record.to_dict()["tracking_uri"] == "https://mlflow.example/x"


def test_an_answer_without_what_mlflow_sends_is_a_tracking_error(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda _: ok(b'{"unexpected": true}'))
    tracker = rest(f"http://127.0.0.1:{server.port}")
    with pytest.raises(TrackingError, match=r"an answer without run\.info"):
        tracker.create_run("0", run_name=None, start_time=1, user="u", tags={})
    with pytest.raises(TrackingError, match="an answer without experiment_id"):
        tracker.create_experiment("x")
    with pytest.raises(TrackingError, match="an answer without experiment"):
        tracker.experiment_id_by_name("x")


def test_a_runs_listing_outside_the_folder_asked_for_is_refused(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    from mlproj.tracking.artifacts import fetch

    def reply(request: bytes) -> bytes:
        line = _first_line(request)
        if "runs/get" in line:
            return ok(
                b'{"run": {"info": {"run_id": "r", "artifact_uri": "mlflow-artifacts:/0/r/artifacts"}}}'
            )
        return ok(b'{"files": [{"path": "elsewhere.txt", "is_dir": false}]}')

    server = serve(reply)
    with pytest.raises(ParameterError, match=r"listed 'elsewhere\.txt' under 'a/b'"):
        fetch("d", "runs:/r/a/b", tmp_path / "downloads", f"http://127.0.0.1:{server.port}")
    assert not (tmp_path / "elsewhere.txt").exists()
    assert not (tmp_path / "downloads" / "d").exists()  # nothing half-downloaded left


def test_an_end_not_authorized_here_is_kept(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unauthorized(MemoryTracker):
        def _check(self) -> None:
            raise TrackingError("tracking server http://memory: not authorized (HTTP 401)")

    _use(monkeypatch, Unauthorized())
    record = _tracked_run(store, tmp_path)
    store.transition(record.run_id, RunStatus.FINISHED, ended_at=2.0)
    assert tracking_runs.send_pending(store) == 0
    assert store.get(record.run_id).tracking_pending is not None  # kept for a shell that has the token


def test_a_step_ended_while_its_mlflow_run_was_made_gets_its_end(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, MemoryTracker())
    parent = _tracked_run(store, tmp_path)
    step = store.insert(
        RunRecord(
            run_id=new_run_id(),
            kind=RunKind.STEP,
            parent_run_id=parent.run_id,
            step="a",
            run_dir=str(tmp_path),
        )
    )
    store.transition(step.run_id, RunStatus.CANCELED, ended_at=3.0)  # canceled meanwhile: no MLflow run yet
    tracking_runs.begin_nested(store, store.get(parent.run_id), store.get(step.run_id), {})
    ended = store.get(step.run_id)
    assert ended.mlflow_run_id == "m1"
    assert ended.tracking_pending is not None and json.loads(ended.tracking_pending) == {
        "status": "KILLED",
        "end_time": 3000,
    }


def test_reading_commands_send_every_waiting_end(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline's steps are not listed by `runs`: their waiting ends are sent all the same."""
    tracker = MemoryTracker()
    _use(monkeypatch, tracker)
    parent = _tracked_run(store, tmp_path)
    step = store.insert(
        RunRecord(
            run_id=new_run_id(),
            kind=RunKind.STEP,
            status=RunStatus.RUNNING,
            parent_run_id=parent.run_id,
            step="a",
            tracking_uri="http://memory",
            mlflow_run_id="m2",
        )
    )
    store.transition(step.run_id, RunStatus.FAILED, ended_at=4.0)
    from tests.helpers import invoke

    assert invoke("runs").returncode == 0
    assert store.get(step.run_id).tracking_pending is None
    assert ("end", ("m2", "FAILED", 4000)) in tracker.calls
