"""Soak: kill -9 supervisors at random moments, read the runs, count what lies or survives; time the
Ctrl-C and cancel ladders.

Each iteration starts a run whose processes escape every way they can (a child, a grandchild in its own
session, and one started with `env -i setsid` that ignores SIGTERM), in the foreground (`mlproj run`
is the supervisor) or detached (a background supervisor), and kills the supervisor with SIGKILL at one
of three moments: before the workload starts, while its environment is prepared (a conda stand-in that
starts its own escaping processes), or while the workload runs. Then one read (`mlproj status`) must
already tell the truth: the run is in a final status (else a *stale status*), and none of the run's
processes is left (else *surviving processes*).

The ladders: `cancel --grace G` of a run whose processes ignore SIGTERM must end them all within
G + 0.5 s; Ctrl-C of a foreground run whose background worker ignores SIGINT (as background jobs of a
shell do) must bring it SIGTERM after the interrupt timeout, and a second Ctrl-C must bring it at once.

    python bench/soak.py [--iterations N] [--ladders N] [--seed S] [--tracking auto|tree]
                         (defaults 100, 10, 20261201, auto; `tree` measures the fallback without cgroups)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from common import bin_path, child_env, ensure_mlproj_venv, write_section

PHASES = ("before start", "preparing", "running")
MODES = ("foreground", "detached")
FINAL = {"Finished", "Failed", "Canceled", "Skipped"}
GRACE = 1.0
INTERRUPT_TIMEOUT = 1.0

# Every process writes its PID to pids.txt: the shell, a child, a grandchild in a session of its own,
# and one that escapes the group, the session and the environment marker, and ignores SIGTERM.
TREE = (
    "echo $$ >> {pids}; "
    "(sleep 300 & echo $! >> {pids}; wait) & "
    "setsid sh -c 'echo $$ >> {pids}; exec sleep 300' & "
    "(env -i setsid sh -c 'trap \"\" TERM; echo $$ >> {pids}; while :; do sleep 1; done' &); "
    "echo running >> {pids}.ready; sleep 300"
)
# A conda stand-in whose environment build starts processes of its own, then takes its time.
CONDA = """#!/bin/sh
pids={pids}
echo $$ >> $pids
sleep 300 & echo $! >> $pids
(env -i setsid sh -c 'trap "" TERM; echo $$ >> {pids}; while :; do sleep 1; done' &)
echo preparing >> $pids.ready
sleep 300
"""


class Soak:
    def __init__(self, work: Path, seed: int, tracking: str) -> None:
        self.work = work
        self.random = random.Random(seed)  # noqa: S311 - a schedule of kills, not a secret
        self.venv = ensure_mlproj_venv()
        self.mlproj = str(bin_path(self.venv, "mlproj"))
        self.home = work / "home"
        self.env = child_env(
            self.venv,
            MLPROJ_HOME=str(self.home),
            MLPROJ_INTERRUPT_TIMEOUT=str(INTERRUPT_TIMEOUT),
            MLPROJ_PROCESS_TRACKING=tracking,
        )

    # --- helpers ---

    def project(self, name: str, command: str, *, conda: bool = False) -> Path:
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "MLproject").write_text(
            f"name: {name}\nentry_points:\n  main:\n    command: {json.dumps(command)}\n"
        )
        if conda:  # a new environment each time: nothing is found in the cache
            (folder / "conda.yaml").write_text(f"name: soak\ndependencies: [python]\n# {name}\n")
        return folder

    def stand_in(self, pids: Path) -> Path:
        conda = self.work / f"conda-{pids.stem}"
        conda.write_text(CONDA.format(pids=pids))
        conda.chmod(0o755)
        return conda

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.mlproj, *args],
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def newest_run(self, before: set[str]) -> str | None:
        runs = json.loads(self.cli("runs", "--json", "--limit", "5").stdout or "[]")
        fresh = [run["run_id"] for run in runs if run["run_id"] not in before]
        return fresh[0] if fresh else None

    def known_runs(self) -> set[str]:
        return {
            run["run_id"] for run in json.loads(self.cli("runs", "--json", "--limit", "5").stdout or "[]")
        }

    def supervisor_of(self, run_id: str) -> int | None:
        import sqlite3

        db = sqlite3.connect(self.home / "mlproj.db")
        try:
            row = db.execute("SELECT supervisor_pid FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        finally:
            db.close()
        return int(row[0]) if row and row[0] else None

    # --- one iteration ---

    def iteration(self, index: int) -> tuple[str, str, bool, int, str]:
        """(phase, mode, stale status, surviving processes, how the run ended)."""
        phase, mode = self.random.choice(PHASES), self.random.choice(MODES)
        pids = self.work / f"pids-{index}.txt"
        project = self.project(f"p{index}", TREE.format(pids=pids), conda=phase == "preparing")
        extra = {"MLPROJ_CONDA_EXE": str(self.stand_in(pids))} if phase == "preparing" else {}
        before = self.known_runs()
        args = [self.mlproj, "run", str(project)] + (["-d"] if mode == "detached" else [])
        proc = subprocess.Popen(
            args, env={**self.env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        victim = self.moment(phase, mode, proc, pids, before)
        if victim is not None:
            os.kill(victim, signal.SIGKILL)
        proc.communicate(timeout=120)
        run_id = self.newest_run(before)
        if run_id is None:  # killed before the run was recorded: nothing to lie about
            return phase, mode, False, self.survivors(pids), "not recorded"
        _wait_gone(victim)
        read = json.loads(self.cli("status", run_id, "--json").stdout)
        return phase, mode, read["status"] not in FINAL, self.survivors(pids), read["status"]

    def moment(
        self, phase: str, mode: str, proc: subprocess.Popen[str], pids: Path, before: set[str]
    ) -> int | None:
        """Wait for the moment to kill, and return the supervisor's PID."""
        ready = Path(f"{pids}.ready")
        if mode == "foreground":
            if phase == "before start":  # before, while or just after the run is recorded
                time.sleep(self.random.uniform(0.0, 0.4))
            else:
                _wait_for(ready.exists, 60)
            return proc.pid
        proc.wait(timeout=60)  # `run -d` returns once the supervisor is started
        run_id = self.newest_run(before)
        if run_id is None:
            return None
        if phase != "before start":
            _wait_for(ready.exists, 60)
        return self.supervisor_of(run_id)

    def survivors(self, pids: Path) -> int:
        if not pids.exists():
            return 0
        found = [int(line) for line in pids.read_text().split() if line.isdigit()]
        left = [pid for pid in found if _alive(pid)]
        for pid in left:  # the next iteration starts clean, and the count says what was left
            os.kill(pid, signal.SIGKILL)
        return len(left)

    # --- the ladders ---

    def cancel_ladder(self, index: int) -> float:
        """Seconds from `cancel --grace GRACE` to the end of every process of the run."""
        pids = self.work / f"cancel-{index}.txt"
        project = self.project(f"c{index}", TREE.format(pids=pids))
        run_id = self.cli("run", str(project), "-d").stdout.strip()
        _wait_for(lambda: Path(f"{pids}.ready").exists(), 60)
        found = [int(line) for line in pids.read_text().split() if line.isdigit()]
        start = time.monotonic()
        self.cli("cancel", run_id, "--grace", str(GRACE))
        _wait_for(lambda: not any(_alive(pid) for pid in found), 60)
        return time.monotonic() - start

    def interrupt_ladder(self, index: int, presses: int) -> float:
        """Seconds from the first Ctrl-C to the moment the background worker got SIGTERM."""
        signals = self.work / f"signals-{index}-{presses}.txt"
        worker = self.work / "worker.py"
        worker.write_text(
            "import signal, sys, time\n"
            "def term(signum, frame):\n"
            "    open(sys.argv[1], 'a').write('TERM\\n')\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, term)\n"
            "open(sys.argv[1], 'a').write('up\\n')\n"
            "while True:\n"
            "    time.sleep(0.02)\n"
        )
        project = self.project(f"i{index}-{presses}", f"{sys.executable} {worker} {signals} & wait")
        proc = subprocess.Popen(
            [self.mlproj, "run", str(project)], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _wait_for(lambda: signals.exists() and "up" in signals.read_text(), 60)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        if presses > 1:
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
        _wait_for(lambda: "TERM" in signals.read_text(), 60)
        elapsed = time.monotonic() - start
        proc.communicate(timeout=60)
        return elapsed


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _wait_gone(pid: int | None) -> None:
    if pid is not None:
        _wait_for(lambda: not _alive(pid), 30)


def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("soak: a condition was not met in time")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--ladders", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--tracking", choices=("auto", "tree"), default="auto")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlproj-soak-") as folder:
        soak = Soak(Path(folder), options.seed, options.tracking)
        tracking = subprocess.run(
            [
                str(bin_path(soak.venv, "python")),
                "-c",
                "from mlproj.proctree import mechanism; print(mechanism())",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=soak.env,
        ).stdout.strip()
        kills: Counter[tuple[str, str]] = Counter()
        stale: Counter[tuple[str, str]] = Counter()
        surviving: Counter[tuple[str, str]] = Counter()
        endings: Counter[str] = Counter()
        for index in range(options.iterations):
            phase, mode, lied, left, ending = soak.iteration(index)
            kills[(phase, mode)] += 1
            stale[(phase, mode)] += lied
            surviving[(phase, mode)] += left
            endings[ending] += 1
            print(
                f"{index + 1}/{options.iterations}: {phase}, {mode}: {ending}, {left} left", file=sys.stderr
            )
        cancels = [soak.cancel_ladder(i) for i in range(options.ladders)]
        singles = [soak.interrupt_ladder(i, 1) for i in range(options.ladders)]
        doubles = [soak.interrupt_ladder(i, 2) for i in range(options.ladders)]
    rows = [
        f"| {phase} | {mode} | {kills[(phase, mode)]} | {stale[(phase, mode)]} | {surviving[(phase, mode)]} |"
        for phase in PHASES
        for mode in MODES
    ]
    total_stale, total_left = sum(stale.values()), sum(surviving.values())
    intro = (
        f"{options.iterations} iterations (seed {options.seed}), process tracking: **{tracking}**. Each "
        "starts a run whose processes escape every way they can (a child, a grandchild in its own session, "
        "one started with `env -i setsid` that ignores SIGTERM) and kills its supervisor with SIGKILL before "
        "the workload starts, while a conda stand-in builds its environment (starting escaping processes of "
        "its own), or while it runs; in the foreground or detached. Then one `mlproj status` must tell the "
        "truth."
    )
    cancel_met = "yes" if max(cancels) <= GRACE + 0.5 else "no"
    body = "\n".join(
        [
            intro,
            "",
            "| killed | supervisor | iterations | stale statuses | surviving processes |",
            "|---|---|---|---|---|",
            *rows,
            f"| **all** | | **{options.iterations}** | **{total_stale}** | **{total_left}** |",
            "",
            "How the runs were found by that read: "
            + ", ".join(f"{name} {count}" for name, count in sorted(endings.items())),
            "",
            f"Ladders, {options.ladders} times each:",
            "",
            "| ladder | median | max | target |",
            "|---|---|---|---|",
            f"| `cancel --grace {GRACE:g}`, processes ignoring SIGTERM: all gone after "
            f"| {statistics.median(cancels):.2f} s | {max(cancels):.2f} s "
            f"| ≤ {GRACE + 0.5:g} s: {cancel_met} |",
            "| Ctrl-C, background worker ignoring SIGINT: SIGTERM after "
            f"| {statistics.median(singles):.2f} s | {max(singles):.2f} s "
            f"| the interrupt timeout ({INTERRUPT_TIMEOUT:g} s), not SIGKILL |",
            f"| Ctrl-C twice: SIGTERM after | {statistics.median(doubles):.2f} s | {max(doubles):.2f} s "
            "| at once |",
            "",
            f"- stale statuses: **{total_stale}**, surviving processes: **{total_left}** (goal: 0 and 0)",
            *(
                [
                    "- without cgroups this is expected: once its supervisor is killed, the process started "
                    "with `env -i setsid` is out of mlproj's reach (it left the process group, the "
                    "descendants and the `MLPROJ_RUN_ID` marker), one per iteration in which it had started "
                    "(docs/decisions.md)"
                ]
                if options.tracking == "tree"
                else []
            ),
        ]
    )
    title = "soak: kill -9 of supervisors, and the stop ladders"
    write_section(title if options.tracking == "auto" else f"{title} (tree tracking, no cgroups)", body)


if __name__ == "__main__":
    main()
