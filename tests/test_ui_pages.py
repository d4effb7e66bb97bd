"""The web UI's pages over HTTP (design.md §11), against a real `mlproj serve`: logging in with a token
or `mlproj ui`'s one-time link, sessions, the runs and run pages, the live log, cancel with its CSRF
value, and what a reader, a forged form or another site may not do. (What a browser runs of them is
tested in a real Chromium: tests/test_ui_browser.py.)"""

from __future__ import annotations

import http.client
import re
import urllib.parse
from pathlib import Path

import pytest

from mlproj.home import Home
from mlproj.runs.store import Store
from mlproj.server.ui.sessions import new_login_code
from tests.helpers import mlproj, mlproj_json, wait_until
from tests.pipelines import write_pipeline
from tests.servers import Server, token


class Visitor:
    """A browser without a browser: one cookie, forms posted from the server's own origin."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.cookie: str | None = None

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, origin: str | None = "same"
    ) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        headers = {}
        if self.cookie:
            headers["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if origin == "same":
            headers["Origin"] = self.server.url
        elif origin is not None:
            headers["Origin"] = origin
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            text = answer.read().decode("utf-8", "replace")
            found = {key.lower(): value for key, value in answer.getheaders()}
        finally:
            connection.close()
        cookie = found.get("set-cookie")
        if cookie:
            value = cookie.split(";")[0]
            self.cookie = None if value.endswith("=") or "max-age=0" in cookie.lower() else value
        return answer.status, found, text

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, origin=None)

    def log_in(self, key: str) -> None:
        status, headers, _ = self.request("POST", "/login", {"token": key, "next": "/"})
        assert status == 303 and headers["location"] == "/", status

    def csrf(self, path: str) -> str:
        _, _, page = self.get(path)
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert found, page[:500]
        return found.group(1)


@pytest.fixture
def tokens(home: Home) -> dict[str, str]:
    return {role: token(f"ui-{role}", role) for role in ("read", "submit")}


def slow_run(tmp_path: Path, seconds: float = 30) -> str:
    pipeline = write_pipeline(
        tmp_path / "slow.yml",
        f"""
        type: pipeline
        name: <b>slow</b>
        jobs:
          wait:
            command: for i in 1 2 3; do echo "tick <$i>"; sleep 0.3; done; sleep {seconds}
        """,
    )
    done = mlproj("run", str(pipeline), "--detach")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pages_need_a_session_and_a_token_makes_one(server: Server, tokens: dict[str, str]) -> None:
    visitor = Visitor(server)
    status, headers, _ = visitor.get("/runs/abcd?x=1")
    assert status == 303 and headers["location"] == "/login?next=%2Fruns%2Fabcd%3Fx%3D1"
    status, _, page = visitor.get("/login")
    assert status == 200 and 'type="password"' in page
    status, _, page = visitor.request("POST", "/login", {"token": "mlp_wrong", "next": "/"})
    assert status == 401 and "unknown or revoked" in page and visitor.cookie is None
    status, headers, _ = visitor.request(
        "POST", "/login", {"token": tokens["read"], "next": "https://evil.example/"}
    )
    assert status == 303 and headers["location"] == "/"  # never sent to another site
    cookie = headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    status, headers, page = visitor.get("/")
    assert status == 200 and "ui-read (read)" in page
    assert headers["content-security-policy"].startswith("default-src 'self'")
    assert headers["x-content-type-options"] == "nosniff"
    # Revoking the token ends its sessions.
    assert mlproj("tokens", "revoke", "ui-read").returncode == 0
    assert visitor.get("/")[0] == 303


def test_a_one_time_link_logs_in_once(server: Server, home: Home) -> None:
    store = Store.open(home)
    try:
        code = new_login_code(store.access(), "admin")
    finally:
        store.close()
    visitor = Visitor(server)
    status, headers, _ = visitor.get(f"/login?code={code}&next=/published")
    assert status == 303 and headers["location"] == "/published" and visitor.cookie
    assert "mlproj ui (admin)" in visitor.get("/")[2]
    again = Visitor(server)
    status, _, page = again.get(f"/login?code={code}")
    assert status == 403 and "has been used or has expired" in page and again.cookie is None


def test_the_runs_page_lists_filters_and_escapes(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    run_id = slow_run(tmp_path, seconds=0.1)
    assert mlproj("wait", run_id).returncode == 0
    visitor = Visitor(server)
    visitor.log_in(tokens["read"])
    _, _, page = visitor.get("/")
    assert f'href="/runs/{run_id}"' in page
    assert "&lt;b&gt;slow&lt;/b&gt;" in page and "<b>slow</b>" not in page  # a name is text, not HTML
    assert 'hx-get="/ui/rows?' in page  # statuses refresh without a reload
    _, _, rows = visitor.get("/ui/rows?status=Finished")
    assert run_id in rows and "<html" not in rows
    _, _, none = visitor.get("/?status=Failed")
    assert "No runs match" in none
    assert run_id in visitor.get("/?name=slow")[2]
    assert run_id not in visitor.get("/?name=nothing-like-it")[2]
    status, _, page = visitor.get("/?status=Nope")
    assert status == 400 and "Nope" in page
    status, _, page = visitor.get("/?cursor=%ff")
    assert status == 400


def test_the_run_page_follows_the_log_and_cancel_needs_its_form(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    run_id = slow_run(tmp_path)
    submitter = Visitor(server)
    submitter.log_in(tokens["submit"])
    wait_until(lambda: mlproj_json("status", run_id)["status"] == "Running")
    step = next(s for s in mlproj_json("status", run_id)["steps"] if s["step"] == "wait")
    wait_until(lambda: "tick <3>" in mlproj("logs", run_id, "--step", "wait").stdout)
    status, _, page = submitter.get(f"/runs/{step['run_id']}")
    assert status == 200 and "tick &lt;1&gt;" in page  # the log so far, escaped, without JavaScript
    assert 'sse-connect="/runs/' in page and 'id="cancel"' in page
    # The stream: status first, then the new lines as they come.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(
        "GET", f"/runs/{step['run_id']}/stream?offset=0", headers={"Cookie": submitter.cookie or ""}
    )
    answer = connection.getresponse()
    assert answer.status == 200 and (answer.getheader("content-type") or "").startswith("text/event-stream")
    received = ""
    while "event: line" not in received or "event: status" not in received:
        received += answer.read1(4096).decode()
    assert "status-Running" in received
    assert '<span class="line">tick &lt;1&gt;' in received and "<1>" not in received  # escaped
    assert re.search(r"^id: \d+$", received, re.MULTILINE)  # where a reconnection goes on from
    connection.close()
    # A form without its CSRF value, or from another site, does nothing.
    status, _, page = submitter.request("POST", f"/runs/{run_id}/cancel", {"csrf": "0" * 32})
    assert status == 403 and "not one this server gave" in page
    csrf = submitter.csrf(f"/runs/{run_id}")
    status, _, page = submitter.request(
        "POST", f"/runs/{run_id}/cancel", {"csrf": csrf}, origin="http://evil.example"
    )
    assert status == 403 and "another site" in page
    status, _, _ = submitter.request("POST", f"/runs/{run_id}/cancel", {"csrf": csrf}, origin=None)
    assert status == 403
    assert mlproj_json("status", run_id)["status"] == "Running"
    status, headers, _ = submitter.request("POST", f"/runs/{run_id}/cancel", {"csrf": csrf})
    assert status == 303 and headers["location"] == f"/runs/{run_id}"
    wait_until(lambda: mlproj_json("status", run_id)["status"] == "Canceled", timeout=60)


def test_a_reader_sees_no_cancel_button_and_may_not_cancel(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    run_id = slow_run(tmp_path)
    try:
        reader = Visitor(server)
        reader.log_in(tokens["read"])
        _, _, page = reader.get(f"/runs/{run_id}")
        assert 'id="cancel"' not in page
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf  # the logout form's: a valid form value, still not enough
        status, _, page = reader.request("POST", f"/runs/{run_id}/cancel", {"csrf": csrf.group(1)})
        assert status == 403 and "needs a submit token" in page
        anonymous = Visitor(server)
        status, _, _ = anonymous.request("POST", f"/runs/{run_id}/cancel", {"csrf": csrf.group(1)})
        assert status == 403
        assert mlproj_json("status", run_id)["status"] in ("Queued", "Running")
    finally:
        mlproj("cancel", run_id, "--grace", "1")


def test_nothing_on_the_pages_leaves_the_server(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    visitor = Visitor(server)
    visitor.log_in(tokens["read"])
    run_id = slow_run(tmp_path, seconds=0.1)
    assert mlproj("wait", run_id).returncode == 0
    for path in ("/", f"/runs/{run_id}", "/published", "/endpoints", "/schedules", "/login"):
        status, _, page = visitor.get(path)
        assert status == 200, path
        sources = re.findall(r'(?:src|href|action|sse-connect|hx-get|data-panel)="([^"]*)"', page)
        assert sources and all(s.startswith("/") or s == "#main" for s in sources), (path, sources)
    for asset in ("/static/htmx.min.js", "/static/htmx-sse.js", "/static/app.css", "/static/ui.js"):
        status, _, text = visitor.get(asset)
        assert status == 200, asset
        assert not re.search(r"(?:src|href|url)\s*[=(]\s*[\"']?https?://", text), asset
    assert visitor.get("/static/../mlproj.db")[0] == 404


def test_logout_ends_the_session(server: Server, tokens: dict[str, str]) -> None:
    visitor = Visitor(server)
    visitor.log_in(tokens["read"])
    csrf = visitor.csrf("/")
    copied = visitor.cookie
    other = Visitor(server)  # another session of the same token lives on
    other.log_in(tokens["read"])
    status, headers, _ = visitor.request("POST", "/logout", {"csrf": csrf})
    assert status == 303 and headers["location"] == "/login" and visitor.cookie is None
    assert visitor.get("/")[0] == 303
    visitor.cookie = copied  # a copy of the cookie, kept from before: the session has ended
    assert visitor.get("/")[0] == 303
    assert other.get("/")[0] == 200


def test_hostile_cookies_and_forms_are_refused_not_failed(server: Server, tokens: dict[str, str]) -> None:
    visitor = Visitor(server)
    visitor.log_in(tokens["read"])
    name = (visitor.cookie or "").split("=")[0]
    assert name.startswith("mlproj_session_")  # a server's own cookie name: ports share cookies
    for forged in ("a.\u00e9", "x" * 3000, "not-a-session", "e30.0000"):
        intruder = Visitor(server)
        intruder.cookie = f"{name}={forged}".encode().decode("latin-1")
        status, headers, _ = intruder.get("/")
        assert status == 303 and headers["location"].startswith("/login"), forged
    status, _, page = visitor.request("POST", "/logout", {"csrf": "\u00e9" * 10})
    assert status == 403 and "not one this server gave" in page
    # A part of a page asked for without a session: the page goes to log in (htmx follows HX-Redirect).
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/ui/rows", headers={"HX-Request": "true"})
    answer = connection.getresponse()
    answer.read()
    connection.close()
    assert answer.status == 401 and answer.getheader("HX-Redirect") == "/login"


def test_mlproj_ui_prints_a_link_that_logs_in(home: Home) -> None:
    import subprocess
    import sys

    from tests.servers import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        link = process.stdout.readline().strip()
        assert link.startswith(f"http://127.0.0.1:{port}/login?code=")
        server = Server(home.root, port)
        visitor = Visitor(server)
        wait_until(lambda: _answers(port))
        status, headers, _ = visitor.get(link.removeprefix(server.url))
        assert status == 303 and headers["location"] == "/"
        assert "mlproj ui (admin)" in visitor.get("/")[2]
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except OSError:
        return False


def test_a_pipeline_run_s_page_draws_its_dag(server: Server, tokens: dict[str, str], tmp_path: Path) -> None:
    run_id = slow_run(tmp_path, seconds=0.1)
    assert mlproj("wait", run_id).returncode == 0
    visitor = Visitor(server)
    visitor.log_in(tokens["read"])
    _, _, page = visitor.get(f"/runs/{run_id}")
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="dag"' in page and "✓ Finished" in page
    assert 'hx-get="/ui/pipeline/' not in page  # an ended run's DAG is not asked for again
    status, _, part = visitor.get(f"/ui/pipeline/{run_id}")
    assert status == 286 and "<svg" in part and "<html" not in part  # 286: htmx stops asking
    assert 'href="/runs/' in part and "Finished" in part  # the steps table comes with it


def test_outputs_are_listed_and_downloaded_and_nothing_else(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    pipeline = write_pipeline(
        tmp_path / "out.yml",
        """
        type: pipeline
        jobs:
          make:
            command: mkdir -p ${{outputs.model}}/sub && echo weights > ${{outputs.model}}/sub/w.txt
            outputs:
              model: {type: uri_folder}
        """,
    )
    record = mlproj_json("run", str(pipeline))
    step = next(s for s in record["steps"] if s["step"] == "make")
    (tmp_path / "secret.txt").write_text("not yours")
    Path(step["outputs"]["model"], "leak").symlink_to(tmp_path / "secret.txt")
    visitor = Visitor(server)
    visitor.log_in(tokens["read"])
    _, _, page = visitor.get(f"/runs/{step['run_id']}")
    assert f'href="/runs/{step["run_id"]}/outputs/model"' in page
    status, _, listing = visitor.get(f"/runs/{step['run_id']}/outputs/model")
    assert status == 200 and "sub/w.txt" in listing
    status, headers, text = visitor.get(f"/runs/{step['run_id']}/outputs/model?file=sub%2Fw.txt")
    assert status == 200 and text == "weights\n" and "attachment" in headers["content-disposition"]
    for bad in ("../../../../etc/passwd", "leak", "/etc/passwd", "sub"):
        status, _, _ = visitor.get(f"/runs/{step['run_id']}/outputs/model?file={urllib.parse.quote(bad)}")
        assert status == 404, bad
    assert visitor.get(f"/runs/{step['run_id']}/outputs/nope")[0] == 404
