"""`slurm`: runs submitted with `sbatch`, followed with `scontrol` (and `sacct` when accounting is on),
stopped with `scancel`.

The environment is built where mlproj runs, in an MLPROJ_HOME the cluster's nodes share, and reaches
the job through its variables (PATH, VIRTUAL_ENV…): sbatch is given the run's whole environment
(`--export=ALL`). The job writes its output straight into the run's log (`--output`, appended), so
`logs -f` follows it live from any shell. Slurm's state is kept on the run (`backend_state`).
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from collections.abc import Mapping

from mlproj.backends.base import Backend, Launch, matching, positive_int, string_list, text
from mlproj.backends.workload import ClusterWorkload, JobState
from mlproj.errors import InputError, MlprojError
from mlproj.runs.status import RunStatus
from mlproj.structs import replace

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.backends.workload import Workload
    from mlproj.envs.base import EnvManager
    from mlproj.runs.envspec import EnvSpec
    from mlproj.runs.record import RunRecord

COMMAND_TIMEOUT = 60  # seconds for one sbatch/scontrol/scancel call
# Slurm's job states → mlproj's (design.md §3); anything else is treated as still running.
STATES = {
    "PENDING": RunStatus.QUEUED,
    "CONFIGURING": RunStatus.QUEUED,
    "REQUEUED": RunStatus.QUEUED,
    "REQUEUE_HOLD": RunStatus.QUEUED,
    "REQUEUE_FED": RunStatus.QUEUED,
    "RESV_DEL_HOLD": RunStatus.QUEUED,
    "RUNNING": RunStatus.RUNNING,
    "COMPLETING": RunStatus.RUNNING,
    "SUSPENDED": RunStatus.RUNNING,
    "STOPPED": RunStatus.RUNNING,
    "SIGNALING": RunStatus.RUNNING,
    "STAGE_OUT": RunStatus.RUNNING,
    "RESIZING": RunStatus.RUNNING,
    "COMPLETED": RunStatus.FINISHED,
    "CANCELLED": RunStatus.CANCELED,
    "FAILED": RunStatus.FAILED,
    "TIMEOUT": RunStatus.FAILED,
    "NODE_FAIL": RunStatus.FAILED,
    "OUT_OF_MEMORY": RunStatus.FAILED,
    "BOOT_FAIL": RunStatus.FAILED,
    "DEADLINE": RunStatus.FAILED,
    "PREEMPTED": RunStatus.FAILED,
    "REVOKED": RunStatus.FAILED,
    "SPECIAL_EXIT": RunStatus.FAILED,
}
EXPLAINED = {
    "TIMEOUT": "Slurm ended the job at its time limit (TIMEOUT)",
    "NODE_FAIL": "the node running the job failed (NODE_FAIL)",
    "OUT_OF_MEMORY": "the job ran out of memory (OUT_OF_MEMORY)",
    "BOOT_FAIL": "the node could not boot for the job (BOOT_FAIL)",
    "DEADLINE": "the job missed its deadline (DEADLINE)",
    "PREEMPTED": "the job was preempted (PREEMPTED)",
}
OPTIONS = {  # backend_config key → sbatch option
    "partition": "--partition",
    "time": "--time",
    "cpus_per_task": "--cpus-per-task",
    "mem": "--mem",
    "gpus": "--gpus",
    "account": "--account",
    "qos": "--qos",
    "job_name": "--job-name",
}


class SlurmBackend(Backend):
    name = "slurm"
    queues = True
    config_fields = {  # noqa: RUF012 - read-only table
        "partition": (text, "a partition name"),
        "time": (
            matching(
                r"(\d+-)?\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE", "a time limit such as 30, 2:00:00 or 1-12"
            ),
            "a time limit",
        ),
        "cpus_per_task": (positive_int, "a number of CPUs"),
        "mem": (matching(r"\d+[KMGTkmgt]?", "an amount of memory such as 4096, 512M or 16G"), "memory"),
        "gpus": (matching(r"([A-Za-z0-9_-]+:)?\d+", "a number of GPUs, or TYPE:COUNT"), "GPUs"),
        "account": (text, "an account name"),
        "qos": (text, "a QOS name"),
        "job_name": (text, "a job name"),
        "sbatch_args": (string_list, "a list of extra sbatch arguments"),
    }

    def check(self, config: Mapping[str, Any], manager: EnvManager, spec: EnvSpec | None) -> None:
        super().check(config, manager, spec)
        out = _slurm(["sinfo", "-h", "-o", "%P"], "the cluster does not answer")
        partitions = [line.strip().rstrip("*") for line in out.splitlines() if line.strip()]
        wanted = config.get("partition")
        if wanted is not None and wanted not in partitions:
            known = ", ".join(partitions) or "none"
            raise InputError(f"backend slurm: partition {wanted!r} does not exist (partitions: {known})")

    def launch(self, launch: Launch) -> Workload:
        record, request = launch.record, launch.process
        config = dict(launch.request.backend_config)
        script = request.log_path.parent / "slurm-job.sh"
        script.write_text(
            "#!/bin/sh\n# written by mlproj for run " + record.run_id + "\n"
            "exec " + " ".join(shlex.quote(arg) for arg in request.argv) + "\n",
            encoding="utf-8",
        )
        script.chmod(0o755)
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name=mlproj-{record.run_id[:8]}",
            f"--output={request.log_path}",
            "--open-mode=append",
            f"--chdir={request.cwd}",
            "--export=ALL",
        ]
        for key, option in OPTIONS.items():
            if key in config:
                argv.append(f"{option}={config[key]}")
        argv += [str(arg) for arg in config.get("sbatch_args") or []]
        argv.append(str(script))
        out = _slurm(argv, "sbatch refused the job", env=dict(request.env), input_error=False)
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise MlprojError(f"backend slurm: sbatch did not print a job ID: {out.strip()[:200]}")
        return SlurmJob(f"slurm job {job_id}", record, job_id)

    def job_state(self, record: RunRecord) -> JobState | None:
        return query(record.job_id or "")

    def cancel_job(self, record: RunRecord, grace: float) -> None:  # noqa: ARG002 - the Backend interface's signature
        if record.job_id:
            _scancel(record.job_id, None)


class SlurmJob(ClusterWorkload):
    def fetch_state(self) -> JobState | None:
        return query(self.job_id or "")

    def stop_job(self, sig: int) -> None:
        _scancel(
            self.job_id or "", None if sig == signal.SIGKILL else signal.Signals(sig).name.removeprefix("SIG")
        )


def query(job_id: str) -> JobState | None:
    """The job's state from `scontrol` (while Slurm remembers it, `MinJobAge`), else from `sacct` when
    accounting is on; None when the cluster does not know the job."""
    if not job_id:
        return None
    done = _run(["scontrol", "show", "job", "-o", job_id])
    if done is not None and done.returncode == 0 and "JobState=" in done.stdout:
        fields = _fields(done.stdout)
        native = fields.get("JobState", "UNKNOWN")
        state = _state(native, fields.get("ExitCode", ""), fields.get("Reason"))
        return replace(
            state, started_at=_stamp(fields.get("StartTime")), ended_at=_stamp(fields.get("EndTime"))
        )
    done = _run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,ExitCode"])
    if done is not None and done.returncode == 0 and done.stdout.strip():
        native, _, exit_text = done.stdout.strip().splitlines()[0].partition("|")
        return _state(native.split()[0] if native.split() else "UNKNOWN", exit_text, None)
    return None


def _state(native: str, exit_text: str, reason: str | None) -> JobState:
    status = STATES.get(native, RunStatus.RUNNING)
    code, _, sig = exit_text.partition(":")
    exit_code: int | None = None
    if code.isdigit():
        exit_code = int(code)
        if sig.isdigit() and int(sig) and not exit_code:
            exit_code = 128 + int(sig)
    explained = EXPLAINED.get(native)
    if native == "FAILED" and reason and reason not in ("None", "NonZeroExitCode"):
        explained = f"Slurm: {reason}"
    if native == "CANCELLED":
        explained = "canceled on the cluster (CANCELLED)"
    return JobState(status, native, exit_code, explained)


def _stamp(text: str | None) -> float | None:
    """A Slurm time (`2026-11-29T08:14:34`, this machine's local time) as epoch seconds; None for
    `Unknown`, `None` or a time to come."""
    if not text or not text[:1].isdigit():
        return None
    try:
        stamp = time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return stamp if stamp <= time.time() + 1 else None


def _fields(line: str) -> dict[str, str]:
    fields = {}
    for item in line.split():
        key, equals, value = item.partition("=")
        if equals and key not in fields:
            fields[key] = value
    return fields


def _scancel(job_id: str, signal_name: str | None) -> None:
    argv = (
        ["scancel", job_id]
        if signal_name is None
        else ["scancel", f"--signal={signal_name}", "--full", job_id]
    )
    _run(argv)


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, env=env
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _slurm(argv: list[str], what: str, env: dict[str, str] | None = None, *, input_error: bool = True) -> str:
    """Run a Slurm command; its stdout, or an error naming the backend and why."""
    error = InputError if input_error else MlprojError
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, env=env
        )
    except FileNotFoundError:
        raise error(f"backend slurm: {argv[0]} is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise error(f"backend slurm: {what}: {argv[0]} did not answer within {COMMAND_TIMEOUT} s") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise error(f"backend slurm: {what}: {lines[-1] if lines else f'exit code {done.returncode}'}")
    return done.stdout
