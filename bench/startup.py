"""mlproj's own start-up: `mlproj status` and a trivial `mlproj run`, side by side with the bare
interpreter and the run's workload alone.

Budget (issue: architecture and start-up): `status` at most 25 ms over the bare interpreter; a trivial
`run` at most 50 ms over the bare interpreter and its workload together (`python -c pass` run by the
shell mlproj uses, bash).

Usage: python bench/startup.py [--rounds N] [--baseline REV]   (default 21 rounds, at least 11)

`--baseline REV` also measures mlproj as it was at a Git revision, installed from `git archive REV`, in
the same rounds (its own MLPROJ_HOME).
"""

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from common import (
    ORDER,
    ROOT,
    WORK,
    bin_path,
    child_env,
    ensure_mlproj_venv,
    measure_grouped,
    median,
    ms,
    run_once,
    write_section,
)

TITLE = "startup: mlproj status and run against the bare interpreter"
STATUS_BUDGET = 0.025
RUN_BUDGET = 0.050
PROJECT = """\
name: startup
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "python -c pass {alpha}"
"""
# Modules whose presence on a command's path the table reports (each costs milliseconds to import).
HEAVY = ("click", "yaml", "rich", "typing", "dataclasses", "pathlib", "subprocess", "json")


def imported(argv: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """How many modules a command (`python script args`) imports (-X importtime), and which of HEAVY."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=env,
        cwd=WORK,
        capture_output=True,
        text=True,
        check=True,
    )
    names = {
        line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
    }
    names.discard("package")  # the header line
    return len(names), [name for name in HEAVY if name in names]


class Subject:
    """One installation of mlproj measured: its venv, its home, a finished run, its command lines."""

    def __init__(self, venv: Path, root: Path) -> None:
        self.python, self.mlproj = str(bin_path(venv, "python")), str(bin_path(venv, "mlproj"))
        shutil.rmtree(root, ignore_errors=True)
        self.project = root / "project"
        self.project.mkdir(parents=True)
        (self.project / "MLproject").write_text(PROJECT)
        self.home = root / "home"
        self.env = child_env(venv, MLPROJ_HOME=str(self.home))
        # A finished run with a parameter and a tag, as `status` usually shows one.
        first = subprocess.run(
            [self.mlproj, "run", str(self.project), "-P", "alpha=0.1", "--tag", "team=ml", "-d"],
            env=self.env,
            cwd=WORK,
            capture_output=True,
            text=True,
            check=True,
        )
        self.run_id = first.stdout.strip()
        subprocess.run(
            [self.mlproj, "wait", self.run_id], env=self.env, cwd=WORK, capture_output=True, check=True
        )
        self.status_argv = [self.mlproj, "status", self.run_id]
        self.run_argv = [self.mlproj, "run", str(self.project), "-P", "alpha=0.1"]

    def timer(self, argv: list[str]) -> Callable[[], float]:
        return lambda: run_once(argv, self.env)

    def tree_timer(self) -> Callable[[], float]:
        """The run without a cgroup (processes followed by their group and descendants instead)."""
        env = {**self.env, "MLPROJ_PROCESS_TRACKING": "tree"}
        return lambda: run_once(self.run_argv, env)

    def cold_run(self) -> float:
        shutil.rmtree(self.home / "cache" / "yaml", ignore_errors=True)  # untimed: parsed anew
        return run_once(self.run_argv, self.env)


def baseline_venv(revision: str) -> Path:
    """bench/.work/mlproj-baseline-venv with mlproj as it was at `revision` (installed afresh)."""
    source = WORK / "baseline-source"
    venv = WORK / "mlproj-baseline-venv"
    shutil.rmtree(source, ignore_errors=True)
    shutil.rmtree(venv, ignore_errors=True)
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    print(f"installing mlproj at {revision} into {venv}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(bin_path(venv, "python")), "-m", "pip", "--quiet", "install"]
    subprocess.run([*pip, str(source)], check=True, env=child_env(), stdout=sys.stderr)
    return venv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--baseline", metavar="REV", help="also measure mlproj as it was at this revision")
    args = parser.parse_args()
    rounds = max(11, args.rounds)

    now = Subject(ensure_mlproj_venv(), WORK / "startup")
    before = Subject(baseline_venv(args.baseline), WORK / "startup-baseline") if args.baseline else None
    bash = shutil.which("bash") or "/bin/sh"
    floor = [now.python, "-c", "pass"]
    groups: dict[str, dict[str, Callable[[], float]]] = {
        "status": {
            "python -c pass (floor)": now.timer(floor),
            "mlproj status <id>": now.timer(now.status_argv),
            "mlproj status <id> --json": now.timer([*now.status_argv, "--json"]),
        },
        "run": {
            "python -c pass (floor, run group)": now.timer(floor),
            "workload: bash -c 'python -c pass 0.1'": now.timer([bash, "-c", "python -c pass 0.1"]),
            "mlproj run <project>": now.timer(now.run_argv),
            "mlproj run <project>, MLproject not cached": now.cold_run,
            "mlproj run <project>, MLPROJ_PROCESS_TRACKING=tree": now.tree_timer(),
        },
    }
    if before is not None:
        groups["status"][f"mlproj status <id> at {args.baseline}"] = before.timer(before.status_argv)
        groups["run"][f"mlproj run <project> at {args.baseline}"] = before.timer(before.run_argv)
    print(f"measuring {rounds} rounds", file=sys.stderr)
    times = measure_grouped(groups, rounds)
    med = {name: median(values) for name, values in times.items()}

    # What each command imports, the console script run as it is installed.
    traced = {
        "mlproj status <id>": (now, now.status_argv),
        "mlproj status <id> --json": (now, [*now.status_argv, "--json"]),
        "mlproj run <project>": (now, now.run_argv),
    }
    if before is not None:
        traced[f"mlproj status <id> at {args.baseline}"] = (before, before.status_argv)
        traced[f"mlproj run <project> at {args.baseline}"] = (before, before.run_argv)
    rows = []
    for name, values in times.items():
        modules = ""
        if name in traced:
            subject, argv = traced[name]
            count, heavy = imported([subject.python, *argv], subject.env)
            modules = f"{count}: {', '.join(heavy) or '-'}"
        rows.append(f"| `{name}` | {ms(med[name])} | {ms(min(values))} | {modules} |")

    floor_status, floor_run = med["python -c pass (floor)"], med["python -c pass (floor, run group)"]
    workload = med["workload: bash -c 'python -c pass 0.1'"]
    status_over = med["mlproj status <id>"] - floor_status
    json_over = med["mlproj status <id> --json"] - floor_status
    run_over = med["mlproj run <project>"] - floor_run - workload
    cold_over = med["mlproj run <project>, MLproject not cached"] - floor_run - workload
    tree_over = med["mlproj run <project>, MLPROJ_PROCESS_TRACKING=tree"] - floor_run - workload
    notes = [
        f"- `status` over the bare interpreter: {verdict(status_over, STATUS_BUDGET)}; "
        f"`status --json`: {ms(json_over)}",
        f"- `run` over the bare interpreter and its workload: {verdict(run_over, RUN_BUDGET)}; "
        f"with the MLproject parsed anew: {ms(cold_over)}; without a cgroup: {ms(tree_over)} (the run's "
        "cgroup costs the move of its first process into it, which the kernel makes wait for an RCU "
        "grace period, and saves the search for leftovers at the end)",
    ]
    if before is not None:
        old_status = med[f"mlproj status <id> at {args.baseline}"] - floor_status
        old_run = med[f"mlproj run <project> at {args.baseline}"] - floor_run - workload
        notes.append(
            f"- at {args.baseline}, in the same rounds: `status` {ms(old_status)} over the interpreter "
            f"(now {status_over / old_status:.2f}x that), `run` {ms(old_run)} over the interpreter and its "
            f"workload (now {run_over / old_run:.2f}x that)"
        )
    body = "\n".join(
        [
            "Project `main`: `python -c pass {alpha}` (a float parameter), env manager local; `status` "
            "shows a finished run of it with a parameter and a tag. Two groups (status; run), each command "
            f"of a group right after the others, {ORDER}; {rounds} rounds after one warm-up each. "
            "`MLproject not cached`: mlproj's parse cache (`MLPROJ_HOME/cache/yaml`) emptied before each "
            "run, untimed, so that the MLproject is parsed with PyYAML as on its first run. Modules: how "
            "many the command imports (`python -X importtime`, the console script as installed), and which "
            f"of {', '.join(HEAVY)} among them.",
            "",
            "| command | median | min | modules imported |",
            "|---|---|---|---|",
            *rows,
            "",
            *notes,
        ]
    )
    write_section(TITLE, body)


def verdict(value: float, budget: float) -> str:
    return f"**{ms(value)}** (budget {ms(budget)}: {'met' if value <= budget else 'NOT met'})"


if __name__ == "__main__":
    main()
