"""Control flow at scale (issue: pipelines that decide), each side by side in one run:

- loop: a `parallel_for` of N trivial iterations (`bash -c true` each) against starting the same N
  processes directly, two at a time; overhead per iteration (target: at most 10 ms).
- sweep: a random sweep of T trials of a trivial trial (imports MLflow, logs one metric), one at a
  time, against the same trials run by a loop over `mlflow.projects.run` (MLflow's `hyperparam`
  example's way), both tracked to one local `mlflow server`; the ratio (mlproj must be faster).
- parallel: a parallel job over F small files (each read and measured) with 2 processes, against a
  `multiprocessing.Pool(2)` doing the same work; files per second and the ratio.

Usage: python bench/control_flow.py [--only loop,sweep,parallel] [--rounds N] [--iterations N]
       [--trials N] [--sweep-rounds N] [--files N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from common import (
    WORK,
    bin_path,
    child_env,
    ensure_mlflow_venv,
    ensure_mlproj_venv,
    measure_grouped,
    median,
    ms,
    run_once,
    write_section,
)
from tracking_overhead import free_port, start_server

TITLE = (
    "control_flow: parallel_for iterations, sweeps against mlflow.projects.run, parallel jobs against a Pool"
)
BASE = WORK / "control-flow"
LOOP_TARGET = 0.010  # seconds of overhead per parallel_for iteration
SCHEMA = "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"

DIRECT = """
import subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
count = int(sys.argv[1])
def one(i):
    subprocess.run(["bash", "-c", "true"], start_new_session=True, check=True)
start = time.perf_counter()
with ThreadPoolExecutor(2) as pool:
    list(pool.map(one, range(count)))
print(time.perf_counter() - start)
"""

TRIAL = """
import argparse, mlflow
parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float)
args = parser.parse_args()
mlflow.log_metric("score", -(args.x - 0.3) ** 2)
"""

MLFLOW_LOOP = """
import random, sys, mlflow
project, trials = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
mlflow.set_experiment("bench-hyperparam")
with mlflow.start_run(run_name="search"):
    for _ in range(trials):
        submitted = mlflow.projects.run(
            project, parameters={"x": rng.random()}, env_manager="local", synchronous=False
        )
        if not submitted.wait():
            raise SystemExit("a trial failed")
"""

POOL = """
import multiprocessing, os, sys, time
def work(path):
    with open(path, "rb") as handle:
        return f"{os.path.basename(path)} {len(handle.read())}"
if __name__ == "__main__":
    folder, out = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    files = sorted(os.path.join(folder, name) for name in os.listdir(folder))
    with multiprocessing.get_context("spawn").Pool(2) as pool, open(out, "w") as target:
        for line in pool.imap(work, files, chunksize=100):
            target.write(line + "\\n")
    print(time.perf_counter() - start)
"""

ENTRY = """
import os
def init():
    pass
def run(mini_batch):
    out = []
    for path in mini_batch:
        with open(path, "rb") as handle:
            out.append(f"{os.path.basename(path)} {len(handle.read())}")
    return out
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.lstrip())
    return path


def mlproj_run(venv: Path, pipeline: Path, home: Path, *args: str, **env: str) -> float:
    shutil.rmtree(home, ignore_errors=True)
    argv = [str(bin_path(venv, "mlproj")), "run", str(pipeline), *args]
    return run_once(argv, child_env(venv, MLPROJ_HOME=str(home), **env), pipeline.parent)


def timed_output(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """A script that prints the seconds it timed itself."""
    done = subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def loop(venv: Path, rounds: int, count: int) -> str:
    folder = BASE / "loop"
    items = ", ".join(f'{{"i": {i}}}' for i in range(count))

    def pipeline(name: str, n: int) -> Path:
        listed = items if n == count else '{"i": 0}'
        body = SCHEMA + "type: pipeline\njobs:\n  body:\n    command: bash -c true ${{inputs.i}}\n"
        body += "    inputs:\n      i: {type: integer, value: 0}\n"
        body += "  loop:\n    type: parallel_for\n    body: ${{parent.jobs.body}}\n"
        body += f"    items: '[{listed}]'\n"
        return write(folder / f"{name}.yml", body)

    many, one = pipeline("many", count), pipeline("one", 1)
    direct = write(folder / "direct.py", DIRECT)
    python = str(bin_path(venv, "python"))
    home = folder / "home"
    times = measure_grouped(
        {
            "loop": {
                f"parallel_for, {count} iterations": lambda: mlproj_run(
                    venv, many, home, "--max-parallel", "2"
                ),
                "parallel_for, 1 iteration": lambda: mlproj_run(venv, one, home, "--max-parallel", "2"),
                f"direct: {count} x `bash -c true`, 2 at a time": lambda: timed_output(
                    [python, str(direct), str(count)], child_env(venv), folder
                ),
            }
        },
        rounds,
    )
    cold, single, bare = (median(times[name]) for name in times)
    per = (cold - single) / (count - 1) - bare / count
    rows = [f"| {name} | {ms(median(v))} | {ms(min(v))} | {ms(max(v))} |" for name, v in times.items()]
    verdict = "yes" if per <= LOOP_TARGET else "no"
    return "\n".join(
        [
            f"### parallel_for of {count} trivial iterations",
            "",
            f"A `parallel_for` whose body runs `bash -c true` with one integer input, over {count} items, "
            "`--max-parallel 2` (cold: a new MLPROJ_HOME each time). Direct: the same processes started "
            "from the mlproj venv's Python two at a time, timed inside it. "
            f"{rounds} rounds after one warm-up; the three commands always run one right after the other.",
            "",
            "| measured | median | min | max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Overhead per iteration = ({count} iterations - 1 iteration) / {count - 1} - direct / {count}: "
            f"**{per * 1000:.1f} ms** (target: at most {LOOP_TARGET * 1000:.0f} ms: {verdict}).",
        ]
    )


def sweep(venv: Path, rounds: int, trials: int) -> str:
    folder = BASE / "sweep"
    mlflow_venv = ensure_mlflow_venv()
    mlflow_python = str(bin_path(mlflow_venv, "python"))
    project = folder / "project"
    write(project / "trial.py", TRIAL)
    entry = "entry_points:\n  main:\n    parameters:\n      x: float\n"
    write(project / "MLproject", f"name: trial\n{entry}    command: {mlflow_python} trial.py --x {{x}}\n")
    head = "type: command\ninputs:\n  x: {type: number, default: 0.5}\ncode: ./project\n"
    write(folder / "trial.yml", head + f"command: {mlflow_python} trial.py --x ${{{{inputs.x}}}}\n")

    def pipeline(count: int) -> Path:
        return write(
            folder / f"sweep-{count}.yml",
            SCHEMA
            + "type: pipeline\njobs:\n  tune:\n    type: sweep\n    trial: ./trial.yml\n"
            + "    search_space:\n      x: {type: uniform, min_value: 0, max_value: 1}\n"
            + "    sampling_algorithm: {type: random, seed: 7}\n"
            + "    objective: {goal: maximize, primary_metric: score}\n"
            + f"    limits: {{max_total_trials: {count}, max_concurrent_trials: 1}}\n",
        )

    loop_script = write(folder / "mlflow_loop.py", MLFLOW_LOOP)
    server_dir = folder / "server"
    shutil.rmtree(server_dir, ignore_errors=True)
    server_dir.mkdir(parents=True)
    port = free_port()
    server = start_server(str(bin_path(mlflow_venv, "mlflow")), server_dir, port)
    uri = f"http://127.0.0.1:{port}"
    try:

        def ours(count: int) -> float:
            home = folder / "home"
            return mlproj_run(venv, pipeline(count), home, "--max-parallel", "1", MLFLOW_TRACKING_URI=uri)

        def theirs(count: int) -> float:
            argv = [mlflow_python, str(loop_script), str(project), str(count)]
            return run_once(argv, child_env(mlflow_venv, MLFLOW_TRACKING_URI=uri), folder)

        ours(3), theirs(3)  # a short warm-up of each: the full runs take minutes
        names = (f"mlproj: sweep of {trials} trials", f"MLflow: {trials} x mlflow.projects.run")
        times: dict[str, list[float]] = {name: [] for name in names}
        for index in range(rounds):  # the order alternates from round to round
            pair = [(names[0], ours), (names[1], theirs)]
            for name, call in pair if index % 2 == 0 else reversed(pair):
                times[name].append(call(trials))
            print(f"round {index + 1}/{rounds} done", file=sys.stderr)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    mine, other = (median(times[name]) for name in times)
    rows = [f"| {name} | {median(v):.1f} s | {min(v):.1f} s | {max(v):.1f} s |" for name, v in times.items()]
    return "\n".join(
        [
            f"### a random sweep of {trials} trials",
            "",
            "A trivial trial (`python trial.py --x X`: imports MLflow, logs one metric), one trial at a "
            "time, both tracked to one local `mlflow server` (SQLite). mlproj: a pipeline with a `sweep` "
            "(random, seed 7, `max_concurrent_trials: 1`, `--max-parallel 1`). MLflow: a script that calls "
            "`mlflow.projects.run(project, parameters, env_manager='local', synchronous=False)` and waits, "
            "for each trial, under a parent run (the `hyperparam` example's way). "
            f"{rounds} round(s) after a warm-up of 3 trials each, the two in alternating order.",
            "",
            "| measured | median | min | max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"mlproj / MLflow: **{mine / other:.2f}** "
            f"({'mlproj is faster' if mine < other else 'mlproj is slower'}).",
        ]
    )


def parallel(venv: Path, rounds: int, count: int) -> str:
    folder = BASE / "parallel"
    files = folder / "files"
    if not files.is_dir() or len(list(files.iterdir())) != count:
        shutil.rmtree(files, ignore_errors=True)
        files.mkdir(parents=True)
        for index in range(count):
            (files / f"f{index:05d}.txt").write_text(f"item {index}\n" * (index % 7 + 1))
    write(folder / "src" / "entry.py", ENTRY)
    pipeline = write(
        folder / "parallel.yml",
        SCHEMA
        + "type: pipeline\ninputs:\n  files: {type: uri_folder, path: ./files}\njobs:\n  work:\n"
        + "    type: parallel\n    inputs:\n      data: ${{parent.inputs.files}}\n"
        + "    outputs:\n      lines: {type: uri_file}\n    input_data: ${{inputs.data}}\n"
        + "    mini_batch_size: '100'\n    max_concurrency_per_instance: 2\n"
        + "    task:\n      code: ./src\n      entry_script: entry.py\n"
        + "      append_row_to: ${{outputs.lines}}\n",
    )
    pool = write(folder / "pool.py", POOL)
    python = str(bin_path(venv, "python"))
    home = folder / "home"
    times = measure_grouped(
        {
            "parallel": {
                f"mlproj: parallel job, {count} files": lambda: mlproj_run(venv, pipeline, home),
                f"multiprocessing.Pool(2), {count} files": lambda: run_once(
                    [python, str(pool), str(files), str(folder / "pool-out.txt")], child_env(venv), folder
                ),
            }
        },
        rounds,
    )
    ours, theirs = (median(times[name]) for name in times)
    rows = [f"| {name} | {ms(median(v))} | {count / median(v):.0f} files/s |" for name, v in times.items()]
    return "\n".join(
        [
            f"### a parallel job over {count} small files",
            "",
            "Each file read and measured (`name length`, one line per file). mlproj: `mlproj run` of a "
            "pipeline with one parallel job (`mini_batch_size: 100`, `max_concurrency_per_instance: 2`, "
            "`append_row_to`), start-up included. Pool: a script with "
            "`multiprocessing.get_context('spawn').Pool(2).imap(..., chunksize=100)` writing the same lines, "
            f"interpreter start-up included. {rounds} rounds after a warm-up.",
            "",
            "| measured | median wall | files per second |",
            "|---|---|---|",
            *rows,
            "",
            f"Files per second, mlproj / Pool: **{theirs / ours:.2f}**.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="loop,sweep,parallel")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--sweep-rounds", type=int, default=1)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    venv = ensure_mlproj_venv()
    parts = []
    wanted = args.only.split(",")
    if "loop" in wanted:
        parts.append(loop(venv, args.rounds, args.iterations))
    if "sweep" in wanted:
        parts.append(sweep(venv, args.sweep_rounds, args.trials))
    if "parallel" in wanted:
        parts.append(parallel(venv, args.rounds, args.files))
    write_section(TITLE, "\n\n".join(parts))


if __name__ == "__main__":
    sys.exit(main())
