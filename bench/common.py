"""What the benchmarks share: the virtualenvs, child environments, timing, and RESULTS.md.

Standard library only: this file runs under any Python 3.10+; the measured tools run from their own
virtualenvs under bench/.work/.
"""

from __future__ import annotations

import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
RESULTS = BENCH / "RESULTS.md"
MLPROJ_VENV = WORK / "mlproj-venv"
MLFLOW_VENV = WORK / "mlflow-venv"
MLFLOW_REQUIREMENT = "mlflow>=3,<4"
DVC_VENV = WORK / "dvc-venv"
DVC_REQUIREMENT = "dvc"
MLPROJ_RAY_VENV = WORK / "mlproj-ray-venv"
_READY = ".bench-ready"  # written into a venv once its installation has succeeded


def bin_path(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def child_env(venv: Path | None = None, **extra: str) -> dict[str, str]:
    """os.environ without PYTHONDONTWRITEBYTECODE (children use and write .pyc files as on a user's
    machine), with `venv`'s bin/ first on PATH and `extra` added."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for name in ("VIRTUAL_ENV", "MLPROJ_HOME", "MLPROJ_ENV_MANAGER", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    env.update(extra)
    return env


def _pip_install(venv: Path, *requirements: str) -> None:
    if not bin_path(venv, "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        _pip(venv, "install", "--upgrade", "pip")
    _pip(venv, "install", *requirements)


def _pip(venv: Path, *args: str) -> None:
    # Without PYTHONDONTWRITEBYTECODE, pip compiles every installed module to .pyc, as a normal
    # installation does. Its output goes to stderr: stdout carries only the markdown section.
    argv = [str(bin_path(venv, "python")), "-m", "pip", "--quiet", *args]
    subprocess.run(argv, check=True, env=child_env(), stdout=sys.stderr)


def ensure_mlproj_venv() -> Path:
    """bench/.work/mlproj-venv with mlproj installed (not editable) from this checkout, every time."""
    print(f"installing mlproj from {ROOT} into {MLPROJ_VENV}", file=sys.stderr)
    _pip_install(MLPROJ_VENV, str(ROOT))
    return MLPROJ_VENV


def ensure_mlproj_ray_venv(ray_version: str) -> Path:
    """bench/.work/mlproj-ray-venv: mlproj with its `ray` extra, Ray pinned to `ray_version` (the
    cluster's), installed once and reused while the pin is the same; mlproj itself is reinstalled (not
    editable, without its dependencies) from this checkout every time."""
    wanted = f"ray[default]=={ray_version}"
    marker = MLPROJ_RAY_VENV / _READY
    if marker.exists() and marker.read_text().strip() == wanted:
        print(f"reinstalling mlproj from {ROOT} into {MLPROJ_RAY_VENV}", file=sys.stderr)
        _pip(MLPROJ_RAY_VENV, "install", "--no-deps", "--force-reinstall", str(ROOT))
    else:
        print(f"installing mlproj[ray] and {wanted} into {MLPROJ_RAY_VENV} (once)", file=sys.stderr)
        shutil.rmtree(MLPROJ_RAY_VENV, ignore_errors=True)
        _pip_install(MLPROJ_RAY_VENV, f"{ROOT}[ray]", wanted)
        marker.write_text(wanted + "\n")
    return MLPROJ_RAY_VENV


def ensure_mlflow_venv() -> Path:
    """bench/.work/mlflow-venv with MLflow 3.x, installed once and reused."""
    return _install_once(MLFLOW_VENV, MLFLOW_REQUIREMENT)


def ensure_dvc_venv() -> Path:
    """bench/.work/dvc-venv with DVC, installed once and reused."""
    return _install_once(DVC_VENV, DVC_REQUIREMENT)


def _install_once(venv: Path, requirement: str) -> Path:
    """`venv` with `requirement` installed, unless an earlier installation there succeeded."""
    if not (venv / _READY).exists():
        print(f"installing {requirement} into {venv} (once)", file=sys.stderr)
        shutil.rmtree(venv, ignore_errors=True)
        _pip_install(venv, requirement)
        (venv / _READY).touch()
    return venv


def package_version(venv: Path, name: str) -> str:
    if not bin_path(venv, "python").exists():
        return "not installed"
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    done = subprocess.run(
        [str(bin_path(venv, "python")), "-c", code], check=False, capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else "not installed"


# --- timing --------------------------------------------------------------------------------------


# A rotating order would keep each command right after the same other one in every round, so that
# whatever one leaves warm (the page cache, a tool's cache) always helps the same next command.
SEED = 20261129
ORDER = "in an order shuffled anew each round (seeded), so that no command always runs after the same one"


def run_once(argv: Sequence[str], env: Mapping[str, str], cwd: Path = WORK) -> float:
    """Wall time of one command, in seconds; a failing command stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, check=False, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def measure(
    commands: Mapping[str, tuple[Sequence[str], Mapping[str, str]]], rounds: int
) -> dict[str, list[float]]:
    """One warm-up of each command, then `rounds` rounds in which every command runs once, in an order
    shuffled anew each round (see `ORDER`)."""
    return measure_timed({name: partial(run_once, *command) for name, command in commands.items()}, rounds)


def measure_timed(timed: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """`measure` for callables that do their own untimed preparation and return the seconds they timed."""
    names = list(timed)
    for name in names:
        timed[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    shuffler = random.Random(SEED)  # noqa: S311 - an order of commands, not a secret
    for i in range(rounds):
        order = names[:]
        shuffler.shuffle(order)
        for name in order:
            times[name].append(timed[name]())
        print(f"round {i + 1}/{rounds} done", file=sys.stderr)
    return times


def measure_grouped(
    groups: Mapping[str, Mapping[str, Callable[[], float]]], rounds: int
) -> dict[str, list[float]]:
    """`measure_timed` where the commands of a group always run one right after the other (in a
    shuffled order), so that whatever drifts during a benchmark (a throttled CPU, caches) touches the
    commands to be compared alike; the groups run in a shuffled order too."""
    everything = {name: call for group in groups.values() for name, call in group.items()}
    for call in everything.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in everything}
    shuffler = random.Random(SEED)  # noqa: S311 - an order of commands, not a secret
    for i in range(rounds):
        order = list(groups)
        shuffler.shuffle(order)
        for group in order:
            members = list(groups[group])
            shuffler.shuffle(members)
            for name in members:
                times[name].append(groups[group][name]())
        print(f"round {i + 1}/{rounds} done", file=sys.stderr)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# --- RESULTS.md ----------------------------------------------------------------------------------


def machine_lines() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    gib = int(mem.group(1)) / 1024**2 if mem else float("nan")
    return [
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} cores, "
        f"{gib:.1f} GiB memory",
        f"- Python {platform.python_version()} ({platform.python_implementation()}, {sys.platform})",
        f"- mlproj {package_version(MLPROJ_VENV, 'mlproj')}, MLflow {package_version(MLFLOW_VENV, 'mlflow')}",
    ]


def write_section(title: str, body: str) -> None:
    """Print the section and put it in RESULTS.md in place of the previous one with this title."""
    section = "\n".join([f"## {title}", "", *machine_lines(), "", body.strip(), ""])
    print(section)
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    heading = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if heading.search(text):
        text = heading.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")
