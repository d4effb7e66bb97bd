"""Fuzz `mlproj serve`'s REST API from its own OpenAPI document with schemathesis: every route, with no
token and with a token of each role. The proof the server keeps: no response of 500 or more, and the
server still up and its log free of tracebacks afterwards. CI runs it (bounded: a few examples per
route and a time limit); the counts go to bench/RESULTS.md with --record.

Usage: python bench/server_fuzz.py [--examples N] [--seed N] [--record]
Needs mlproj[server] and schemathesis in the running Python (the dev extra has both).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TITLE = "server_fuzz: schemathesis over every route of the REST API, with and without tokens"
PIPELINE = """\
type: pipeline
inputs:
  word: {type: string, default: hi}
jobs:
  say:
    command: echo ${{inputs.word}}
    inputs:
      word: ${{parent.inputs.word}}
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=20, help="examples per route and token")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=900, help="seconds for the whole fuzz")
    parser.add_argument("--record", action="store_true", help="write the counts to bench/RESULTS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlproj-fuzz-"))
    env = {**os.environ, "MLPROJ_HOME": str(work / "home")}
    try:
        return fuzz(work, env, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mlproj(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mlproj", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"mlproj {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def fuzz(work: Path, env: dict[str, str], args: argparse.Namespace) -> int:
    tokens = {
        role: mlproj(env, "tokens", "create", f"fuzz-{role}", "--role", role)
        for role in ("read", "submit", "admin")
    }
    (work / "p.yml").write_text(PIPELINE)
    published = mlproj(env, "publish", str(work / "p.yml"), "--name", "fuzzed")
    mlproj(env, "endpoints", "create", "fuzzed", "--pipeline", published)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = work / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlproj", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    try:
        schema = work / "openapi.json"
        schema.write_text(json.dumps(_get(url, "/api/v1/openapi.json", tokens["admin"])))
        deadline = time.monotonic() + args.time_limit
        results = []
        for who in ("none", "read", "submit", "admin"):
            header = [] if who == "none" else ["-H", f"Authorization: Bearer {tokens[who]}"]
            left = max(30.0, deadline - time.monotonic())
            started = time.monotonic()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "run",
                    str(schema),
                    "--url",
                    url,
                    *header,
                    "--checks",
                    "not_a_server_error",
                    "--max-examples",
                    str(args.examples),
                    "--seed",
                    str(args.seed),
                    "--request-timeout",
                    "60",
                    "--workers",
                    "2",
                ],
                capture_output=True,
                text=True,
                timeout=left,
                cwd=work,
                env={**env, "SCHEMATHESIS_HOOKS": ""},
                check=False,
            )
            calls = _count(done.stdout)
            results.append((who, done.returncode, calls, time.monotonic() - started))
            print(f"{who:>6}: exit {done.returncode}, {calls} requests, {time.monotonic() - started:.0f} s")
            if os.environ.get("FUZZ_SHOW"):
                print(done.stdout[-3000:])
            if done.returncode != 0:
                print(done.stdout[-6000:])
        alive = server.poll() is None and _health(url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    text = log.read_text(errors="replace")
    tracebacks = text.count("Traceback")
    failed = [who for who, code, _calls, _seconds in results if code != 0]
    print(f"server up at the end: {alive}; tracebacks in its log: {tracebacks}")
    if tracebacks:
        print(text[-6000:])
    if args.record:
        sys.path.insert(0, str(BENCH))
        from common import write_section

        rows = "\n".join(
            f"| {who} | {calls} | {'none' if code == 0 else 'some'} | {seconds:.0f} s |"
            for who, code, calls, seconds in results
        )
        write_section(
            TITLE,
            "| token | requests | responses ≥ 500 | time |\n|---|---|---|---|\n"
            + rows
            + f"\n\n{args.examples} examples per route and token (seed {args.seed}); server up afterwards: "
            f"{'yes' if alive else 'NO'}; tracebacks in its log: {tracebacks}.",
        )
    return 0 if alive and not failed and not tracebacks else 1


def _get(url: str, path: str, token: str) -> object:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - our http URL
                return json.loads(answer.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as answer:  # noqa: S310 - our http URL
            return bool(answer.status == 200)
    except OSError:
        return False


def _count(output: str) -> int:
    """The number of requests schemathesis reports having sent (0 if it does not say)."""
    found = re.findall(r"(\d+) (?:API calls|test cases|generated)", output)
    return max((int(n) for n in found), default=0)


if __name__ == "__main__":
    sys.exit(main())
