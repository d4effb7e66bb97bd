"""`mlproj status` and `mlproj runs --limit 20` on a store with a handful of runs and with 100,000.

Usage: python bench/status_scale.py [--rounds N] [--runs N]   (defaults 15 rounds, at least 11; 100000 runs)
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH, WORK, bin_path, child_env, ensure_mlproj_venv, measure, median, ms, write_section

TITLE = "status_scale: mlproj status and runs on small and large stores"
SMALL = 5


def fill(venv: Path, home: Path, count: int) -> str:
    """Fill a fresh store at `home` with `count` runs (in the venv, with mlproj); a run ID from it."""
    python = str(bin_path(venv, "python"))
    argv = [python, str(BENCH / "fill_store.py"), str(home), str(count)]
    return subprocess.run(
        argv, env=child_env(venv), check=True, capture_output=True, text=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the large store")
    args = parser.parse_args()
    rounds = max(11, args.rounds)

    venv = ensure_mlproj_venv()
    mlproj, python = str(bin_path(venv, "mlproj")), str(bin_path(venv, "python"))
    stores = [(f"{SMALL} runs", SMALL, 0.1, None), (f"{args.runs:,} runs", args.runs, 0.15, 0.15)]
    rows, notes = [], []
    for label, count, status_target, runs_target in stores:
        home = WORK / f"status-home-{count}"
        start = time.perf_counter()
        run_id = fill(venv, home, count)
        notes.append(
            f"- {label}: filled in {time.perf_counter() - start:.1f} s; `<id>` is a run from the middle"
        )
        env = child_env(venv, MLPROJ_HOME=str(home))
        commands = {
            "python -c pass (floor)": ([python, "-c", "pass"], env),
            "mlproj --version": ([mlproj, "--version"], env),
            "mlproj status <id>": ([mlproj, "status", run_id], env),
            "mlproj status <id> --json": ([mlproj, "status", run_id, "--json"], env),
            "mlproj runs --limit 20": ([mlproj, "runs", "--limit", "20"], env),
            "mlproj runs --limit 20 --json": ([mlproj, "runs", "--limit", "20", "--json"], env),
        }
        print(f"measuring on {label}", file=sys.stderr)
        for name, values in measure(commands, rounds).items():
            target = status_target if "status" in name else runs_target if " runs " in name else None
            verdict = (
                "" if target is None else f"≤ {ms(target)}: {'yes' if median(values) <= target else 'NO'}"
            )
            rows.append(f"| {label} | `{name}` | {ms(median(values))} | {ms(min(values))} | {verdict} |")
    body = "\n".join(
        [
            f"Median of {rounds} runs after one warm-up each, commands alternating within every round. "
            "Stores filled through mlproj's own store code (finished, failed and canceled runs over a year, "
            "with parameters and tags).",
            "",
            "| store | command | median | min | target met |",
            "|---|---|---|---|---|",
            *rows,
            "",
            *notes,
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
