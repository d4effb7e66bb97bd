"""Submit-to-finish on a cluster, same trivial command both ways: `mlproj run -b slurm` vs `sbatch --wait`
by hand, and `mlproj run -b ray` vs `ray job submit` by hand.

Needs a Slurm cluster (sbatch, sinfo and scontrol on PATH, SLURM_CONF where it is not the default) and a
Ray cluster's dashboard (RAY_ADDRESS, default http://127.0.0.1:8265); a side whose cluster does not
answer is skipped, saying why. Where slurmctld's log is readable (SlurmctldLogFile), each Slurm job's
submission, start and end are taken from it (millisecond stamps); Ray's come from its Jobs API.

Usage: python bench/cluster_overhead.py [--rounds N] [--only slurm|ray]   (default 7 rounds, at least 5)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common import (
    ORDER,
    WORK,
    bin_path,
    child_env,
    ensure_mlproj_ray_venv,
    ensure_mlproj_venv,
    measure_timed,
    median,
    ms,
    write_section,
)

TITLE = "cluster_overhead: mlproj run -b slurm / -b ray vs sbatch --wait / ray job submit"
BASE = WORK / "cluster-overhead"
COMMAND = "echo hello from the job"
EXPECTED = "hello from the job"  # in what every measured command prints
TARGET = 1.3  # mlproj / by hand, at most
DEFAULT_RAY_ADDRESS = "http://127.0.0.1:8265"
MLPROJECT = f'name: cluster-bench\nentry_points:\n  main:\n    command: "{COMMAND}"\n'
SLURM_POLL = 0.1  # seconds between `scontrol show job` calls in the polling loop (context row)
ACTIVE = "PENDING|CONFIGURING|RUNNING|COMPLETING"  # Slurm states of a job that has not ended

Step = tuple[Sequence[str], Mapping[str, str], Path]  # argv, environment, working folder


@dataclass
class Sample:
    """One timed command: when it was started (wall clock), how long it took, what it printed."""

    launched: float
    seconds: float
    outputs: list[str]
    job: str | None = None  # the cluster's job ID (Slurm) or submission ID (Ray)
    record: dict[str, Any] = field(default_factory=dict)  # mlproj's run record, for mlproj's runs


def run_steps(*steps: Step) -> Sample:
    """The steps one after the other, timed together; a failing one stops the benchmark."""
    launched, start = time.time(), time.perf_counter()
    outputs = []
    for argv, env, cwd in steps:
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(
                f"{shlex.join(argv)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        outputs.append(done.stdout + done.stderr)
    seconds = time.perf_counter() - start
    if EXPECTED not in outputs[-1]:
        raise SystemExit(f"{shlex.join(steps[-1][0])} did not show the job's output:\n{outputs[-1]}")
    return Sample(launched, seconds, outputs)


class Series:
    """The commands of one side, measured together; every sample kept (the warm-up's first)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[Sample]] = {}
        self.timed: dict[str, Callable[[], float]] = {}

    def add(self, name: str, call: Callable[[], Sample]) -> None:
        kept = self.samples.setdefault(name, [])

        def timed() -> float:
            sample = call()
            kept.append(sample)
            return sample.seconds

        self.timed[name] = timed

    def measure(self, rounds: int) -> dict[str, list[float]]:
        times = measure_timed(self.timed, rounds)
        self.samples = {name: samples[1:] for name, samples in self.samples.items()}  # without warm-ups
        return times

    def mlproj_runs(self, name: str, mlproj: str, env: Mapping[str, str], backend: str) -> None:
        """Untimed, after the measurement: every run `name` made is in `mlproj runs --json`, Finished,
        on `backend`; each measured sample gets its run's record and job. Anything else stops here."""
        made = len(self.samples[name]) + 1  # with the warm-up
        argv = [mlproj, "runs", "--json", "--limit", str(made + 10)]
        done = subprocess.run(argv, env=env, cwd=BASE, capture_output=True, text=True, check=True)
        runs = sorted(json.loads(done.stdout), key=lambda run: run["created_at"])
        wrong = [r for r in runs if r["status"] != "Finished" or r["backend"] != backend or not r["job_id"]]
        if len(runs) != made or wrong:
            shown = "\n".join(
                f"  {r['run_id']}: {r['status']} on {r['backend']}, job {r['job_id']}, error: {r['error']}"
                for r in wrong
            )
            raise SystemExit(
                f"mlproj run -b {backend}: {len(runs)} runs recorded for {made} made; "
                f"{len(wrong)} not Finished on {backend} with a job:\n{shown}"
            )
        for sample, run in zip(self.samples[name], runs[1:], strict=True):
            sample.record, sample.job = run, run["job_id"]


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def table(times: Mapping[str, list[float]]) -> list[str]:
    rows = [f"| {name} | {ms(median(v))} | {ms(min(v))} | {ms(max(v))} |" for name, v in times.items()]
    return ["| command | median | min | max |", "|---|---|---|---|", *rows]


def verdict(ratio: float) -> str:
    return f"**{ratio:.2f}x** (target: at most {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})"


def phase_table(header: Sequence[str], rows: Sequence[tuple[str, list[float] | None]]) -> list[str]:
    """Medians of each phase; `?` for a command whose jobs the cluster did not stamp."""
    lines = [f"| command | {' | '.join(header)} |", "|---" * (len(header) + 1) + "|"]
    for name, values in rows:
        shown = ["?"] * len(header) if values is None else [ms(v) for v in values]
        lines.append(f"| {name} | {' | '.join(shown)} |")
    return lines


def phase_medians(
    samples: Sequence[Sample], moments: Callable[[Sample], list[float] | None]
) -> list[float] | None:
    """The median of each phase between consecutive moments (start, the cluster's stamps, exit); None
    when a sample's cluster stamps are missing."""
    known = [m for m in map(moments, samples) if m is not None]
    if not known or len(known) != len(samples):
        return None
    return [median([m[i + 1] - m[i] for m in known]) for i in range(len(known[0]) - 1)]


def late_median(samples: Sequence[Sample], late: Callable[[Sample], float | None]) -> float | None:
    values = [v for v in map(late, samples) if v is not None]
    return median(values) if values and len(values) == len(samples) else None


# --- Slurm ---------------------------------------------------------------------------------------


def slurm_partition() -> tuple[str | None, str]:
    """(the default partition, "") when the cluster answers, else (None, why not)."""
    for tool in ("sbatch", "sinfo", "scontrol"):
        if shutil.which(tool) is None:
            return None, f"`{tool}` is not on PATH"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return None, "`sinfo` did not answer within 30 s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return None, f"`sinfo` failed: {lines[-1] if lines else f'exit code {done.returncode}'}"
    partitions = [line.split() for line in done.stdout.splitlines() if len(line.split()) == 2]
    up = [name for name, avail in partitions if avail == "up"]
    if not up:
        return None, "no partition is up"
    default = [name for name in up if name.endswith("*")]
    return (default or up)[0].rstrip("*"), ""


def slurmctld_log() -> Path | None:
    """slurmctld's log file, when this machine can read it."""
    done = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=False)
    found = re.search(r"^SlurmctldLogFile\s*=\s*(\S+)", done.stdout, re.MULTILINE)
    path = Path(found.group(1)) if found else None
    return path if path is not None and path.is_file() and os.access(path, os.R_OK) else None


SLURM_EVENTS = {
    "submitted": re.compile(r"_slurm_rpc_submit_batch_job: JobId=(\d+)\b"),
    # "sched: Allocate JobId=N …", or by the backfill scheduler "sched/backfill: _start_job: Started JobId=N"
    "started": re.compile(r"sched(?:/backfill)?: (?:_start_job: )?(?:Allocate|Started) JobId=(\d+)\b"),
    "ended": re.compile(r"_job_complete: JobId=(\d+) done"),
}


def slurm_events(log: Path, offset: int) -> dict[str, dict[str, float]]:
    """job ID → {submitted, started, ended: wall-clock seconds}, from slurmctld's log after `offset`."""
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", errors="replace")
    events: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        found = re.match(r"\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\] (.*)", line)
        if not found:
            continue
        for event, pattern in SLURM_EVENTS.items():
            job = pattern.search(found.group(2))
            if job:
                when = datetime.fromisoformat(found.group(1)).timestamp()  # the machine's local time
                events.setdefault(job.group(1), {}).setdefault(event, when)
    return events


def slurm_side(rounds: int, project: Path, partition: str) -> str:
    venv = ensure_mlproj_venv()
    home = BASE / "slurm-mlproj-home"
    hand = BASE / "slurm-by-hand"
    for folder in (home, hand):
        shutil.rmtree(folder, ignore_errors=True)
    hand.mkdir(parents=True)
    env = child_env(venv, MLPROJ_HOME=str(home))
    mlproj = str(bin_path(venv, "mlproj"))
    out = hand / "job.out"
    log = slurmctld_log()
    offset = log.stat().st_size if log is not None else 0

    def by_hand() -> Sample:
        out.unlink(missing_ok=True)
        sbatch = ["sbatch", "--wait", "--parsable", f"--partition={partition}", "-o", str(out)]
        sample = run_steps(([*sbatch, "--wrap", COMMAND], env, project), (["cat", str(out)], env, project))
        sample.job = sample.outputs[0].strip().splitlines()[0].split(";")[0]
        return sample

    poll_script = (
        f"job=$(sbatch --parsable --partition={shlex.quote(partition)} -o {shlex.quote(str(out))} "
        f"--wrap {shlex.quote(COMMAND)}) || exit 1\n"
        'job=${job%%;*}\necho "$job"\n'
        f"while scontrol show job -o \"$job\" | grep -qE 'JobState=({ACTIVE}) '\n"
        f"do sleep {SLURM_POLL}; done\n"
        f"cat {shlex.quote(str(out))}\n"
    )

    def polling() -> Sample:
        out.unlink(missing_ok=True)
        sample = run_steps((["bash", "-c", poll_script], env, project))
        sample.job = sample.outputs[0].strip().splitlines()[0]
        return sample

    config = json.dumps({"partition": partition})
    names = {
        "mlproj": "`mlproj run <project> -b slurm`",
        "hand": "`sbatch --wait --wrap` + `cat` (by hand)",
        "poll": f"`sbatch` + `scontrol show job` every {SLURM_POLL:g} s + `cat` (context)",
    }
    series = Series()
    series.add(
        names["mlproj"],
        lambda: run_steps(([mlproj, "run", str(project), "-b", "slurm", "-c", config], env, BASE)),
    )
    series.add(names["hand"], by_hand)
    series.add(names["poll"], polling)
    times = series.measure(rounds)
    series.mlproj_runs(names["mlproj"], mlproj, env, "slurm")

    med = {name: median(values) for name, values in times.items()}
    ratio = med[names["mlproj"]] / med[names["hand"]]
    lines = [
        f"### Slurm ({slurm_version()}, partition `{partition}`)",
        "",
        *table(times),
        "",
        f"- mlproj / `sbatch --wait` by hand: {verdict(ratio)}",
        f"- mlproj / `sbatch` + polling every {SLURM_POLL:g} s (context): "
        f"**{med[names['mlproj']] / med[names['poll']]:.2f}x**",
        "- `sbatch --wait` looks at the job first 2 s after submitting it (then after longer sleeps), "
        "so by hand a job that ends sooner takes 2 s; the polling row shows what Slurm itself takes. "
        "Slurm starts a pending job at its next scheduling pass (`SchedulerParameters`), which every "
        "row waits for.",
    ]
    events = slurm_events(log, offset) if log is not None else {}
    samples = series.samples

    def moments(sample: Sample) -> list[float] | None:
        job = events.get(sample.job or "", {})
        if any(event not in job for event in SLURM_EVENTS):
            return None
        return [sample.launched, *(job[event] for event in SLURM_EVENTS), sample.launched + sample.seconds]

    if events:
        lines += [
            "",
            f"Where the time goes (medians; Slurm's stamps from slurmctld's log `{log}`, millisecond "
            "resolution, on this machine's clock):",
            "",
            *phase_table(
                ["start → submitted", "submitted → started", "started → ended", "ended → exit"],
                [(name, phase_medians(samples[name], moments)) for name in names.values()],
            ),
        ]
    else:
        lines += ["", "slurmctld's log is not readable here: no breakdown of the phases."]

    def recorded_end(sample: Sample) -> float | None:
        ended = events.get(sample.job or "", {}).get("ended")
        return None if ended is None else stamp(sample.record["ended_at"]) - ended

    lines += ["", record_line(samples[names["mlproj"]], recorded_end, "Slurm's end")]
    return "\n".join(lines)


def record_line(mine: Sequence[Sample], recorded_end: Callable[[Sample], float | None], end: str) -> str:
    """What mlproj's run records say of the measured runs, against the cluster's own stamps."""
    created = median([stamp(s.record["created_at"]) - s.launched for s in mine])
    duration = median([s.record["duration_s"] or 0.0 for s in mine])
    late = late_median(mine, recorded_end)
    return (
        f"- mlproj's run records: created {ms(created)} after the command started; recorded duration "
        f"(`duration_s`, from seeing the job started to recording its end) {ms(duration)}"
        + ("" if late is None else f"; recorded end {ms(late)} after {end}")
        + " (medians)"
    )


def slurm_version() -> str:
    done = subprocess.run(["sinfo", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "Slurm"


# --- Ray -----------------------------------------------------------------------------------------


def ray_api(address: str, path: str) -> Any:
    url = f"{address.rstrip('/')}{path}"  # http(s): main checks the address
    with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310
        return json.loads(response.read().decode("utf-8"))


def ray_version(address: str) -> tuple[str | None, str]:
    """(the cluster's Ray version, "") when its dashboard answers, else (None, why not)."""
    try:
        return str(ray_api(address, "/api/version")["ray_version"]), ""
    except (OSError, ValueError, KeyError) as exc:
        return None, f"no Ray dashboard answers at {address}: {exc}"


def ray_side(rounds: int, project: Path, address: str, version: str) -> str:
    venv = ensure_mlproj_ray_venv(version)
    home = BASE / "ray-mlproj-home"
    shutil.rmtree(home, ignore_errors=True)
    env = child_env(venv, MLPROJ_HOME=str(home), RAY_ADDRESS=address)
    mlproj, ray = str(bin_path(venv, "mlproj")), str(bin_path(venv, "ray"))
    entrypoint = ["bash", "-c", COMMAND]  # what mlproj submits: the MLproject command under bash -c

    def by_hand() -> Sample:
        argv = [ray, "job", "submit", "--address", address, "--working-dir", str(project), "--", *entrypoint]
        sample = run_steps((argv, env, project))
        found = re.search(r"Job '([^']+)' submitted successfully", sample.outputs[0])
        sample.job = found.group(1) if found else None
        return sample

    names = {
        "mlproj": "`mlproj run <project> -b ray`",
        "hand": "`ray job submit --working-dir <project>` (by hand)",
    }
    series = Series()
    series.add(names["mlproj"], lambda: run_steps(([mlproj, "run", str(project), "-b", "ray"], env, BASE)))
    series.add(names["hand"], by_hand)
    times = series.measure(rounds)
    series.mlproj_runs(names["mlproj"], mlproj, env, "ray")

    jobs: dict[str, dict[str, Any]] = {}
    for samples in series.samples.values():
        for sample in samples:
            if sample.job:
                jobs[sample.job] = ray_api(address, f"/api/jobs/{sample.job}")
    failed = [
        f"{job}: {info.get('status')}" for job, info in jobs.items() if info.get("status") != "SUCCEEDED"
    ]
    if failed:
        raise SystemExit("Ray jobs that did not succeed:\n" + "\n".join(failed))

    def moments(sample: Sample) -> list[float] | None:
        info = jobs.get(sample.job or "") or {}
        if not info.get("start_time") or not info.get("end_time"):
            return None
        ray_times = [info["start_time"] / 1000, info["end_time"] / 1000]
        return [sample.launched, *ray_times, sample.launched + sample.seconds]

    med = {name: median(values) for name, values in times.items()}
    ratio = med[names["mlproj"]] / med[names["hand"]]

    def recorded_end(sample: Sample) -> float | None:
        info = jobs.get(sample.job or "") or {}
        return stamp(sample.record["ended_at"]) - info["end_time"] / 1000 if info.get("end_time") else None

    lines = [
        f"### Ray ({version}, dashboard `{address}`)",
        "",
        *table(times),
        "",
        f"- mlproj / `ray job submit` by hand: {verdict(ratio)}",
        "",
        "Where the time goes (medians; Ray's stamps from its Jobs API: the job's `start_time`, set when "
        "it is submitted, and `end_time`):",
        "",
        *phase_table(
            ["start → submitted", "submitted → ended", "ended → exit"],
            [(name, phase_medians(series.samples[name], moments)) for name in names.values()],
        ),
        "",
        "- ended → exit: `ray job submit` follows the job's logs (`tail_job_logs`, a stream the dashboard "
        "closes some time after the job's end) and exits when the stream closes; mlproj follows the same "
        "stream, but once the job has ended it completes the run's log from the job's whole output "
        "(`get_job_logs`) instead of waiting for the stream to close.",
        record_line(series.samples[names["mlproj"]], recorded_end, "Ray's `end_time`"),
    ]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", choices=("slurm", "ray"), help="measure one side only")
    args = parser.parse_args()
    rounds = max(5, args.rounds)

    address = os.environ.get("RAY_ADDRESS") or DEFAULT_RAY_ADDRESS
    if not address.startswith(("http://", "https://")):
        address = f"http://{address}"
    skipped: list[str] = []
    partition = version = None
    if args.only in (None, "slurm"):
        partition, why = slurm_partition()
        if partition is None:
            skipped.append(f"Slurm: skipped, the cluster is not reachable: {why}")
    if args.only in (None, "ray"):
        version, why = ray_version(address)
        if version is None:
            skipped.append(f"Ray: skipped, the cluster is not reachable: {why}")
    for line in skipped:
        print(line, file=sys.stderr)
    if partition is None and version is None:
        raise SystemExit("no cluster to measure: nothing written to RESULTS.md")

    project = BASE / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "MLproject").write_text(MLPROJECT)
    sections = []
    if partition is not None:
        sections.append(slurm_side(rounds, project, partition))
    if version is not None:
        sections.append(ray_side(rounds, project, address, version))
    body = "\n".join(
        [
            f"Project `bench/.work/cluster-overhead/project`, entry point `main`: `{COMMAND}`; the same "
            "command by hand. Timed: from starting the command to its exit, each showing the job's "
            f"output (checked). {rounds} rounds after one warm-up each, commands {ORDER}, each side in "
            "its own series. Afterwards `mlproj runs --json` must list every "
            "mlproj run (warm-ups included) as Finished, with its job.",
            *(f"\n- {line}" for line in skipped),
            *(f"\n{section}" for section in sections),
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
