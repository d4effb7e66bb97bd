"""Environment builds: `mlproj run --env-manager uv|virtualenv`, warm and cold, against
`--env-manager local`, against the same build done by hand, and against `mlflow run`.

Usage: python bench/env_builds.py [--rounds N]   (default 7, at least 5)
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

from common import (
    WORK,
    bin_path,
    child_env,
    ensure_mlflow_venv,
    ensure_mlproj_venv,
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
        return sum(run_once(argv, env, BASE) for argv, env in steps)

    return call


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


def preparation_times(mlproj: str, env: Mapping[str, str], manager: str) -> list[float]:
    """From record to workload start, for each run that built a `manager` environment."""
    out = subprocess.run(
        [mlproj, "runs", "--json", "--limit", "1000"], env=env, check=True, capture_output=True, text=True
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
    shared = {
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
        """Create + install + `python -c pass`; the create + install part is also kept on its own."""
        folder = BASE / "by-hand" / manager
        python = str(folder / "bin" / "python")
        if manager == "uv":
            create = [uv, "venv", str(folder), "--python", interp]
            install = [uv, "pip", "install", "--python", python, "-r", str(requirements)]
        else:
            create = [interp, "-m", "virtualenv", str(folder), "--python", interp]
            install = [python, "-m", "pip", "install", "-r", str(requirements)]

        def call() -> float:
            removing(folder)()
            build = run_once(create, mlproj_env, BASE) + run_once(install, mlproj_env, BASE)
            hand_builds[manager].append(build)
            return build + run_once([python, "-c", "pass"], mlproj_env, BASE)

        return call

    cold = measure_timed(
        {
            "mlproj uv --rebuild-env": timed(run("uv", "--rebuild-env"), before=prune),
            "uv by hand": by_hand("uv"),
            "mlproj virtualenv --rebuild-env": timed(run("virtualenv", "--rebuild-env"), before=prune),
            "virtualenv by hand": by_hand("virtualenv"),
            "mlflow uv (cold)": timed(mlflow_run("uv", project), before=removing(mlflow_envs["uv"])),
            "mlflow virtualenv (cold)": timed(
                mlflow_run("virtualenv", mlflow_venv_project), before=removing(mlflow_envs["virtualenv"])
            ),
        },
        rounds,
    )
    prep = {m: median(preparation_times(mlproj, mlproj_env, m)) for m in ("uv", "virtualenv")}
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

    def ratio(slow: str, fast: str, target: float, above: bool) -> str:
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
            f"{rounds} rounds after one warm-up each, commands in an order rotating from round to round: "
            "cold builds in one series, warm runs in another.",
            "",
            "Cold means the environment does not exist: before each timed command (untimed) mlproj's "
            "cache is emptied with `mlproj envs prune`, the by-hand folder removed, or MLflow's "
            "`MLFLOW_ENV_ROOT` (one per manager, in bench/.work) removed. **Package caches are shared "
            "and warm**: every side uses the same `UV_CACHE_DIR`, `PIP_CACHE_DIR` and virtualenv app "
            "data in bench/.work, filled by the warm-up round, so what is timed is the tools and "
            "mlproj, not downloads (uv still asks the index for the versions). The pip version check "
            "and virtualenv's periodic update are off for every side. By hand: `uv venv DIR --python "
            "PY` + `uv pip install --python DIR/bin/python -r requirements.txt` + `DIR/bin/python -c "
            "pass`, and `PY -m virtualenv DIR --python PY` + `DIR/bin/python -m pip install -r "
            "requirements.txt` + `DIR/bin/python -c pass`, PY being the interpreter mlproj builds from "
            "(its venv's).",
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
            "record to its workload's start (median; it includes finding the interpreter, the lock, "
            "publishing the environment and starting the workload), by hand the create and install "
            f"commands alone: uv {ms(prep['uv'])} / {ms(hand['uv'])} = "
            f"{verdict(prep['uv'] / hand['uv'], 1.2)}, virtualenv {ms(prep['virtualenv'])} / "
            f"{ms(hand['virtualenv'])} = {verdict(prep['virtualenv'] / hand['virtualenv'], 1.2)}",
            "- whole cold run, mlproj / by hand (build + `python -c pass`), for context: uv "
            f"**{med['mlproj uv --rebuild-env'] / med['uv by hand']:.2f}x**, virtualenv "
            f"**{med['mlproj virtualenv --rebuild-env'] / med['virtualenv by hand']:.2f}x**; the "
            "difference beyond the build is mlproj starting, recording and ending a run, the same as in "
            f"a local run ({ms(med['mlproj local'] - med['python -c pass (floor)'])} over the floor)",
            f"- mlflow / mlproj (target: above 1x): uv cold "
            f"{ratio('mlflow uv (cold)', 'mlproj uv --rebuild-env', 1, True)}, virtualenv cold "
            f"{ratio('mlflow virtualenv (cold)', 'mlproj virtualenv --rebuild-env', 1, True)}, uv warm "
            f"{ratio('mlflow uv (warm)', 'mlproj uv (warm)', 1, True)}, virtualenv warm "
            f"{ratio('mlflow virtualenv (warm)', 'mlproj virtualenv (warm)', 1, True)}",
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
