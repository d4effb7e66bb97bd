"""Environment builds: `mlproj run --env-manager uv|virtualenv`, warm and cold, against
`--env-manager local`, against the same build done by hand, and against `mlflow run`.

Usage: python bench/env_builds.py [--rounds N]   (default 7, at least 5)
"""

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

from common import (
    ORDER,
    WORK,
    bin_path,
    child_env,
    ensure_mlflow_venv,
    ensure_mlproj_venv,
    measure_grouped,
    measure_timed,
    median,
    ms,
    package_version,
    run_once,
    write_section,
)

TITLE = "env_builds: uv and virtualenv environments, warm and cold"
BASE = WORK / "env-builds"
DEPENDENCIES = ["six", "idna"]
MLPROJECT = """name: env-builds
python_env: python_env.yaml
entry_points:
  main:
    command: "python -c pass"
"""

Step = tuple[Sequence[str], Mapping[str, str]]


def write_project(folder: Path, python: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLproject").write_text(MLPROJECT)
    deps = "".join(f"  - {name}\n" for name in DEPENDENCIES)
    (folder / "python_env.yaml").write_text(f'python: "{python}"\ndependencies:\n{deps}')
    return folder


def timed(*steps: Step, before: Callable[[], object] | None = None) -> Callable[[], float]:
    """A measurement: `before` (not timed), then the steps one after the other (timed together)."""

    def call() -> float:
        if before is not None:
            before()
        settle()
        return sum(run_once(argv, env, BASE) for argv, env in steps)

    return call


def settle() -> None:
    """Untimed, before each measurement: what earlier builds wrote reaches the disk now, so that their
    write-back does not slow down the build measured next (builds write tens of megabytes)."""
    os.sync()


def removing(folder: Path) -> Callable[[], None]:
    return partial(shutil.rmtree, folder, ignore_errors=True)


def mlflow_failure(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """None when the command works, else the lines of its output that say why it failed."""
    done = subprocess.run(argv, env=env, cwd=BASE, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    telling = re.compile(r"Installing python|Downloading|error:|curl:|Command:|Exception:")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if telling.search(line)]
    return "\n".join(line for line in dict.fromkeys(lines) if not line.startswith(" ")) or "no output"


def preparation_times(mlproj: str, env: Mapping[str, str], manager: str, limit: int = 1000) -> list[float]:
    """From record to workload start, for each run that built a `manager` environment, newest first."""
    out = subprocess.run(
        [mlproj, "runs", "--json", "--limit", str(limit)], env=env, check=True, capture_output=True, text=True
    ).stdout

    def stamp(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    return [
        stamp(r["started_at"]) - stamp(r["created_at"])
        for r in json.loads(out)
        if r["env_manager"] == manager and r["env_reused"] is False and r["started_at"]
    ]


def main() -> None:  # noqa: PLR0915 - one linear script: set up, measure, report
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    rounds = max(5, parser.parse_args().rounds)

    mlproj_venv, mlflow_venv = ensure_mlproj_venv(), ensure_mlflow_venv()
    for name in ("mlproj-home", "mlflow", "by-hand", "tmp"):
        shutil.rmtree(BASE / name, ignore_errors=True)
    (BASE / "tmp").mkdir(parents=True)
    version = platform.python_version()  # the venvs' Python is the one running this script
    minor = ".".join(version.split(".")[:2])
    project = write_project(BASE / "project", minor)
    pinned = write_project(BASE / "project-pinned", version)
    requirements = BASE / "requirements.txt"
    requirements.write_text("\n".join(DEPENDENCIES) + "\n")

    interp = str(bin_path(mlproj_venv, "python"))  # what mlproj builds from: its own interpreter
    uv = subprocess.run(
        [interp, "-c", "import uv; print(uv.find_uv_bin())"], check=True, capture_output=True, text=True
    ).stdout.strip()
    uv_bin = BASE / "uv-bin"  # MLflow calls `uv` from PATH: the same binary mlproj uses
    uv_bin.mkdir(exist_ok=True)
    (uv_bin / "uv").unlink(missing_ok=True)
    (uv_bin / "uv").symlink_to(uv)

    # Every side shares these caches (warm after the warm-up round) and settings, and writes nothing
    # outside bench/.work.
    cache = BASE / "cache"
    # The packages come from a folder of wheels downloaded once, with every index off, for every
    # side: what is timed is the tools and mlproj, not the network (PyPI's answers vary by tenths
    # of a second from one request to the next).
    wheels = BASE / "wheels"
    if not all(any(wheels.glob(f"{name}-*.whl")) for name in DEPENDENCIES):
        subprocess.run(
            [interp, "-m", "pip", "download", "-q", "-d", str(wheels), *DEPENDENCIES],
            check=True,
            stdout=sys.stderr,
            env=child_env(),
        )
    shared = {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "UV_NO_CONFIG": "1",
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheels),
        "UV_CACHE_DIR": str(cache / "uv"),
        "PIP_CACHE_DIR": str(cache / "pip"),
        "VIRTUALENV_OVERRIDE_APP_DATA": str(cache / "virtualenv"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
        "TMPDIR": str(BASE / "tmp"),
    }
    home = BASE / "mlproj-home"
    mlproj_env = child_env(mlproj_venv, MLPROJ_HOME=str(home), **shared)
    mlproj = str(bin_path(mlproj_venv, "mlproj"))
    prune = partial(
        subprocess.run, [mlproj, "envs", "prune"], env=mlproj_env, check=True, capture_output=True
    )
    mlflow = str(bin_path(mlflow_venv, "mlflow"))
    mlflow_envs = {m: BASE / "mlflow" / "envs" / m for m in ("uv", "virtualenv")}
    mlflow_env = {
        m: child_env(
            mlflow_venv,
            MLFLOW_TRACKING_URI=f"sqlite:///{BASE / 'mlflow' / 'mlflow.db'}",
            MLFLOW_ENV_ROOT=str(root),
            **shared,
        )
        for m, root in mlflow_envs.items()
    }
    for env in mlflow_env.values():
        env["PATH"] = f"{uv_bin}{os.pathsep}{env['PATH']}"

    def run(manager: str, *extra: str) -> Step:
        return [mlproj, "run", str(project), "--env-manager", manager, *extra], mlproj_env

    def mlflow_run(manager: str, folder: Path) -> Step:
        return [mlflow, "run", str(folder), "--env-manager", manager], mlflow_env[manager]

    # MLflow's virtualenv manager asks pyenv for the newest release matching "3.11" and installs it.
    problem = mlflow_failure(*mlflow_run("virtualenv", project))
    removing(mlflow_envs["virtualenv"])()
    mlflow_venv_project = pinned if problem else project

    hand_builds: dict[str, list[float]] = {"uv": [], "virtualenv": []}

    def by_hand(manager: str) -> Callable[[], float]:
        """Create + install + `python -c pass`; the create + install part is also kept on its own.

        Each build goes to a folder never used before, as a cold build's does (mlproj builds each
        environment in a new folder): uv keeps what it learnt of an interpreter by its path, so
        rebuilding at the same path would let it skip querying the new environment's interpreter."""

        def call() -> float:
            removing(BASE / "by-hand")()
            settle()
            folder = BASE / "by-hand" / f"{manager}-{secrets.token_hex(6)}"  # never used, in any run
            python = str(folder / "bin" / "python")
            if manager == "uv":
                create = [uv, "venv", str(folder), "--python", interp]
                install = [uv, "pip", "install", "--python", python, "-r", str(requirements)]
            else:
                create = [interp, "-m", "virtualenv", str(folder), "--python", interp]
                install = [python, "-m", "pip", "install", "-r", str(requirements)]
            build = run_once(create, mlproj_env, BASE) + run_once(install, mlproj_env, BASE)
            hand_builds[manager].append(build)
            return build + run_once([python, "-c", "pass"], mlproj_env, BASE)

        return call

    mlproj_builds: dict[str, list[float]] = {"uv": [], "virtualenv": []}

    def cold_mlproj(manager: str) -> Callable[[], float]:
        """A cold mlproj run; its build (the run's record to its workload's start) is kept on its own."""
        measure = timed(run(manager, "--rebuild-env"), before=prune)

        def call() -> float:
            seconds = measure()
            mlproj_builds[manager].append(preparation_times(mlproj, mlproj_env, manager, limit=1)[0])
            return seconds

        return call

    cold = measure_grouped(
        {
            "uv": {"mlproj uv --rebuild-env": cold_mlproj("uv"), "uv by hand": by_hand("uv")},
            "virtualenv": {
                "mlproj virtualenv --rebuild-env": cold_mlproj("virtualenv"),
                "virtualenv by hand": by_hand("virtualenv"),
            },
            "mlflow uv": {
                "mlflow uv (cold)": timed(mlflow_run("uv", project), before=removing(mlflow_envs["uv"]))
            },
            "mlflow virtualenv": {
                "mlflow virtualenv (cold)": timed(
                    mlflow_run("virtualenv", mlflow_venv_project), before=removing(mlflow_envs["virtualenv"])
                )
            },
        },
        rounds,
    )
    # Each round's mlproj build against the by-hand build of the same round (they ran back to back).
    pair_ratios = {
        m: median([a / b for a, b in zip(mlproj_builds[m], hand_builds[m], strict=True)])
        for m in ("uv", "virtualenv")
    }
    prep = {m: median(values) for m, values in mlproj_builds.items()}
    hand = {m: median(values) for m, values in hand_builds.items()}

    warm = measure_timed(
        {
            "mlproj local": timed(run("local")),
            "mlproj uv (warm)": timed(run("uv")),
            "mlproj virtualenv (warm)": timed(run("virtualenv")),
            "mlflow uv (warm)": timed(mlflow_run("uv", project)),
            "mlflow virtualenv (warm)": timed(mlflow_run("virtualenv", mlflow_venv_project)),
            "python -c pass (floor)": timed(([interp, "-c", "pass"], mlproj_env)),
        },
        rounds,
    )
    prune()
    for name in ("mlflow", "by-hand", "tmp"):
        shutil.rmtree(BASE / name, ignore_errors=True)

    times = {**cold, **warm}
    med = {name: median(values) for name, values in times.items()}

    def verdict(value: float, target: float) -> str:
        return f"**{value:.2f}x** ({'met' if value <= target else 'NOT met'})"

    def ratio(slow: str, fast: str, target: float, *, above: bool) -> str:
        value = med[slow] / med[fast]
        met = value >= target if above else value <= target
        return f"**{value:.2f}x** ({'met' if met else 'NOT met'})"

    def over_local(name: str) -> str:
        diff = med[name] - med["mlproj local"]
        return f"**{diff * 1000:+.0f} ms** ({'met' if diff <= 0.05 else 'NOT met'})"

    rows = [f"| `{name}` | {ms(med[name])} | {ms(min(v))} | {ms(max(v))} |" for name, v in times.items()]
    why = (
        [
            f"MLflow's virtualenv manager cannot build the project as written (`python: "
            f'"{minor}"`): it resolves the version to the newest release pyenv knows and '
            "installs it, which needs python.org (unreachable here):",
            "",
            "```",
            problem,
            "```",
            "",
            f'So both `mlflow virtualenv` rows use a copy of the project pinned to `python: "{version}"`, '
            "the installed version, which pyenv skips installing. For mlproj the pin changes nothing (the "
            "interpreter running mlproj matches either way), so its rows use the unpinned project.",
        ]
        if problem
        else []
    )
    body = "\n".join(
        [
            f"Project: `main` is `python -c pass`; `python_env.yaml` asks for Python "
            f'"{minor}" and {", ".join(f"`{d}`" for d in DEPENDENCIES)}. '
            f"uv {package_version(mlproj_venv, 'uv')} (the binary of mlproj's `uv` package, for every "
            f"side, MLflow included), virtualenv {package_version(mlproj_venv, 'virtualenv')}. "
            f"{rounds} rounds after one warm-up each, commands {ORDER}: cold builds in one series (each "
            "mlproj build right before or after the same build by hand, in a shuffled order), warm runs "
            "in another.",
            "",
            "Cold means the environment does not exist: before each timed command (untimed) mlproj's "
            "cache is emptied with `mlproj envs prune`, the by-hand folder removed, or MLflow's "
            "`MLFLOW_ENV_ROOT` (one per manager, in bench/.work) removed. **No network, caches shared "
            "and warm**: every side installs from the same folder of wheels (downloaded once beforehand; "
            "`PIP_NO_INDEX`/`PIP_FIND_LINKS`, `UV_NO_INDEX`/`UV_FIND_LINKS`, machine configuration "
            "ignored) and uses the same `UV_CACHE_DIR`, `PIP_CACHE_DIR` and virtualenv app data in "
            "bench/.work, filled by the warm-up round, so what is timed is the tools and mlproj, not "
            "the network (PyPI's answers vary by tenths of a second). Before each timed command, "
            "`sync` (untimed) writes out what earlier builds left in memory, so that it does not slow "
            "the next one down. The pip version check "
            "and virtualenv's periodic update are off for every side. By hand: `uv venv DIR --python "
            "PY` + `uv pip install --python DIR/bin/python -r requirements.txt` + `DIR/bin/python -c "
            "pass`, and `PY -m virtualenv DIR --python PY` + `DIR/bin/python -m pip install -r "
            "requirements.txt` + `DIR/bin/python -c pass`, PY being the interpreter mlproj builds from "
            "(its venv's), DIR a folder never used before in each round, as mlproj's builds are (uv "
            "remembers an interpreter by its path: rebuilding at the same path lets it skip querying the "
            "new environment's interpreter, about 45 ms here, which no first build can skip).",
            *([""] if why else []),
            *why,
            "",
            "| command | median | min | max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- warm uv minus local: {over_local('mlproj uv (warm)')}; warm virtualenv minus local: "
            f"{over_local('mlproj virtualenv (warm)')} (target: at most +50 ms)",
            "- cold build, mlproj / by hand (target: at most 1.2x): mlproj's build is the run's "
            "record to its workload's start (it includes finding the interpreter, the lock, publishing "
            "the environment and starting the workload), by hand the create and install commands "
            "alone; the two ran back to back in each round, and the figure is the median of the rounds' "
            f"ratios: uv {verdict(pair_ratios['uv'], 1.2)} (medians {ms(prep['uv'])} and "
            f"{ms(hand['uv'])}), virtualenv {verdict(pair_ratios['virtualenv'], 1.2)} (medians "
            f"{ms(prep['virtualenv'])} and {ms(hand['virtualenv'])})",
            "- whole cold run, mlproj / by hand (build + `python -c pass`), for context: uv "
            f"**{med['mlproj uv --rebuild-env'] / med['uv by hand']:.2f}x**, virtualenv "
            f"**{med['mlproj virtualenv --rebuild-env'] / med['virtualenv by hand']:.2f}x**; the "
            "difference beyond the build is mlproj starting, recording and ending a run, the same as in "
            f"a local run ({ms(med['mlproj local'] - med['python -c pass (floor)'])} over the floor)",
            f"- mlflow / mlproj (target: above 1x): uv cold "
            f"{ratio('mlflow uv (cold)', 'mlproj uv --rebuild-env', 1, above=True)}, virtualenv cold "
            f"{ratio('mlflow virtualenv (cold)', 'mlproj virtualenv --rebuild-env', 1, above=True)}, uv warm "
            f"{ratio('mlflow uv (warm)', 'mlproj uv (warm)', 1, above=True)}, virtualenv warm "
            f"{ratio('mlflow virtualenv (warm)', 'mlproj virtualenv (warm)', 1, above=True)}",
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
