"""Pipeline overhead: `mlproj run` of a pipeline of 200 trivial command steps (a chain and a fan-out)
against starting the same 200 processes directly, and a re-run of it in which every step is reused.

Usage: python bench/pipeline_overhead.py [--rounds N] [--steps N]   (defaults 5 rounds, at least 3; 200 steps)
"""

import argparse
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    ORDER,
    WORK,
    bin_path,
    child_env,
    ensure_mlproj_venv,
    measure_timed,
    median,
    ms,
    run_once,
    write_section,
)

TITLE = "pipeline_overhead: pipeline steps vs the bare processes, and fully reused re-runs"
BASE = WORK / "pipeline-overhead"
PER_STEP_TARGET = 0.02  # seconds of overhead per step
REUSED_TARGET = 1.0  # seconds for a re-run in which every step is reused
FAN_OUT_PARALLEL = 2


def pipeline_yaml(name: str, steps: int, shape: str) -> str:
    """`steps` command steps `echo step-<i>` (distinct, so that no step can reuse a sibling's result):
    in a chain (each depends on the previous one), or fanning out (all depend on the first one)."""
    lines = ["type: pipeline", f"name: {name}", "jobs:"]
    for i in range(steps):
        lines += [f"  s{i}:", "    type: command", f"    command: echo step-{i}"]
        if i > 0:
            lines.append(f"    depends_on: [s{i - 1 if shape == 'chain' else 0}]")
    return "\n".join(lines) + "\n"


class Pipeline:
    """A pipeline file `base/<name>.yml` of `steps` steps, and the mlproj home (its own, emptied) in
    which it runs (`base/home-<name>`). Also used by dvc_compare.py."""

    def __init__(self, venv: Path, base: Path, name: str, text: str, steps: int, max_parallel: int) -> None:
        self.mlproj = str(bin_path(venv, "mlproj"))
        self.base, self.steps, self.max_parallel = base, steps, max_parallel
        self.file = base / f"{name}.yml"
        self.file.write_text(text)
        home = base / f"home-{name}"
        shutil.rmtree(home, ignore_errors=True)
        self.env = child_env(venv, MLPROJ_HOME=str(home))
        self.seen: set[str] = set()

    def cold(self) -> float:
        """`mlproj run FILE --force-rerun --max-parallel N`, timed; then checks that every step ran."""
        argv = [self.mlproj, "run", str(self.file), "--force-rerun", "--max-parallel", str(self.max_parallel)]
        seconds = run_once(argv, self.env, self.base)
        self.check(reused=False)
        return seconds

    def reused(self) -> float:
        """`mlproj run FILE`, timed; then checks that every step was reused."""
        seconds = run_once([self.mlproj, "run", str(self.file)], self.env, self.base)
        self.check(reused=True)
        return seconds

    def mlproj_json(self, *args: str) -> Any:
        argv = [self.mlproj, *args, "--json"]
        done = subprocess.run(argv, env=self.env, cwd=self.base, check=True, capture_output=True, text=True)
        return json.loads(done.stdout)

    def check(self, *, reused: bool) -> None:
        """Untimed: the newest run is a new one that Finished with all its steps, every one of them reused
        (`reused_from` set) or every one of them run, as `reused` says. Anything else stops the benchmark."""
        newest = self.mlproj_json("runs", "--limit", "1")
        if not newest or newest[0]["run_id"] in self.seen:
            raise SystemExit(f"{self.file.name}: the run was not recorded")
        run_id = newest[0]["run_id"]
        self.seen.add(run_id)
        record = self.mlproj_json("status", run_id)
        steps = record.get("steps") or []
        wrong = [s for s in steps if bool(s.get("reused_from")) is not reused or s["status"] != "Finished"]
        if record["status"] != "Finished" or len(steps) != self.steps or wrong:
            expected = "reused (reused_from set)" if reused else "run (reused_from null)"
            shown = "\n".join(
                f"  {s['step']}: {s['status']}, reused_from={s.get('reused_from')}, reason={s.get('reason')}"
                for s in wrong[:10]
            )
            raise SystemExit(
                f"{self.file.name}: run {run_id} is {record['status']}, {len(steps)} steps of {self.steps}; "
                f"{len(wrong)} steps not {expected}:\n{shown}"
            )


def direct(venv: Path, steps: int) -> Callable[[], float]:
    """The same processes started directly: spawn_direct.py (run with the venv's Python) times its loop."""
    argv = [str(bin_path(venv, "python")), str(BENCH / "spawn_direct.py"), str(BASE / "direct"), str(steps)]
    env = child_env(venv)

    def call() -> float:
        done = subprocess.run(argv, env=env, cwd=BASE, check=True, capture_output=True, text=True)
        return float(done.stdout)

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="steps in the pipeline (at least 2)")
    args = parser.parse_args()
    rounds, steps = max(3, args.rounds), max(2, args.steps)

    venv = ensure_mlproj_venv()
    BASE.mkdir(parents=True, exist_ok=True)
    chain = Pipeline(venv, BASE, "chain", pipeline_yaml("chain", steps, "chain"), steps, 1)
    fan_out = Pipeline(
        venv, BASE, "fan-out", pipeline_yaml("fan-out", steps, "fan-out"), steps, FAN_OUT_PARALLEL
    )
    single = Pipeline(venv, BASE, "one-step", pipeline_yaml("one-step", 1, "chain"), 1, 1)
    for pipeline in (chain, fan_out):  # fill the reuse cache (untimed)
        pipeline.cold()

    n = steps
    timed = {
        f"chain, {n} steps, cold": chain.cold,
        f"fan-out, {n} steps, cold": fan_out.cold,
        "1 step, cold": single.cold,
        f"direct: {n} x `bash -c 'echo step-<i>'`": direct(venv, steps),
        f"chain, {n} steps, all reused": chain.reused,
        f"fan-out, {n} steps, all reused": fan_out.reused,
    }
    times = measure_timed(timed, rounds)
    med = {name: median(values) for name, values in times.items()}

    one, bare = med["1 step, cold"], med[f"direct: {n} x `bash -c 'echo step-<i>'`"] / n
    rows = [f"| {name} | {ms(med[name])} | {ms(min(v))} | {ms(max(v))} |" for name, v in times.items()]
    results = []
    for shape in ("chain", "fan-out"):
        wall, again = med[f"{shape}, {n} steps, cold"], med[f"{shape}, {n} steps, all reused"]
        overhead = (wall - one) / (n - 1) - bare
        results += [
            f"- {shape}: overhead per step **{overhead * 1000:.1f} ms** (target: at most "
            f"{PER_STEP_TARGET * 1000:.0f} ms: {'yes' if overhead <= PER_STEP_TARGET else 'NO'}); "
            f"wall / {n}: {wall / n * 1000:.1f} ms per step",
            f"- {shape}, all {n} steps reused: **{ms(again)}** (target: at most {REUSED_TARGET:.0f} s: "
            f"{'yes' if again <= REUSED_TARGET else 'NO'})",
        ]
    body = "\n".join(
        [
            f"{n} command steps, step i running `echo step-<i>` (distinct, so no step can reuse another's "
            f"result). Chain: each step `depends_on` the previous one, run with `--max-parallel 1`. Fan-out: "
            f"`s0`, then the {n - 1} others, all depending on `s0`, run with `--max-parallel "
            f"{FAN_OUT_PARALLEL}`. Cold: `mlproj run <pipeline> --force-rerun --max-parallel N` (every step "
            "runs). All reused: `mlproj run <pipeline>` after a first run; every step's `reused_from` is set "
            "(after every run, cold or reused, `mlproj status <id> --json` checks it, untimed). Direct: the "
            f"{n} step commands started one after the other from the mlproj venv's Python as mlproj starts "
            "them (`bash -c`, own session, output to a log file), timed inside that Python (without its "
            f"start-up). {rounds} rounds after one warm-up each, commands {ORDER}; "
            "`MLPROJ_HOME` in bench/.work, one per pipeline.",
            "",
            "| measured | median | min | max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Overhead per step = (cold {n}-step pipeline - cold 1-step pipeline) / {n - 1} - direct / {n} "
            f"(the bare process: {bare * 1000:.1f} ms): mlproj's start-up and the process itself left out. "
            f"The fan-out's steps overlap (`--max-parallel {FAN_OUT_PARALLEL}`): its figure is per step of "
            f"wall time, not of CPU. `wall / {n}`: the plain cold wall time divided by the number of steps.",
            "",
            *results,
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
