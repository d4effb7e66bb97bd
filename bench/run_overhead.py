"""`mlproj run` vs `mlflow run --env-manager local` on a trivial project, and the bare `python -c pass`.

Usage: python bench/run_overhead.py [--rounds N]   (default 9, at least 7)
"""

import argparse
import shutil
import subprocess

from common import (
    WORK,
    bin_path,
    child_env,
    ensure_mlflow_venv,
    ensure_mlproj_venv,
    measure,
    median,
    ms,
    write_section,
)

TITLE = "run_overhead: mlproj run vs mlflow run"
EXPERIMENT = "bench-overhead"
MLPROJECT = """name: trivial
entry_points:
  main:
    command: "python -c pass"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    rounds = max(7, parser.parse_args().rounds)

    mlproj_venv, mlflow_venv = ensure_mlproj_venv(), ensure_mlflow_venv()
    project = WORK / "trivial-project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "MLproject").write_text(MLPROJECT)
    mlproj_home = WORK / "overhead-mlproj-home"
    mlflow_store = WORK / "overhead-mlflow"
    for folder in (mlproj_home, mlflow_store):
        shutil.rmtree(folder, ignore_errors=True)
    mlflow_store.mkdir()

    # The workload's `python` is the tool's own venv interpreter (bin/ first on PATH), as when activated.
    mlproj_env = child_env(mlproj_venv, MLPROJ_HOME=str(mlproj_home))
    mlflow_env = child_env(mlflow_venv, MLFLOW_TRACKING_URI=f"sqlite:///{mlflow_store / 'mlflow.db'}")
    mlflow = str(bin_path(mlflow_venv, "mlflow"))
    subprocess.run(
        [mlflow, "experiments", "create", "-n", EXPERIMENT], env=mlflow_env, check=True, capture_output=True
    )
    mlproj_exe = str(bin_path(mlproj_venv, "mlproj"))
    commands = {
        "mlproj run": (
            [mlproj_exe, "run", str(project), "--env-manager", "local", "--experiment-name", EXPERIMENT],
            mlproj_env,
        ),
        "mlflow run": (
            [mlflow, "run", str(project), "--env-manager", "local", "--experiment-name", EXPERIMENT],
            mlflow_env,
        ),
        "python -c pass (floor)": ([str(bin_path(mlproj_venv, "python")), "-c", "pass"], mlproj_env),
    }
    times = measure(commands, rounds)

    med = {name: median(values) for name, values in times.items()}
    mlproj, mlflow_med, floor = med["mlproj run"], med["mlflow run"], med["python -c pass (floor)"]
    rows = [f"| `{name}` | {ms(med[name])} | {ms(min(v))} | {ms(max(v))} |" for name, v in times.items()]
    body = "\n".join(
        [
            f"Trivial project (`main`: `python -c pass`), env manager local; {rounds} rounds after one "
            "warm-up each, tools alternating within every round. MLflow tracks to a SQLite store in "
            "bench/.work.",
            "",
            "| command | median | min | max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- mlflow / mlproj: **{mlflow_med / mlproj:.1f}x** (target: at least 20x)",
            f"- mlproj minus floor: **{ms(mlproj - floor)}**; mlflow minus floor: {ms(mlflow_med - floor)}",
            f"- target met: {'yes' if mlproj * 20 <= mlflow_med else 'no'}",
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
