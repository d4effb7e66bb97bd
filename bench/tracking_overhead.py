"""MLflow tracking's cost: `mlproj run` of a trivial project tracked to a local `mlflow server`, against
the same run with `--no-tracking`, and against `mlflow run` tracking to the same server.

Budget (issue: MLflow tracking): tracking adds at most 50 ms to a run.

Usage: python bench/tracking_overhead.py [--rounds N]   (default 21, at least 7)
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

from common import (
    WORK,
    bin_path,
    child_env,
    ensure_mlflow_venv,
    ensure_mlproj_venv,
    measure,
    median,
    ms,
    write_section,
)

TITLE = "tracking_overhead: mlproj run tracked to an MLflow server, untracked, and mlflow run"
EXPERIMENT = "bench-tracking"
BUDGET = 0.050
MLPROJECT = """name: trivial
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "python -c pass {alpha}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(mlflow: str, folder: os.PathLike[str], port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    argv = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    argv += [
        "--backend-store-uri",
        f"sqlite:///{folder}/mlflow.db",
        "--artifacts-destination",
        f"{folder}/art",
    ]
    with open(f"{folder}/server.log", "ab") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.25)
    os.killpg(server.pid, signal.SIGKILL)
    raise SystemExit(f"mlflow server did not start; see {folder}/server.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=21)
    rounds = max(7, parser.parse_args().rounds)

    mlproj_venv, mlflow_venv = ensure_mlproj_venv(), ensure_mlflow_venv()
    project = WORK / "tracking-project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "MLproject").write_text(MLPROJECT)
    home, store = WORK / "tracking-mlproj-home", WORK / "tracking-mlflow"
    for folder in (home, store):
        shutil.rmtree(folder, ignore_errors=True)
    store.mkdir()
    mlflow = str(bin_path(mlflow_venv, "mlflow"))
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(mlflow, store, port)
    try:
        mlproj_env = child_env(mlproj_venv, MLPROJ_HOME=str(home), MLFLOW_TRACKING_URI=uri)
        mlflow_env = child_env(mlflow_venv, MLFLOW_TRACKING_URI=uri)
        mlproj = str(bin_path(mlproj_venv, "mlproj"))
        run = [mlproj, "run", str(project), "--experiment-name", EXPERIMENT, "-P", "alpha=0.1"]
        in_default = [mlproj, "run", str(project), "-P", "alpha=0.1"]
        commands = {
            "mlproj run, tracked": (run, mlproj_env),
            "mlproj run, tracked, MLflow's Default experiment": (in_default, mlproj_env),
            "mlproj run --no-tracking": ([*run, "--no-tracking"], mlproj_env),
            "mlflow run, tracked": (
                [
                    mlflow,
                    "run",
                    str(project),
                    "--env-manager",
                    "local",
                    "--experiment-name",
                    EXPERIMENT,
                    "-P",
                    "alpha=0.1",
                ],
                mlflow_env,
            ),
        }
        times = measure(commands, rounds)
        # Every tracked run made its MLflow run and ended it (nothing left waiting for the server).
        check = subprocess.run(
            [mlproj, "runs", "--json", "--limit", "1000"], env=mlproj_env, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        records = json.loads(check.stdout)
        tracked = [r for r in records if r["mlflow_run_id"]]
        waiting = [r for r in tracked if r["tracking_pending"]]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    med = {name: median(values) for name, values in times.items()}
    added = med["mlproj run, tracked"] - med["mlproj run --no-tracking"]
    added_default = med["mlproj run, tracked, MLflow's Default experiment"] - med["mlproj run --no-tracking"]
    rows = [f"| `{name}` | {ms(med[name])} | {ms(min(v))} | {ms(max(v))} |" for name, v in times.items()]
    body = "\n".join(
        [
            f"Trivial project (`python -c pass {{alpha}}`), env manager local, a local `mlflow server` "
            f"(one worker, SQLite store, proxied artifacts) on 127.0.0.1; {rounds} rounds after one "
            "warm-up each, the commands in a shuffled order in every round. A tracked mlproj run makes "
            "its MLflow run (tags, params), and at the end uploads its log and ends it.",
            "",
            "| command | median | min | max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- tracking adds **{ms(added)}** to `mlproj run --experiment-name …` (budget {ms(BUDGET)}: "
            f"{'met' if added <= BUDGET else 'NOT met'}), {ms(added_default)} in MLflow's Default experiment "
            f"({'met' if added_default <= BUDGET else 'NOT met'}): a run is made (tags), its parameters "
            "logged while the workload starts, its log uploaded and its end sent together at the end; "
            "the experiment is looked up while mlproj starts",
            f"- mlflow run / mlproj run, both tracked to the same server: "
            f"**{med['mlflow run, tracked'] / med['mlproj run, tracked']:.1f}x**",
            f"- tracked runs recorded: {len(tracked)}, with their end still waiting: {len(waiting)}",
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
