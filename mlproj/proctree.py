"""A run's processes: which they are, how to signal them, whether any is left.

Two mechanisms, the way Slurm and systemd track jobs; `mechanism()` says which this machine gives:

- **cgroup**: Linux, with a cgroup v2 tree this user may write (root, or a delegated subtree). Each run
  gets a cgroup of its own, `<this process's cgroup>/mlproj/<run id>`, and its workload starts inside it
  (`process.spawn`). Everything the workload ever starts stays in it, whatever it does (`setsid`, double
  forks, `env -i`): only root can move a process out. A run whose supervisor was killed is ended from its
  cgroup, and the last rung of a stop kills the whole cgroup at once (`cgroup.kill`).
- **tree**: elsewhere. The supervisor is a child subreaper (orphans are re-parented to it, not to init),
  and a run's processes are its workload's process group while the group's leader (identity-checked)
  lives, the leader's descendants, the supervisor's own descendants when the caller is the supervisor,
  and every process whose environment holds `MLPROJ_RUN_ID=<run id>`. A process that leaves the group
  and drops the variable (`env -i setsid …`) is found while the supervisor lives, as its descendant; once
  the supervisor is killed, it is not.

`MLPROJ_PROCESS_TRACKING=tree` forces the second. Whichever found them, processes are signalled only
through `process.signal_process` (identity checked), and never ourselves or our ancestors.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from mlproj.process import _LINUX, RUN_ID_VARIABLE, Proc, identity, signal_process
from mlproj.structs import dataclass

TRACKING_VARIABLE = "MLPROJ_PROCESS_TRACKING"  # auto (the default), cgroup or tree
_PROC = Path("/proc")


# --- cgroups -------------------------------------------------------------------------------------------


@functools.cache
def cgroup_base() -> Path | None:
    """The folder under which runs' cgroups are made, or None when this machine gives us none: the
    cgroup v2 tree is not mounted, or this process may not write its own part of it."""
    if not _LINUX or os.environ.get(TRACKING_VARIABLE, "auto") == "tree":
        return None
    try:
        own = next(
            line[3:] for line in (_PROC / "self/cgroup").read_text().splitlines() if line.startswith("0::")
        )
        mounts = (_PROC / "self/mountinfo").read_text().splitlines()
    except (OSError, StopIteration):
        return None
    for line in mounts:
        fields = line.split()
        if fields[fields.index("-") + 1] != "cgroup2":
            continue
        root, mount_point = fields[3], fields[4]
        relative = own.removeprefix(root) if root != "/" else own
        base = Path(mount_point) / relative.lstrip("/") / "mlproj"
        try:
            base.mkdir(exist_ok=True)
        except OSError:
            return None
        if os.access(base, os.W_OK):
            return base
    return None


def mechanism() -> str:
    """`cgroup` or `tree` (see the module docstring)."""
    return "cgroup" if cgroup_base() is not None else "tree"


def make_cgroup(run_id: str) -> Path | None:
    """A new cgroup for the run, or None when cgroups are not ours to make here."""
    base = cgroup_base()
    if base is None:
        return None
    path = base / run_id
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return None
    return path


def join_cgroup(cgroup: Path, pid: int) -> bool:
    """Move `pid` into `cgroup` (the process moves itself too, before it runs anything: see
    process.spawn; this covers the case where it could not). True when it is in."""
    try:
        (cgroup / "cgroup.procs").write_text(f"{pid}\n")
    except OSError:
        return False
    return True


def remove_cgroup(cgroup: Path | None) -> None:
    """Remove a run's cgroup (and any it holds) once it is empty; left in place while it is not."""
    if cgroup is None:
        return
    for folder in sorted(_cgroup_folders(cgroup), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _cgroup_folders(cgroup: Path) -> Iterator[Path]:
    if not cgroup.is_dir():
        return
    yield cgroup
    for below in cgroup.iterdir():
        if below.is_dir():
            yield from _cgroup_folders(below)


def _cgroup_pids(cgroup: Path) -> list[int]:
    pids: list[int] = []
    for folder in _cgroup_folders(cgroup):
        with contextlib.suppress(OSError):
            pids += [int(text) for text in (folder / "cgroup.procs").read_text().split()]
    return pids


def _populated(cgroup: Path) -> bool:
    try:
        events = (cgroup / "cgroup.events").read_text()
    except OSError:
        return False
    return "populated 1" in events


# --- a run's processes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunProcesses:
    """How to find one run's processes: its cgroup when it has one; else its workload's main process
    (`leader`, whose process group and descendants are the run's), the supervisor's own descendants
    (`supervisor`, when the caller supervises the run) and the run's environment marker."""

    run_id: str
    cgroup: Path | None = None
    leader: Proc | None = None
    held: bool = False  # the caller holds the leader (its Popen, not yet reaped): its PID cannot be reused
    supervisor: int | None = None

    def group(self) -> int | None:
        """The leader's process group, when it is surely the run's: the leader is held by the caller,
        or still runs the recorded process (otherwise its PID may be another program's by now)."""
        leader = self.leader
        if leader is None or not (self.held or identity(leader.pid) == leader.identity):
            return None
        return leader.pid

    def members(self) -> list[Proc]:
        """The run's live processes, never ourselves or our ancestors."""
        if self.cgroup is not None and self.cgroup.is_dir():
            spared = _ancestry()
            found = [Proc(pid, ident) for pid in _cgroup_pids(self.cgroup) if (ident := identity(pid))]
            return [proc for proc in found if proc.pid not in spared]
        return _scan(self)

    def alive(self) -> bool:
        if self.cgroup is not None and self.cgroup.is_dir():
            return _populated(self.cgroup) and bool(self.members())
        return bool(_scan(self))

    def signal(self, sig: int) -> int:
        """Send `sig` to each of the run's processes (the last rung, SIGKILL, kills a cgroup at once).
        Returns how many were signalled."""
        if sig == signal.SIGKILL and self.cgroup is not None and _kill_cgroup(self.cgroup):
            return 1
        return sum(signal_process(proc, sig) for proc in self.members())


def _kill_cgroup(cgroup: Path) -> bool:
    """SIGKILL to everything in the cgroup, atomically (Linux 5.14+: cgroup.kill). Never ourselves."""
    if not (cgroup / "cgroup.kill").exists() or os.getpid() in _cgroup_pids(cgroup):
        return False
    try:
        (cgroup / "cgroup.kill").write_text("1\n")
    except OSError:
        return False
    return True


@functools.cache
def _ancestry() -> frozenset[int]:
    """This process and its ancestors: never signalled."""
    spared: set[int] = set()
    pid = os.getpid()
    while pid > 0 and pid not in spared:
        spared.add(pid)
        try:
            stat = (_PROC / str(pid) / "stat").read_bytes()
        except OSError:
            break
        pid = int(stat[stat.rfind(b")") + 2 :].split()[1])
    return frozenset(spared)


def _scan(target: RunProcesses) -> list[Proc]:
    """The tree mechanism: one pass over /proc (psutil elsewhere) for the group of a live leader, the
    descendants of the leader and of the supervisor, and the environment marker."""
    if not _LINUX:
        return _scan_psutil(target)
    group = target.group()
    marker = f"{RUN_ID_VARIABLE}={target.run_id}".encode()
    parents: dict[int, int] = {}
    found: dict[int, str] = {}
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
        if (group is not None and int(fields[2]) == group) or _environ_has(pid, marker):
            found[pid] = ""
    roots = [pid for pid in (group, target.supervisor) if pid is not None and pid in parents]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    for root in roots:
        stack = [root]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in found:
                    found[child] = ""
                    stack.append(child)
        if root == group:
            found[root] = ""
    spared = _ancestry()
    return [Proc(pid, ident) for pid in found if pid not in spared and (ident := identity(pid))]


def _environ_has(pid: int, marker: bytes) -> bool:
    try:
        data = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return marker in data.split(b"\0")


def _scan_psutil(target: RunProcesses) -> list[Proc]:  # pragma: no cover - not Linux
    import psutil

    group = target.group()
    found: set[int] = set()
    for proc in psutil.process_iter():
        try:
            in_group = group is not None and os.getpgid(proc.pid) == group
            if in_group or proc.environ().get(RUN_ID_VARIABLE) == target.run_id:
                found.add(proc.pid)
        except (OSError, psutil.Error):
            continue
    for root in (group, target.supervisor):
        if root is None:
            continue
        with contextlib.suppress(psutil.Error):
            found.update(p.pid for p in psutil.Process(root).children(recursive=True))
            if root == group:
                found.add(root)
    spared = _ancestry()
    return [Proc(pid, ident) for pid in found if pid not in spared and (ident := identity(pid))]
