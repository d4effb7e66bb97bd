"""A 50-stage chain with DVC (`dvc repro`) and the same chain as an mlproj pipeline, cold and fully cached.

Usage: python bench/dvc_compare.py [--rounds N] [--stages N]   (defaults 5 rounds, at least 5; 50 stages)
"""

import argparse
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from common import (
    ORDER,
    WORK,
    bin_path,
    child_env,
    ensure_dvc_venv,
    ensure_mlproj_venv,
    measure_timed,
    median,
    ms,
    package_version,
    write_section,
)
from pipeline_overhead import Pipeline

TITLE = "dvc_compare: a chain of stages, DVC vs mlproj"
BASE = WORK / "dvc-compare"
REPO = BASE / "dvc-repo"


def command(i: int, source: str, target: str) -> str:
    """Stage i's command, the same on both sides: the previous stage's file plus one line."""
    return f"echo {i} > {target}" if i == 0 else f"cat {source} > {target} && echo {i} >> {target}"


def dvc_yaml(stages: int) -> str:
    lines = ["stages:"]
    for i in range(stages):
        lines += [f"  s{i}:", f"    cmd: {command(i, f's{i - 1}.txt', f's{i}.txt')}"]
        if i > 0:
            lines.append(f"    deps: [s{i - 1}.txt]")
        lines.append(f"    outs: [s{i}.txt]")
    return "\n".join(lines) + "\n"


def pipeline_yaml(stages: int) -> str:
    lines = ["type: pipeline", "name: dvc-chain", "jobs:"]
    for i in range(stages):
        cmd = command(i, "${{inputs.prev}}", "${{outputs.out}}")
        lines += [f"  s{i}:", "    type: command", f"    command: {cmd}"]
        if i > 0:
            lines += ["    inputs:", f"      prev: ${{{{parent.jobs.s{i - 1}.outputs.out}}}}"]
        lines += ["    outputs:", "      out: {type: uri_file}"]
    return "\n".join(lines) + "\n"


class Dvc:
    """The DVC repository (git + dvc, made afresh) and its `dvc repro` runs, checked from DVC's output."""

    def __init__(self, venv: Path, stages: int) -> None:
        self.exe, self.stages = str(bin_path(venv, "dvc")), stages
        for folder in (REPO, BASE / "dvc-site-cache", BASE / "dvc-config"):
            shutil.rmtree(folder, ignore_errors=True)
        REPO.mkdir(parents=True)
        # Nothing outside bench/.work: DVC's per-repository index and its config folders live here.
        # Analytics and the update check are off: they would reach for the internet (unreachable here).
        self.env = child_env(
            venv,
            DVC_NO_ANALYTICS="1",
            DVC_SITE_CACHE_DIR=str(BASE / "dvc-site-cache"),
            DVC_GLOBAL_CONFIG_DIR=str(BASE / "dvc-config" / "global"),
            DVC_SYSTEM_CONFIG_DIR=str(BASE / "dvc-config" / "system"),
            SHELL=shutil.which("bash") or "/bin/sh",  # DVC runs stages with $SHELL; mlproj uses bash
        )
        subprocess.run(["git", "init", "-q"], cwd=REPO, env=self.env, check=True)
        for argv in (
            ["init", "-q"],
            ["config", "core.analytics", "false"],
            ["config", "core.check_update", "false"],
        ):
            subprocess.run([self.exe, *argv], cwd=REPO, env=self.env, check=True, capture_output=True)
        (REPO / "dvc.yaml").write_text(dvc_yaml(stages))

    def repro(self, *args: str) -> tuple[float, str]:
        argv = [self.exe, "repro", *args]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, env=self.env, check=False, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return elapsed, done.stdout + done.stderr

    def cold(self, *args: str, before: Callable[[], None] | None = None) -> Callable[[], float]:
        """`before` (untimed), then `dvc repro ARGS` (timed); every stage must have run."""

        def call() -> float:
            if before is not None:
                before()
            seconds, output = self.repro(*args)
            ran = set(re.findall(r"Running stage '(s\d+)'", output))
            if len(ran) != self.stages:
                raise SystemExit(
                    f"dvc repro {' '.join(args)}: {len(ran)} stages of {self.stages} ran:\n{output}"
                )
            return seconds

        return call

    def cached(self) -> float:
        """`dvc repro` with nothing changed (timed); every stage must have been skipped."""
        seconds, output = self.repro()
        skipped = len(re.findall(r"Stage 's\d+' didn't change, skipping", output))
        if skipped != self.stages or "Running stage" in output:
            raise SystemExit(f"dvc repro: {skipped} stages of {self.stages} skipped:\n{output}")
        return seconds

    def clean(self) -> None:
        """As if never run: no outputs, no dvc.lock, an empty DVC cache (objects and run cache)."""
        for path in [*REPO.glob("s*.txt"), REPO / "dvc.lock"]:
            path.unlink(missing_ok=True)
        shutil.rmtree(REPO / ".dvc" / "cache", ignore_errors=True)


def final_outputs(dvc: Dvc, mlproj: Pipeline) -> Mapping[str, str]:
    """The last stage's file on each side (they must be the same: every stage's number, in order)."""
    run_id = mlproj.mlproj_json("runs", "--limit", "1")[0]["run_id"]
    steps = mlproj.mlproj_json("status", run_id)["steps"]
    return {
        "dvc": (REPO / f"s{dvc.stages - 1}.txt").read_text(),
        "mlproj": Path(steps[-1]["outputs"]["out"]).read_text(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stages", type=int, default=50, help="stages in the chain (at least 2)")
    args = parser.parse_args()
    rounds, n = max(5, args.rounds), max(2, args.stages)

    mlproj_venv, dvc_venv = ensure_mlproj_venv(), ensure_dvc_venv()
    BASE.mkdir(parents=True, exist_ok=True)
    dvc = Dvc(dvc_venv, n)
    mlproj = Pipeline(mlproj_venv, BASE, "mlproj-chain", pipeline_yaml(n), n, 1)
    dvc.cold()()  # fill DVC's lock file and cache, and mlproj's reuse cache (untimed)
    mlproj.cold()

    names = {
        "dvc_force": "`dvc repro --force` (cold, cache kept)",
        "dvc_clean": "`dvc repro` (cold, from clean)",
        "mlproj_cold": "`mlproj run --force-rerun` (cold)",
        "dvc_cached": "`dvc repro` (all skipped)",
        "mlproj_cached": "`mlproj run` (all reused)",
    }
    timed = {
        names["dvc_force"]: dvc.cold("--force"),
        names["dvc_clean"]: dvc.cold(before=dvc.clean),
        names["mlproj_cold"]: mlproj.cold,
        names["dvc_cached"]: dvc.cached,
        names["mlproj_cached"]: mlproj.reused,
    }
    times = measure_timed(timed, rounds)
    outputs = final_outputs(dvc, mlproj)
    expected = "".join(f"{i}\n" for i in range(n))
    if set(outputs.values()) != {expected}:
        raise SystemExit(f"the chains' last outputs differ from the expected {expected!r}: {outputs}")

    med = {key: median(times[name]) for key, name in names.items()}
    rows = [f"| {name} | {ms(median(v))} | {ms(min(v))} | {ms(max(v))} |" for name, v in times.items()]
    cold_ok = med["mlproj_cold"] < min(med["dvc_force"], med["dvc_clean"])
    cached_ok = med["mlproj_cached"] < med["dvc_cached"]
    body = "\n".join(
        [
            f"A chain of {n} stages; stage i reads stage i-1's file and writes its own: "
            "`cat <in> > <out> && echo i >> <out>` (stage 0: `echo 0 > <out>`), run with bash on both "
            f"sides. DVC {package_version(dvc_venv, 'dvc')}: a `dvc.yaml` (`deps`/`outs` files) in a fresh "
            "git + DVC repository in bench/.work. mlproj: a pipeline of command steps, each with a "
            "`uri_file` output and an input bound to the previous step's "
            "(`${{parent.jobs.sN.outputs.out}}`), run with `--max-parallel 1` when cold. "
            f"{rounds} rounds after one warm-up each, commands {ORDER}.",
            "",
            "Cold (every stage runs; checked, untimed, from DVC's output and from `mlproj status <id> "
            "--json`): DVC in two ways, `dvc repro --force` with its lock file and cache in place, and "
            "`dvc repro` after removing (untimed) the outputs, `dvc.lock` and `.dvc/cache` (objects and run "
            "cache, so nothing is restored from it); mlproj: `mlproj run <pipeline> --force-rerun`. Fully "
            "cached (nothing changed since the previous run): `dvc repro` skips every stage; "
            "`mlproj run <pipeline>` reuses every step (`reused_from` set on all). After the rounds, the "
            "last file of each chain is checked to hold the numbers 0 to N-1.",
            "",
            "Offline: DVC installs from PyPI and `dvc init`/`dvc repro` need no network. Its analytics and "
            "update check, which would, are off (`DVC_NO_ANALYTICS=1`, `core.check_update false`); its site "
            "cache and config folders are in bench/.work.",
            "",
            "| command | median | min | max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- cold, dvc / mlproj: **{med['dvc_force'] / med['mlproj_cold']:.1f}x** with `--force`, "
            f"**{med['dvc_clean'] / med['mlproj_cold']:.1f}x** from clean",
            f"- fully cached, dvc / mlproj: **{med['dvc_cached'] / med['mlproj_cached']:.1f}x**",
            f"- target (mlproj faster in both): cold {'yes' if cold_ok else 'NO'}, "
            f"cached {'yes' if cached_ok else 'NO'}",
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
