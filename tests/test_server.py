"""`mlproj serve` (design.md §10), as a real server process on 127.0.0.1 (tests/servers.py): publish →
submit over REST in both body forms → Finished → listed as the published pipeline's runs; roles;
disabled pipelines; logs followed over server-sent events; pages; a server killed mid-run; schedules
across restarts; hostile requests; the Python client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlproj.api.client import Client, ClientError
from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store
from tests.helpers import assert_nothing_unfinished, mlproj, mlproj_json, wait_until
from tests.pipelines import write_pipeline
from tests.servers import Server, free_port, token

FINAL = ("Finished", "Failed", "Canceled")


@pytest.fixture
def tokens(home: Home) -> dict[str, str]:
    return {role: token(f"{role}-token", role) for role in ("read", "submit", "admin")}


@pytest.fixture
def published(tmp_path: Path, home: Home) -> str:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        name: say
        inputs:
          word: {type: string, default: hi}
          pause: {type: number, default: 0}
        jobs:
          say:
            command: sleep ${{inputs.pause}} && echo said ${{inputs.word}}
            inputs:
              word: ${{parent.inputs.word}}
              pause: ${{parent.inputs.pause}}
        """,
    )
    done = mlproj("publish", str(pipeline), "--name", "say")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def finished(server: Server, run_id: str, key: str) -> dict[str, object]:
    def ended() -> dict[str, object] | None:
        status, record = server.request("GET", f"/api/v1/runs/{run_id}", token=key)
        assert status == 200, record
        return record if record["status"] in FINAL else None

    return dict(wait_until(ended, timeout=60))


def test_submit_a_published_pipeline_in_both_body_forms(
    server: Server, tokens: dict[str, str], published: str
) -> None:
    path = f"/api/v1/published/{published}/submit"
    status, ours = server.request(
        "POST", path, token=tokens["submit"], body={"experiment_name": "e1", "parameters": {"word": "mlproj"}}
    )
    assert status == 201, ours
    assert ours["published_pipeline_id"] == published and ours["experiment"] == "e1"
    status, azure = server.request(
        "POST",
        path,
        token=tokens["submit"],
        body={"ExperimentName": "e2", "ParameterAssignments": {"word": "azure"}},
    )
    assert status == 201, azure
    for record, word in ((ours, "mlproj"), (azure, "azure")):
        ended = finished(server, str(record["run_id"]), tokens["read"])
        assert ended["status"] == "Finished"
        status, log = server.request(
            "GET", f"/api/v1/runs/{record['run_id']}/logs?step=say", token=tokens["read"]
        )
        assert status == 200 and log == f"said {word}\n"
    assert azure["experiment"] == "e2"
    status, runs = server.request("GET", f"/api/v1/published/{published}/runs", token=tokens["read"])
    assert status == 200 and [r["run_id"] for r in runs["runs"]] == [azure["run_id"], ours["run_id"]]
    # The same, as `get_pipeline_runs` and `runs --published` see it.
    from mlproj.api.pipeline import get_pipeline_runs

    assert [r.run_id for r in get_pipeline_runs(None, published)] == [azure["run_id"], ours["run_id"]]
    assert [r["run_id"] for r in mlproj_json("runs", "--published", published)] == [
        azure["run_id"],
        ours["run_id"],
    ]


def test_each_role_may_do_what_it_may_and_no_more(
    server: Server, tokens: dict[str, str], published: str
) -> None:
    read, submit, admin = tokens["read"], tokens["submit"], tokens["admin"]
    submit_path = f"/api/v1/published/{published}/submit"
    assert server.request("GET", "/api/v1/runs")[0] == 401  # no token
    assert server.request("GET", "/api/v1/runs", token="mlp_not-a-token")[0] == 401  # noqa: S106
    assert server.request("GET", "/api/v1/runs", headers={"Authorization": f"Basic {read}"})[0] == 401
    assert server.request("GET", "/api/v1/openapi.json")[0] == 401
    assert server.request("GET", "/health")[0] == 200  # the one open route
    assert server.request("GET", "/api/v1/runs", token=read)[0] == 200
    status, body = server.request("POST", submit_path, token=read, body={})
    assert status == 403 and body == {"error": "this needs a submit token; this one is read"}
    status, run = server.request("POST", submit_path, token=submit, body={})
    assert status == 201
    assert server.request("POST", f"/api/v1/published/{published}/disable", token=submit)[0] == 403
    assert server.request("POST", "/api/v1/runs", token=submit, body={"uri": "."})[0] == 403
    assert server.request("POST", "/api/v1/published", token=submit, body={"uri": ".", "name": "x"})[0] == 403
    assert server.request("POST", f"/api/v1/runs/{run['run_id']}/cancel", token=read)[0] == 403
    assert server.request("POST", f"/api/v1/published/{published}/disable", token=admin)[0] == 200
    # A revoked token is no token.
    assert mlproj("tokens", "revoke", "read-token").returncode == 0
    assert server.request("GET", "/api/v1/runs", token=read)[0] == 401
    finished(server, str(run["run_id"]), admin)


def test_disabled_pipelines_and_endpoints_answer_409(
    server: Server, tokens: dict[str, str], published: str
) -> None:
    admin = tokens["admin"]
    status, endpoint = server.request(
        "POST", "/api/v1/endpoints", token=admin, body={"name": "sayer", "pipeline_id": published}
    )
    assert status == 201 and endpoint["default_version"] == "0"
    assert server.request("POST", "/api/v1/endpoints/sayer/disable", token=admin)[0] == 200
    status, body = server.request("POST", "/api/v1/endpoints/sayer/submit", token=admin, body={})
    assert status == 409 and body["error"] == "endpoint 'sayer' is disabled"
    assert server.request("POST", "/api/v1/endpoints/sayer/enable", token=admin)[0] == 200
    assert server.request("POST", f"/api/v1/published/{published}/disable", token=admin)[0] == 200
    status, body = server.request("POST", f"/api/v1/published/{published}/submit", token=admin, body={})
    assert status == 409 and "is disabled" in body["error"]
    assert server.request("POST", "/api/v1/endpoints/sayer/submit", token=admin, body={})[0] == 409
    assert (
        server.request(
            "POST", "/api/v1/endpoints", token=admin, body={"name": "sayer", "pipeline_id": published}
        )[0]
        == 409
    )
    assert mlproj_json("runs") == []


def test_endpoints_submit_their_default_or_the_version_asked(
    server: Server, tokens: dict[str, str], published: str, tmp_path: Path
) -> None:
    admin = tokens["admin"]
    pipeline = tmp_path / "p.yml"
    pipeline.write_text(pipeline.read_text().replace("default: hi", "default: v1"))
    second = mlproj("publish", str(pipeline), "--name", "say").stdout.strip()
    server.request("POST", "/api/v1/endpoints", token=admin, body={"name": "sayer", "pipeline_id": published})
    status, endpoint = server.request(
        "POST",
        "/api/v1/endpoints/sayer/versions",
        token=admin,
        body={"pipeline_id": second, "set_default": True},
    )
    assert status == 201 and endpoint["default_version"] == "1"
    status, run = server.request("POST", "/api/v1/endpoints/sayer/submit", token=tokens["submit"], body={})
    assert status == 201 and run["published_pipeline_id"] == second and run["endpoint"] == "sayer"
    status, old = server.request(
        "POST",
        "/api/v1/endpoints/sayer/submit",
        token=tokens["submit"],
        body={"PipelineVersion": 0, "ExperimentName": "x"},
    )
    assert status == 201 and old["published_pipeline_id"] == published and old["experiment"] == "x"
    status, body = server.request(
        "POST", "/api/v1/endpoints/sayer/submit", token=tokens["submit"], body={"version": "9"}
    )
    assert status == 404 and "has no version '9'" in body["error"]
    for record in (run, old):
        assert finished(server, str(record["run_id"]), admin)["status"] == "Finished"


def test_logs_are_followed_as_server_sent_events(
    server: Server, tokens: dict[str, str], published: str
) -> None:
    client = Client(server.url, tokens["submit"])
    run = client.submit(published, {"word": "streamed", "pause": 1.5})
    lines = list(client.follow(run["run_id"]))  # a pipeline's log: its events
    assert "mlproj: say: Running (ran: no earlier run)" in lines
    assert lines[-1] == "mlproj: pipeline Finished"
    assert client.run(run["run_id"])["status"] == "Finished"
    stepped = list(client.follow(run["run_id"], step="say"))
    assert stepped == ["said streamed"]
    # The raw stream: events, then an `end` event carrying the final status.
    status, text = server.request("GET", f"/api/v1/runs/{run['run_id']}/logs?follow=1", token=tokens["read"])
    assert status == 200 and text.endswith("event: end\ndata: Finished\n\n")


def test_runs_are_paged_by_a_cursor(server: Server, tokens: dict[str, str], home: Home) -> None:
    store = Store.open(home)
    try:
        base = time.time() - 1000
        with store.immediate():
            for index in range(130):  # some share a creation time: the run ID breaks the tie
                store.insert(
                    RunRecord(
                        run_id=f"{index:032x}",
                        kind=RunKind.PROJECT,
                        status=RunStatus.FINISHED if index % 2 else RunStatus.FAILED,
                        created_at=base + index // 3,
                    )
                )
    finally:
        store.close()
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=50" + (f"&cursor={cursor}" if cursor else "")
        status, page = server.request("GET", "/api/v1/runs" + query, token=tokens["read"])
        assert status == 200
        seen += [run["run_id"] for run in page["runs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 130 and len(set(seen)) == 130
    expected = sorted(range(130), key=lambda i: (base + i // 3, f"{i:032x}"), reverse=True)
    assert seen == [f"{i:032x}" for i in expected]
    status, failed = server.request("GET", "/api/v1/runs?status=Failed&limit=500", token=tokens["read"])
    assert status == 200 and len(failed["runs"]) == 65 and failed["next_cursor"] is None
    client = Client(server.url, tokens["read"])
    assert len(list(client.runs(status="Finished"))) == 65
    assert len(list(client.runs(limit=7))) == 7


def test_a_server_killed_mid_run_loses_nothing(home: Home, tokens: dict[str, str], published: str) -> None:
    first = Server(home.root).start()
    status, run = first.request(
        "POST",
        f"/api/v1/published/{published}/submit",
        token=tokens["submit"],
        body={"parameters": {"pause": 3}},
    )
    assert status == 201
    wait_until(
        lambda: (
            first.request("GET", f"/api/v1/runs/{run['run_id']}", token=tokens["read"])[1]["status"]
            == "Running"
        )
    )
    first.kill()  # SIGKILL: no goodbye
    second = Server(home.root).start()
    try:
        ended = finished(second, str(run["run_id"]), tokens["read"])
        assert ended["status"] == "Finished"
        assert (
            second.request("GET", f"/api/v1/runs/{run['run_id']}/logs?step=say", token=tokens["read"])[1]
            == "said hi\n"
        )
    finally:
        second.stop()
    assert_nothing_unfinished(home)


def test_a_schedule_fires_once_per_tick_across_restarts_and_two_servers(
    home: Home, tokens: dict[str, str], published: str
) -> None:
    done = mlproj("schedules", "create", "often", "--pipeline", published, "--every", "2s", "-P", "word=tick")
    assert done.returncode == 0, done.stderr
    servers = [Server(home.root).start(), Server(home.root).start()]  # two servers, one store
    try:
        time.sleep(4.5)
        servers[0].stop()
        servers[0] = Server(home.root).start()  # restarted within a tick
        time.sleep(3.5)
    finally:
        for running in servers:
            running.stop()
    shown = mlproj_json("schedules", "show", "often")
    assert len(shown["fires"]) >= 3, shown["fires"]  # each tick once (the runs below, one per fire)
    assert all(fire["run_id"] and not fire["error"] for fire in shown["fires"])
    runs = [r for r in mlproj_json("runs", "--limit", "100") if r["schedule"] == "often"]
    assert sorted(r["run_id"] for r in runs) == sorted(fire["run_id"] for fire in shown["fires"])
    for record in runs:
        assert mlproj("wait", record["run_id"]).returncode == 0
    assert_nothing_unfinished(home)


def test_hostile_requests_get_4xx_and_record_nothing(
    server: Server, tokens: dict[str, str], published: str
) -> None:
    admin = tokens["admin"]
    submit_path = f"/api/v1/published/{published}/submit"
    cases: list[tuple[str, str, Any, bytes | None, dict[str, str]]] = [
        ("GET", "/api/v1/runs/..%2F..%2Fetc%2Fpasswd", None, None, {}),
        ("GET", "/api/v1/runs/../../etc/passwd", None, None, {}),
        ("GET", "/api/v1/published/..%2F..", None, None, {}),
        ("GET", "/api/v1/endpoints/..%2F..%2Fmlproj.db", None, None, {}),
        ("GET", "/api/v1/runs/%ff%fe", None, None, {}),
        ("GET", "/api/v1/runs?cursor=not-base64!", None, None, {}),
        ("GET", "/api/v1/runs?limit=-5", None, None, {}),
        ("GET", "/api/v1/runs?status=Nope", None, None, {}),
        ("POST", submit_path, None, b"x" * (10 << 20), {"Content-Type": "application/json"}),
        ("POST", submit_path, None, b'{"parameters": {}}', {"Content-Type": "text/plain"}),
        ("POST", submit_path, None, b'{"parameters": "\xff\xfe"}', {"Content-Type": "application/json"}),
        ("POST", submit_path, None, b"[1, 2]", {"Content-Type": "application/json"}),
        ("POST", submit_path, None, b"{nope", {"Content-Type": "application/json"}),
        ("POST", submit_path, {"parameters": {"word": "x" * 200_000}}, None, {}),
        ("POST", submit_path, {"parameters": {"nope": 1}}, None, {}),
        ("POST", submit_path, {"parameters": {"word": {"nested": 1}}}, None, {}),
        ("POST", submit_path, {"parameters": []}, None, {}),
        ("POST", submit_path, {"experiment_name": 5}, None, {}),
        ("POST", "/api/v1/published", {"uri": "/etc/passwd", "name": "x"}, None, {}),
        ("POST", "/api/v1/published", {"uri": ".", "name": "../../x"}, None, {}),
        ("POST", "/api/v1/schedules", {"name": "s", "pipeline_id": published, "cron": "$(reboot)"}, None, {}),
        ("POST", "/api/v1/endpoints", {"name": "a/b", "pipeline_id": published}, None, {}),
        ("DELETE", "/api/v1/runs", None, None, {}),
        ("POST", submit_path, None, b"[" * 50_000 + b"]" * 50_000, {"Content-Type": "application/json"}),
        (
            "POST",
            submit_path,
            None,
            b'{"parameters": ' * 20_000 + b"1" + b"}" * 20_000,
            {"Content-Type": "application/json"},
        ),
        ("POST", submit_path, None, b'{"experiment_name": "\\ud800"}', {"Content-Type": "application/json"}),
        ("POST", submit_path, None, b'{"parameters": {"word": NaN}}', {"Content-Type": "application/json"}),
        ("POST", submit_path, None, b'{"parameters": {"word": 1e999}}', {"Content-Type": "application/json"}),
        (
            "POST",
            "/api/v1/schedules",
            {"name": "s", "pipeline_id": published, "cron": "\u00b2 * * * *"},
            None,
            {},
        ),
        (
            "POST",
            "/api/v1/schedules",
            {"name": "s", "pipeline_id": published, "every": "9" * 400 + "d"},
            None,
            {},
        ),
        ("GET", "/api/v1/runs?published=zzzz", None, None, {}),
        ("GET", "/api/v1/runs?published=0000", None, None, {}),
    ]
    for method, path, body, data, headers in cases:
        status, answer = server.request(method, path, token=admin, body=body, data=data, headers=headers)
        if path.endswith("/runs/../../etc/passwd"):  # the client's URL library walks it: no route
            assert status == 404
            continue
        assert 400 <= status < 500, (method, path, status, answer)
        assert isinstance(answer, dict) and answer.get("error"), (path, answer)
    deep = b"[" * 50_000 + b"]" * 50_000  # read only for a known token: 401, whatever the body
    status, answer = server.request(
        "POST",
        submit_path,
        token="mlp_unknown",  # noqa: S106 - not a secret
        data=deep,
        headers={"Content-Type": "application/json"},
    )
    assert status == 401, answer
    assert "Traceback" not in server.log.read_text()
    status, answer = server.request("GET", f"/api/v1/runs?token={admin}")
    assert status == 400 and "Authorization header" in answer["error"]
    assert server.request("GET", "/health")[0] == 200  # still up
    assert mlproj_json("runs") == []
    assert mlproj_json("schedules", "list") == []
    assert [p["id"] for p in mlproj_json("published", "list")] == [published]


def test_the_client_cancels_and_reports_errors(
    server: Server, tokens: dict[str, str], published: str
) -> None:
    client = Client(server.url, tokens["submit"])
    run = client.submit(published, {"pause": 30})
    wait_until(lambda: client.run(run["run_id"])["status"] == "Running")
    canceled = client.cancel(run["run_id"])  # asked at once; the stop goes on
    assert canceled["status"] in ("CancelRequested", "Canceled") and canceled["already_final"] is False
    assert client.wait(run["run_id"], timeout=30)["status"] == "Canceled"
    with pytest.raises(ClientError) as raised:
        client.run("ffffffff")
    assert raised.value.status == 404
    with pytest.raises(ClientError) as raised:
        Client(server.url, tokens["read"]).submit(published)
    assert raised.value.status == 403
    assert not Client("http://127.0.0.1:9", "x").health()
    with pytest.raises(ClientError, match="cannot reach"):
        Client("http://127.0.0.1:9", "x").run("abcd")
    with pytest.raises(ClientError, match="expected http"):
        Client("file:///etc/passwd", "x")


def test_openapi_describes_every_route(server: Server, tokens: dict[str, str]) -> None:
    status, document = server.request("GET", "/api/v1/openapi.json", token=tokens["read"])
    assert status == 200 and document["openapi"].startswith("3.")
    paths = document["paths"]
    assert "/api/v1/runs/{run_id}/logs" in paths and "/health" in paths
    assert paths["/api/v1/published/{pipeline_id}/submit"]["post"]["responses"].keys() >= {
        "201",
        "401",
        "403",
        "409",
    }
    assert paths["/health"]["get"]["security"] == []


def test_serving_beyond_loopback_needs_allow_remote(home: Home) -> None:
    done = mlproj("serve", "--host", "0.0.0.0", "--port", "8799", timeout=30)  # noqa: S104 - refused
    assert done.returncode == 2
    assert "not a loopback address; serving beyond this machine needs --allow-remote" in done.stderr
    done = mlproj("serve", "--ssl-keyfile", "k.pem", timeout=30)
    assert done.returncode == 2 and "go together" in done.stderr


def test_a_stopped_server_says_so_and_its_runs_go_on(
    home: Home, tokens: dict[str, str], published: str
) -> None:
    running = Server(home.root).start()
    status, run = running.request(
        "POST",
        f"/api/v1/published/{published}/submit",
        token=tokens["submit"],
        body={"parameters": {"pause": 2}},
    )
    assert status == 201
    code = running.stop(signal.SIGTERM)
    assert code in (0, 128 + signal.SIGTERM)
    assert "stopped; the runs it started go on" in running.log.read_text()
    assert mlproj("wait", str(run["run_id"])).returncode == 0
    assert json.loads(mlproj("status", str(run["run_id"]), "--json").stdout)["status"] == "Finished"


def test_several_workers_share_the_port_and_stop_together(home: Home, tokens: dict[str, str]) -> None:
    port = free_port()
    log = home.root.parent / "workers.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlproj", "serve", "--port", str(port), "--workers", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = Client(f"http://127.0.0.1:{port}", tokens["read"])
    try:
        wait_until(client.health, timeout=30)
        workers = wait_until(
            lambda: [p for p in psutil.Process(process.pid).children() if p.is_running()] or None
        )
        assert len(workers) >= 2
        for _ in range(20):  # each request lands on one worker or the other
            assert list(client.runs(limit=1)) == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    # The workers end with it (a worker may finish its own shutdown a moment after the parent's).
    _gone, alive = psutil.wait_procs(workers, timeout=15)
    assert [w for w in alive if w.is_running() and w.status() != psutil.STATUS_ZOMBIE] == []
    assert not client.health()
    assert "2 workers listening on http://127.0.0.1:" in log.read_text()


def test_tls_through_uvicorn_s_options(home: Home, tokens: dict[str, str], tmp_path: Path) -> None:
    """`--ssl-keyfile`/`--ssl-certfile`: the API over HTTPS, with a certificate made here by openssl."""
    import shutil
    import ssl
    import urllib.request

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian: apt install openssl)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    port = free_port()
    log = tmp_path / "tls.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlproj", "serve", "--port", str(port), "--ssl-keyfile", str(key),
             "--ssl-certfile", str(cert)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    context = ssl.create_default_context(cafile=str(cert))
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/api/v1/runs", headers={"Authorization": f"Bearer {tokens['read']}"}
    )

    def answered() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(request, context=context, timeout=2) as answer:
                return dict(json.loads(answer.read()))
        except OSError:
            return None

    try:
        assert wait_until(answered, timeout=30) == {"runs": [], "next_cursor": None}
        assert f"listening on https://127.0.0.1:{port}" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_every_route_needs_a_token_of_its_role(server: Server, tokens: dict[str, str]) -> None:
    from mlproj.server.app import ROUTES

    rank = {"read": 0, "submit": 1, "admin": 2}
    for spec in ROUTES:
        path = "/api/v1" + spec.path.replace("{run_id}", "0" * 32).replace("{pipeline_id}", "0" * 32)
        path = path.replace("{name}", "nothing")
        body: dict[str, Any] | None = {} if spec.body is not None else None
        status, answer = server.request(spec.method, path, body=body)
        assert status == 401, (spec.method, spec.path, answer)
        for role in ("read", "submit"):
            status, answer = server.request(spec.method, path, token=tokens[role], body=body)
            if rank[role] < rank[spec.role]:
                assert status == 403, (spec.method, spec.path, role, answer)
            else:
                assert status != 403, (spec.method, spec.path, role, answer)
