"""Every process mlproj starts goes through here: new sessions, identities, and ending process trees.

An *identity* is a PID together with its start time (and, on Linux, the boot it belongs to), so that a
PID the kernel has handed to another program since is never signalled as ours.

Ending a run's processes finds them three ways, since any one alone can miss some: the process group of
the workload's main process, the descendants of that process, and every process whose environment
carries `MLPROJ_RUN_ID=<run id>` (which survives re-parenting and `setsid`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

    import psutil

RUN_ID_VARIABLE = "MLPROJ_RUN_ID"
RUN_DIR_VARIABLE = "MLPROJ_RUN_DIR"  # the run's own folder, for outputs
# Named timeouts (seconds) for stopping process trees.
INTERRUPT_TIMEOUT = 3.0  # Ctrl-C: SIGINT first, then SIGTERM after this long
DEFAULT_GRACE = 10.0  # SIGTERM, then SIGKILL after this long (`cancel --grace`)
LEFTOVER_GRACE = 2.0  # processes left in a finished run's group: SIGTERM, then SIGKILL
KILL_WAIT = 5.0  # how long to wait for SIGKILLed processes to disappear
POLL_INTERVAL = 0.02

_PROC = Path("/proc")
_LINUX = sys.platform.startswith("linux")
_BOOT_ID: str | None = None


@dataclass(frozen=True)
class ExecRequest:
    """What to start: argv, working directory, full environment, and the file that takes its output."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    log_path: Path
    extra: Mapping[str, str] = field(default_factory=dict)


def spawn(request: ExecRequest) -> subprocess.Popen[bytes]:
    """Start the workload in a session of its own, stdout and stderr appended to its log file.

    The output goes straight to the file (not through us), so nothing is lost if mlproj dies.
    """
    import subprocess

    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    with request.log_path.open("ab") as log:
        return subprocess.Popen(
            list(request.argv),
            cwd=request.cwd,
            env=dict(request.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


class Waiter:
    """Waits for a child to exit, waking the moment it does (a pidfd on Linux), or after `timeout`.

    `Popen.wait(timeout)` polls with growing sleeps and notices an exit up to tens of milliseconds late.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._fd: int | None = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self._fd = pidfd_open(proc.pid)
            except OSError:
                self._fd = None

    def wait(self, timeout: float) -> int | None:
        """The return code, or None if the child is still running after `timeout` seconds."""
        if self._fd is None:
            import subprocess

            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        import select

        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
        except InterruptedError:  # a signal: let the caller look at its flags
            ready = []
        return self.proc.wait() if ready else self.proc.poll()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_DETACHED: list[subprocess.Popen[bytes]] = []


def spawn_detached(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a background program (a run supervisor) that outlives us: own session, no terminal.

    We keep a reference and reap it when it has exited, so that a long-lived caller (the Python API)
    collects no zombies and no warnings about children dropped while running.
    """
    import subprocess

    _DETACHED[:] = [proc for proc in _DETACHED if proc.poll() is None]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    _DETACHED.append(proc)
    return proc


def run_quiet(argv: Sequence[str], cwd: Path | None = None, timeout: float | None = None) -> str | None:
    """Run a short helper command (such as git); its stdout, or None when it fails."""
    import subprocess

    try:
        done = subprocess.run(
            list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


# --- identities ------------------------------------------------------------------------------------


def identity(pid: int) -> str | None:
    """`boot:start` for a live (non-zombie) process, or None when there is no such process."""
    if _LINUX:
        try:
            stat = (_PROC / str(pid) / "stat").read_bytes()
        except OSError:
            return None
        # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
        rest = stat[stat.rfind(b")") + 2 :].split()
        if rest[0] in (b"Z", b"X"):
            return None
        return f"{_boot_id()}:{rest[19].decode()}"
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{proc.create_time():.6f}"
    except psutil.Error:
        return None


def is_alive(pid: int | None, expected_identity: str | None) -> bool:
    """True when `pid` still runs the very process recorded as `expected_identity`."""
    if pid is None or expected_identity is None:
        return False
    return identity(pid) == expected_identity


def _boot_id() -> str:
    global _BOOT_ID  # noqa: PLW0603 - read once per process
    if _BOOT_ID is None:
        try:
            _BOOT_ID = (_PROC / "sys/kernel/random/boot_id").read_text().strip()[:8]
        except OSError:
            _BOOT_ID = "boot"
    return _BOOT_ID


def become_subreaper() -> None:
    """Adopt orphaned descendants (Linux), so a run's tree stays below its supervisor."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_child_subreaper = 36
        libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0)
    except (OSError, AttributeError):
        return


def reap_adopted(main_pid: int | None = None) -> None:
    """Collect exited adopted children (never the workload's main process: Popen waits for that one)."""
    import psutil

    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for child in children:
        if child.pid == main_pid:
            continue
        try:
            os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            continue


# --- finding and ending a run's processes ------------------------------------------------------------


def find_run_processes(run_id: str, pgid: int | None, root_pid: int | None = None) -> list[psutil.Process]:
    """Live processes that belong to the run (see the module docstring), never ourselves or our parents."""
    pids = _scan_proc(run_id, pgid, root_pid) if _LINUX else _scan_psutil(run_id, pgid, root_pid)
    if not pids:
        return []  # the common case, answered without importing psutil
    import psutil

    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return [proc for proc in found if _running(proc)]


def _scan_proc(run_id: str, pgid: int | None, root_pid: int | None) -> set[int]:
    """Linux: one pass over /proc for group members, descendants and environment markers."""
    marker = f"{RUN_ID_VARIABLE}={run_id}".encode()
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (_PROC / entry.name / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):
            continue
        parents[pid] = int(fields[1])
        if (pgid is not None and int(fields[2]) == pgid) or _environ_has(pid, marker):
            found.add(pid)
    if root_pid is not None and root_pid in parents:
        found.add(root_pid)
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        stack = [root_pid]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in found:
                    found.add(child)
                    stack.append(child)
    spared, pid = set(), os.getpid()
    while pid > 0 and pid not in spared:
        spared.add(pid)
        pid = parents.get(pid, 0)
    return found - spared


def _environ_has(pid: int, marker: bytes) -> bool:
    try:
        data = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return marker in data.split(b"\0")


def _scan_psutil(run_id: str, pgid: int | None, root_pid: int | None) -> set[int]:
    """Elsewhere: the same search through psutil."""
    import psutil

    spared = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        spared.update(p.pid for p in psutil.Process().parents())
    found: set[int] = set()
    for proc in psutil.process_iter():
        try:
            group = os.getpgid(proc.pid)
            marked = proc.environ().get(RUN_ID_VARIABLE) == run_id
        except (OSError, psutil.Error):
            continue
        if (pgid is not None and group == pgid) or marked:
            found.add(proc.pid)
    if root_pid is not None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(root_pid)
            found.update(p.pid for p in [root, *root.children(recursive=True)])
    return found - spared


def _running(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def signal_all(procs: Iterable[psutil.Process], sig: int) -> None:
    """Send `sig` to each process that is still the one we found (psutil checks for PID reuse)."""
    import psutil

    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            continue


def wait_gone(
    procs: Sequence[psutil.Process], timeout: float, tick: Callable[[], None] | None = None
) -> list[psutil.Process]:
    """Wait until every process has exited (zombies count as gone); return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        if tick is not None:
            tick()
        time.sleep(POLL_INTERVAL)
        alive = [p for p in alive if _running(p)]
    return alive


def end_processes(
    procs: Sequence[psutil.Process],
    grace: float,
    first_signal: int = signal.SIGTERM,
    tick: Callable[[], None] | None = None,
) -> None:
    """`first_signal`, then SIGKILL to whatever is left after `grace` seconds."""
    if not procs:
        return
    signal_all(procs, first_signal)
    left = wait_gone(procs, grace, tick)
    if left:
        signal_all(left, signal.SIGKILL)
        wait_gone(left, KILL_WAIT, tick)


def end_run_processes(run_id: str, pgid: int | None, grace: float, root_pid: int | None = None) -> int:
    """End every process of a run: SIGTERM, then SIGKILL after `grace`. Returns how many were found."""
    procs = find_run_processes(run_id, pgid, root_pid)
    end_processes(procs, grace)
    # Processes started while we were signalling (a fork racing with us) get a last sweep.
    late = find_run_processes(run_id, pgid, root_pid)
    end_processes(late, 0.0, signal.SIGKILL)
    return len(procs) + len(late)


def exit_status(returncode: int) -> int:
    """A Popen return code as a shell reports it: 128 + N for a process ended by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the command was ended by {name}"
    return f"the command exited with code {returncode}"
