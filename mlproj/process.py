"""Every process mlproj starts goes through here, and every signal it sends (`signal_process`).

An *identity* is a PID together with its start time (and, on Linux, the boot it belongs to), so that a
PID the kernel has handed to another program since is never signalled as ours: `signal_process` opens
a pidfd, checks the identity, and signals through the pidfd, so the check and the signal cannot race
with the PID being reused. Which processes belong to a run is `mlproj.proctree`'s business.
"""

from __future__ import annotations

import os
import sys

from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence
    from pathlib import Path

RUN_ID_VARIABLE = "MLPROJ_RUN_ID"
# MLflow's credentials: a workload that logs needs them as much as mlproj. Never recorded with a run;
# carried from the environment by the backends that do not pass it whole (a container, a Ray job).
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
)
RUN_DIR_VARIABLE = "MLPROJ_RUN_DIR"  # the run's own folder, for outputs
# Named timeouts (seconds) for stopping process trees.
INTERRUPT_TIMEOUT = 3.0  # Ctrl-C: SIGINT first, then SIGTERM after this long
DEFAULT_GRACE = 10.0  # SIGTERM, then SIGKILL after this long (`cancel --grace`)
LEFTOVER_GRACE = 2.0  # processes left in a finished run's group: SIGTERM, then SIGKILL
KILL_WAIT = 5.0  # how long to wait for SIGKILLed processes to disappear
POLL_INTERVAL = 0.02
# Starts a program: in its folder ($0), inside its cgroup ($1, when there is one: the shell moves itself
# in, `$$` being its PID, which `exec` keeps), then becomes the program.
_START = 'CDPATH= cd -- "$0" || exit 127; [ -z "$1" ] || { echo $$ > "$1"; } 2>/dev/null; shift; exec "$@"'

_PROC = "/proc"
_LINUX = sys.platform.startswith("linux")
_BOOT_ID: str | None = None


@dataclass(frozen=True)
class ExecRequest:
    """What to start: argv, working directory, full environment, and the file that takes its output."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    log_path: Path
    cgroup: Path | None = None  # the run's cgroup, to start it in (see mlproj.proctree)
    # Started by a dedicated supervisor, a child subreaper: its descendants are the run's processes.
    adopts: bool = False


@dataclass(frozen=True)
class Proc:
    """A process as found: its PID and its identity then."""

    pid: int
    identity: str


def spawn(request: ExecRequest) -> Child:
    """Start the workload in a session of its own, stdout and stderr appended to its log file, and
    inside the request's cgroup (a folder of the cgroup v2 tree) when it has one.

    The output goes straight to the file (not through us), so nothing is lost if mlproj dies. A shell
    starts it (`_START`): it enters the folder, moves itself into the cgroup, then becomes the program
    (`exec` keeps its PID), so nothing the program starts is ever outside the cgroup. The program is
    looked up on the request's PATH here, so that a missing program or folder is an error raised here
    (FileNotFoundError, PermissionError), as `subprocess.Popen` raises it. `os.posix_spawn` starts the
    shell: importing subprocess costs more start-up time than the whole rest of this module.
    """
    env = dict(request.env)
    program = _resolve(request.argv[0], env)
    cwd = str(request.cwd)
    if not os.path.isdir(cwd):
        import errno

        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cwd)
    procs = str(request.cgroup / "cgroup.procs") if request.cgroup is not None else ""
    argv = ["/bin/sh", "-c", _START, cwd, procs, program, *request.argv[1:]]
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = os.open(request.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        posix_spawn = getattr(os, "posix_spawn", None)
        if posix_spawn is None:  # pragma: no cover - every platform mlproj runs on has it
            return _popen(argv, env, log)
        import signal

        pid = posix_spawn(
            "/bin/sh",
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 1),
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # Python ignores SIGPIPE; programs expect it
        )
    finally:
        os.close(log)
    return Child(pid)


def _resolve(program: str, env: Mapping[str, str]) -> str:
    """`program` as an absolute path: itself when it names a file, else the first on the env's PATH."""
    import errno

    if "/" in program:
        candidates = [program]
    else:
        path = env.get("PATH", os.defpath)
        candidates = [os.path.join(folder or ".", program) for folder in path.split(os.pathsep)]
    denied = None
    for candidate in candidates:
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return os.path.abspath(candidate)
            denied = candidate
    if denied is not None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), denied)
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _popen(argv: list[str], env: dict[str, str], log: int) -> Child:
    import subprocess

    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    return _PopenChild(proc)


class Child:
    """A process started by `spawn`: its PID, and `poll` and `wait` as `subprocess.Popen` has them
    (`wait` returns None when `timeout` passes, rather than raising)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already: as Popen has it
                self.returncode = 0
                return 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if timeout is None:
            while self.returncode is None:
                try:
                    _, status = os.waitpid(self.pid, 0)
                except ChildProcessError:
                    self.returncode = 0
                else:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        import time

        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return self.returncode


class _PopenChild(Child):
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(proc.pid)
        self._proc = proc

    def poll(self) -> int | None:
        self.returncode = self._proc.poll()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        import subprocess

        try:
            self.returncode = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode


class Waiter:
    """Waits for a child to exit, waking the moment it does (a pidfd on Linux), or after `timeout`.

    `Popen.wait(timeout)` polls with growing sleeps and notices an exit up to tens of milliseconds late.
    On Linux the exit status is read without reaping the child (`waitid(P_PIDFD, WNOWAIT)`): until
    `close`, its PID stays a zombie that no other process can be given, so its process group is still
    surely ours while what the child left behind is stopped.
    """

    def __init__(self, proc: Child) -> None:
        self.proc = proc
        self._fd: int | None = None
        self._code: int | None = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self._fd = pidfd_open(proc.pid)
            except OSError:
                self._fd = None
        _OWN.add(proc.pid)

    def wait(self, timeout: float) -> int | None:
        """The return code (negative for a signal, as Popen's), or None if the child is still running
        after `timeout` seconds."""
        if self._code is not None:
            return self._code
        if self._fd is None:
            self._code = self.proc.wait(timeout=timeout)
            return self._code
        import select

        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
        except InterruptedError:  # a signal: let the caller look at its flags
            ready = []
        if ready:
            self._code = self._peek()
        return self._code

    def _peek(self) -> int:
        try:
            info = os.waitid(os.P_PIDFD, self._fd, os.WEXITED | os.WNOWAIT)  # type: ignore[arg-type]
        except (AttributeError, OSError):  # no P_PIDFD (an older kernel): reap it
            return self._reap()
        if info is None:  # pragma: no cover - ready means exited
            return self._reap()
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def _reap(self) -> int:
        code = self.proc.wait()
        return 1 if code is None else code

    def close(self) -> None:
        """Reap the child (once it has exited) and release the pidfd."""
        if self._code is not None or self.proc.poll() is not None:
            self.proc.wait()
        _OWN.discard(self.proc.pid)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_OWN: set[int] = set()  # children started here and waited for by their Child (never reaped elsewhere)
_DETACHED: list[subprocess.Popen[bytes]] = []


def spawn_detached(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
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
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    _DETACHED.append(proc)
    return proc


def shell() -> str:
    """The shell that runs MLproject commands and pipeline command steps (bash, as MLflow uses; sh where
    there is no bash)."""
    return _which("bash") or "/bin/sh"


def _which(name: str) -> str | None:
    """`shutil.which` for a bare name on PATH (shutil imports bz2 and lzma: start-up)."""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


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
            stat = _read_bytes(f"{_PROC}/{pid}/stat")
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


def signal_process(proc: Proc, sig: int) -> bool:
    """Send `sig` to `proc` if, and only if, its PID still runs that very process (same start time and
    boot); never to ourselves. The one place mlproj signals a process. True when the signal was sent."""
    if proc.pid <= 1 or proc.pid == os.getpid():
        return False
    pidfd_open = getattr(os, "pidfd_open", None)
    import signal

    send = getattr(signal, "pidfd_send_signal", None)
    if pidfd_open is not None and send is not None:
        try:
            fd = pidfd_open(proc.pid)
        except ProcessLookupError:
            return False
        except OSError:
            fd = None  # no pidfds here (an old kernel): the check and the signal below
        if fd is not None:
            try:
                # The pidfd holds the process that had the PID when it was opened: if the identity read
                # now matches, that is the process the pidfd holds, and the signal cannot go elsewhere.
                if identity(proc.pid) != proc.identity:
                    return False
                send(fd, sig)
            except ProcessLookupError:
                return False
            finally:
                os.close(fd)
            return True
    if identity(proc.pid) != proc.identity:
        return False
    try:
        os.kill(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _boot_id() -> str:
    global _BOOT_ID  # noqa: PLW0603 - read once per process
    if _BOOT_ID is None:
        try:
            _BOOT_ID = _read_bytes(f"{_PROC}/sys/kernel/random/boot_id").decode().strip()[:8]
        except OSError:
            _BOOT_ID = "boot"
    return _BOOT_ID


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so a run's tree stays below its supervisor. True if done."""
    if not _LINUX:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_child_subreaper = 36
        return int(libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def reap_adopted() -> None:
    """Collect adopted children that have exited (zombies), never those we started ourselves (their
    Popen objects wait for them)."""
    if not _LINUX:
        return
    me = str(os.getpid()).encode()
    own = set(_OWN) | {proc.pid for proc in _DETACHED}
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            stat = _read_bytes(f"{_PROC}/{entry.name}/stat")
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] == b"Z" and fields[1] == me:
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
            except ChildProcessError:
                continue


def exit_status(returncode: int) -> int:
    """A Popen return code as a shell reports it: 128 + N for a process ended by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the command was ended by {name}"
    return f"the command exited with code {returncode}"


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
