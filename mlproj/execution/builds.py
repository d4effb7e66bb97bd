"""The programs of an environment build, run for a run's supervisor: in the run's cgroup, their output
appended to the run's log, stopped (through the ladder) when the run is stopped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mlproj import process
from mlproj.execution.ladder import Stop, climb, rungs
from mlproj.execution.signals import Canceled
from mlproj.proctree import RunProcesses

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from mlproj.envs.base import BuildStep
    from mlproj.envs.build import StepResult

OUTPUT_INTERVAL = 0.1  # how often a build's phase is said again (its display counts the seconds)


def run_build_step(
    run_id: str,
    step: BuildStep,
    base_env: Mapping[str, str],
    log_path: Path,
    on_status: Callable[[str | None], None],
    poll_stop: Callable[[], Stop | None],
    cgroup: Path | None = None,
) -> StepResult:
    """Run one program of an environment build (in the run's cgroup), its output appended to
    `log_path`; `poll_stop` is asked between reads, and a stop ends the program's tree and raises
    `Canceled`."""
    from mlproj.envs.build import StepResult

    with log_path.open("ab") as log:
        log.write(f"mlproj: {step.description}: {' '.join(step.argv)}\n".encode())
    start = log_path.stat().st_size
    proc = process.spawn(
        process.ExecRequest(
            argv=step.argv, cwd=step.cwd, env={**base_env, **step.env}, log_path=log_path, cgroup=cgroup
        )
    )
    waiter = process.Waiter(proc)
    builder = RunProcesses(
        run_id,
        cgroup=cgroup,
        leader=process.Proc(proc.pid, process.identity(proc.pid) or ""),
        held=True,
    )
    try:
        while True:
            returncode = waiter.wait(OUTPUT_INTERVAL)
            # The phase, again: the display shows how long it has taken. The installer's own lines
            # are the log's (a warning of pip's must not wrap over the status line).
            on_status(step.description)
            if returncode is not None:
                break
            stop = poll_stop()
            if stop is not None:
                grace = min(stop.ladder[0].wait, process.LEFTOVER_GRACE)
                climb(builder, rungs(grace))
                raise Canceled(stop.reason or "canceled")
    finally:
        waiter.close()
    with log_path.open("rb") as log:
        log.seek(start)
        tail = log.read()[-4000:].decode("utf-8", errors="replace")
    return StepResult(returncode, "\n".join(tail.strip().splitlines()[-5:]))
