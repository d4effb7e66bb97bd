"""Load on `mlproj serve`, on loopback, bounded in count and time:

- pages: GET /runs over a store of 100,000 runs, the first page and pages deep in the history reached
  by the cursor (the goal: as fast deep as at the top);
- load: 50 concurrent clients (5 processes of 10 threads, each with a keep-alive connection) read runs
  (GET /runs/{id}) and logs (GET /runs/{id}/logs) while 100 submits of a published pipeline arrive
  (POST /published/{id}/submit, 5 a second). Every submitted run must exist and end Finished: nothing
  lost. p50/p99 latencies and requests per second (the goal: p99 of GET /runs/{id} under 50 ms).

Usage: python bench/server_load.py [--runs N] [--clients N] [--submits N] [--rate N] [--record]
Runs with the Python it is started with (mlproj[server] installed there).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
TITLE = "server_load: REST API pages over 100,000 runs; 50 clients reading while 100 submits arrive"

PIPELINE = """\
type: pipeline
jobs:
  say:
    command: echo loaded
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the store before the load")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--submits", type=int, default=100)
    parser.add_argument("--rates", default="5,1", help="submits per second, one phase each")
    parser.add_argument("--alone", type=float, default=15, help="seconds of reads alone, first")
    parser.add_argument("--settle", type=float, default=600, help="seconds for the submitted runs to end")
    parser.add_argument("--workers", type=int, default=1, help="mlproj serve --workers")
    parser.add_argument(
        "--pace", type=float, default=0.0, help="seconds between a client's requests (0: as fast as it can)"
    )
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlproj-load-"))
    env = {**os.environ, "MLPROJ_HOME": str(work / "home")}
    try:
        return run(work, env, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mlproj(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"mlproj {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def run(work: Path, env: dict[str, str], args: argparse.Namespace) -> int:
    print(f"filling a store with {args.runs} runs ...", flush=True)
    subprocess.run(
        [sys.executable, str(BENCH / "fill_store.py"), env["MLPROJ_HOME"], str(args.runs)],
        env=env,
        check=True,
        capture_output=True,
    )
    reader = mlproj(env, "tokens", "create", "reader", "--role", "read")
    submitter = mlproj(env, "tokens", "create", "submitter", "--role", "submit")
    (work / "p.yml").write_text(PIPELINE)
    published = mlproj(env, "publish", str(work / "p.yml"), "--name", "loaded")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlproj", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "serve.log").open("wb"),
    )
    try:
        _wait_up(port)
        pages = measure_pages(port, reader)
        ids = sample_ids(port, reader)
        phases = [("reads alone", measure_load(port, reader, submitter, published, ids, args, 0, args.alone))]
        for rate in (float(r) for r in args.rates.split(",")):
            load = measure_load(port, reader, submitter, published, ids, args, args.submits, rate)
            phases.append((f"while {args.submits} submits arrive, {rate:g} a second", load))
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(args, pages, phases)
    lost = sum(load["submits"] - load["finished"] for _name, load in phases)
    return 0 if lost == 0 else 1


def request(
    connection: http.client.HTTPConnection, method: str, path: str, token: str, body: object = None
) -> tuple[int, bytes, float]:
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    started = time.perf_counter()
    try:
        connection.request(method, path, body=data, headers=headers)
        answer = connection.getresponse()
    except (http.client.RemoteDisconnected, ConnectionError):  # an idle keep-alive closed by the server
        connection.close()
        started = time.perf_counter()
        connection.request(method, path, body=data, headers=headers)
        answer = connection.getresponse()
    payload = answer.read()
    return answer.status, payload, time.perf_counter() - started


def measure_pages(port: int, token: str) -> dict[str, float]:
    """Median time of the first page, and of pages 50 and 500 pages deep (through the cursor)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times: dict[str, list[float]] = {"first": [], "deep": [], "deeper": []}
    for _ in range(5):
        cursor, depth = None, 0
        while depth <= 500:
            path = "/api/v1/runs?limit=50" + (f"&cursor={cursor}" if cursor else "")
            status, payload, seconds = request(connection, "GET", path, token)
            assert status == 200, payload[:200]
            if depth == 0:
                times["first"].append(seconds)
            elif depth == 50:
                times["deep"].append(seconds)
            elif depth == 500:
                times["deeper"].append(seconds)
            cursor = json.loads(payload)["next_cursor"]
            depth += 1
            if cursor is None:
                break
    return {key: statistics.median(values) for key, values in times.items() if values}


def sample_ids(port: int, token: str) -> list[str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    status, payload, _ = request(connection, "GET", "/api/v1/runs?limit=500", token)
    assert status == 200
    return [run["run_id"] for run in json.loads(payload)["runs"]]


def _reader(
    port: int,
    token: str,
    ids: list[str],
    threads: int,
    stop_at: float,
    results: multiprocessing.Queue,
    pace: float,
) -> None:
    lock = threading.Lock()
    mine: dict[str, list[float]] = {"run": [], "logs": []}
    errors = [0]

    def loop(seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - which run to read, not a secret
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        found: dict[str, list[float]] = {"run": [], "logs": []}
        count = 0
        while time.monotonic() < stop_at:
            run_id = rng.choice(ids)
            kind = "logs" if count % 5 == 4 else "run"
            path = f"/api/v1/runs/{run_id}" + ("/logs" if kind == "logs" else "")
            try:
                status, _payload, seconds = request(connection, "GET", path, token)
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            if status != 200:
                errors[0] += 1
            found[kind].append(seconds)
            count += 1
            if pace:  # a client that asks every `pace` seconds (a dashboard, a script polling)
                time.sleep(max(0.0, pace - seconds) * rng.uniform(0.5, 1.5))
        with lock:
            for key, values in found.items():
                mine[key] += values

    workers = [threading.Thread(target=loop, args=(os.getpid() * 100 + n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((mine, errors[0]))


def measure_load(
    port: int,
    reader: str,
    submitter: str,
    published: str,
    ids: list[str],
    args: argparse.Namespace,
    submits: int,
    rate: float,
) -> dict[str, Any]:
    """`args.clients` readers for as long as `submits` submits take to arrive at `rate` a second (with
    no submits: `rate` seconds of reads alone)."""
    processes = 5
    per_process = max(1, args.clients // processes)
    duration = (submits / rate + 5) if submits else rate
    started = time.monotonic()
    stop_at = started + duration
    results: multiprocessing.Queue = multiprocessing.Queue()
    readers = [
        multiprocessing.Process(
            target=_reader, args=(port, reader, ids, per_process, stop_at, results, args.pace)
        )
        for _ in range(processes)
    ]
    for process in readers:
        process.start()
    submitted: list[str] = []
    submit_times: list[float] = []
    submit_errors = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for index in range(submits):
        due = started + 1 + index / rate
        time.sleep(max(0.0, due - time.monotonic()))
        status, payload, seconds = request(
            connection,
            "POST",
            f"/api/v1/published/{published}/submit",
            submitter,
            body={"experiment_name": "load"},
        )
        submit_times.append(seconds)
        if status == 201:
            submitted.append(json.loads(payload)["run_id"])
        else:
            submit_errors += 1
    gathered: dict[str, list[float]] = {"run": [], "logs": []}
    read_errors = 0
    for _ in readers:
        found, errors = results.get(timeout=duration + 120)
        read_errors += errors
        for key, values in found.items():
            gathered[key] += values
    for process in readers:
        process.join()
    elapsed = time.monotonic() - started
    settle_until = time.monotonic() + args.settle
    finished = failed = 0
    while time.monotonic() < settle_until:
        finished = failed = 0
        for run_id in submitted:
            status, payload, _ = request(connection, "GET", f"/api/v1/runs/{run_id}", reader)
            state = json.loads(payload)["status"] if status == 200 else "missing"
            finished += state == "Finished"
            failed += state in ("Failed", "Canceled", "missing")
        if finished + failed == len(submitted):
            break
        time.sleep(1)
    settled = time.monotonic() - started
    return {
        "run": gathered["run"],
        "logs": gathered["logs"],
        "submit": submit_times,
        "read_errors": read_errors,
        "submit_errors": submit_errors,
        "submits": submits,
        "submitted": len(submitted),
        "finished": finished,
        "failed": failed,
        "elapsed": elapsed,
        "settled": settled,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def report(
    args: argparse.Namespace, pages: dict[str, float], phases: list[tuple[str, dict[str, Any]]]
) -> None:
    def row(phase: str, name: str, values: list[float]) -> str:
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        return f"| {phase} | {name} | {len(values)} | {p50:.1f} ms | {p99:.1f} ms |"

    first, deep, deeper = (pages.get(key, 0.0) * 1000 for key in ("first", "deep", "deeper"))
    lines = [
        f"Store: {args.runs} runs. A page of 50 (median of 5): the first {first:.1f} ms, 50 pages deep "
        f"{deep:.1f} ms, 500 pages deep {deeper:.1f} ms.",
        "",
        f"{args.clients} clients (5 processes of {args.clients // 5} threads, keep-alive connections"
        + (f", each asking every {args.pace:g} s on average" if args.pace else ", each asking again at once")
        + ") read "
        "runs and logs, first alone, then while published submits arrive:",
        "",
        "| phase | request | count | p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    notes = []
    for phase, load in phases:
        timed = {"GET /runs/{id}": load["run"], "GET /runs/{id}/logs": load["logs"]}
        if load["submit"]:
            timed["POST /published/{id}/submit"] = load["submit"]
        lines += [row(phase, name, values) for name, values in timed.items()]
        total = sum(len(values) for values in timed.values())
        rate = total / float(load["elapsed"])
        note = f"- {phase}: {rate:.0f} requests per second; errors: {load['read_errors']} reads, "
        note += f"{load['submit_errors']} submits"
        if load["submits"]:
            note += (
                f"; submitted runs {load['submitted']} of {load['submits']}, Finished {load['finished']}, "
                f"other {load['failed']} (all ended {float(load['settled']):.0f} s after the phase began)"
            )
        notes.append(note + ".")
    text = "\n".join([*lines, "", *notes])
    print(text)
    if args.record:
        sys.path.insert(0, str(BENCH))
        from common import write_section

        paced = f", --pace {args.pace:g}" if args.pace else ""
        write_section(f"{TITLE.strip()} (--workers {args.workers}{paced})", text)


def _wait_up(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not come up")


if __name__ == "__main__":
    sys.exit(main())
