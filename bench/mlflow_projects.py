"""MLflow projects run side by side by `mlflow run` and `mlproj run`: the same argv, the same exit code.

The projects: public repositories (MLflow's own example, and others, by Git URI; skipped, with the
reason, where this machine cannot reach them) and the projects under bench/projects, written in the
shapes real MLproject files have (both parameter forms, path defaults, extra -P values, scripts as
entry points, keys MLflow does not read, broken entry points that are not run, #subdirectories, zips).
Both tools track to the same local `mlflow server`, with `--env-manager local`.

Usage: python bench/mlflow_projects.py [--only NAME]
"""

import argparse
import os
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path

from common import ROOT, WORK, bin_path, child_env, ensure_mlflow_venv, ensure_mlproj_venv, write_section
from tracking_overhead import free_port, start_server

TITLE = "mlflow_projects: real MLflow projects, mlflow run and mlproj run side by side"
PROJECTS = ROOT / "bench" / "projects"
LOCAL = ["--env-manager", "local"]
# (name, URI, arguments after the URI). Public repositories first.
REMOTE = [
    ("mlflow-example (GitHub)", "https://github.com/mlflow/mlflow-example", ["-P", "alpha=0.5", *LOCAL]),
    (
        "mlflow examples/sklearn_elasticnet_wine",
        "https://github.com/mlflow/mlflow#examples/sklearn_elasticnet_wine",
        ["-P", "alpha=0.42", *LOCAL],
    ),
    ("mlflow examples/pytorch/MNIST", "https://github.com/mlflow/mlflow#examples/pytorch/MNIST", LOCAL),
]


def local_cases(zipped: Path) -> list[tuple[str, str, list[str]]]:
    typed, paths = str(PROJECTS / "typed"), str(PROJECTS / "paths")
    return [
        ("typed: defaults and a required string", typed, ["-P", "label=x", *LOCAL]),
        (
            "typed: every value given, an extra -P",
            typed,
            ["-P", "alpha=0.1", "-P", "label=a b", "-P", "extra=7", *LOCAL],
        ),
        ("typed: a second entry point with a path default", typed, ["-e", "validate", *LOCAL]),
        ("typed: a required parameter missing", typed, LOCAL),
        ("typed: an int that is not one", typed, ["-P", "label=x", "-P", "epochs=2.5", *LOCAL]),
        ("typed: an unknown entry point", typed, ["-e", "nope", *LOCAL]),
        ("scripts: a .py file as the entry point", str(PROJECTS / "scripts"), ["-e", "fit.py", *LOCAL]),
        ("scripts: a .sh file as the entry point", str(PROJECTS / "scripts"), ["-e", "run.sh", *LOCAL]),
        ("loose: unknown keys, a broken entry point not run", str(PROJECTS / "loose"), LOCAL),
        ("nested: #subdirectory", f"{PROJECTS / 'nested'}#sub", LOCAL),
        ("paths: a relative path default", paths, LOCAL),
        (
            "paths: ../ in a -P path (from the caller's folder)",
            paths,
            ["-P", "data=../data/rows.csv", *LOCAL],
        ),
        ("zip: a zipped project", str(zipped), ["-P", "label=z", *LOCAL]),
        ("missing folder", str(PROJECTS / "no-such-project"), LOCAL),
    ]


def zip_typed(target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted((PROJECTS / "typed").iterdir()):
            archive.write(file, file.name)
    return target


def reachable(uri: str) -> str | None:
    """None when Git can read the repository; else why not."""
    url = uri.partition("#")[0]
    try:
        done = subprocess.run(
            ["git", "ls-remote", "--heads", url],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except subprocess.TimeoutExpired:
        return "no answer within 30 s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"git exited with {done.returncode}"
    return None


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done.returncode, (lines[-1] if lines else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run the cases whose name contains this")
    only = parser.parse_args().only
    mlproj_venv, mlflow_venv = ensure_mlproj_venv(), ensure_mlflow_venv()
    base = WORK / "mlflow-projects"
    shutil.rmtree(base, ignore_errors=True)
    (base / "server").mkdir(parents=True)
    cwd = base / "cwd"
    cwd.mkdir()
    (base / "data").mkdir()
    shutil.copyfile(PROJECTS / "paths" / "data" / "rows.csv", base / "data" / "rows.csv")
    cases = REMOTE + local_cases(zip_typed(base / "typed.zip"))
    if only:
        cases = [case for case in cases if only in case[0]]
    mlflow, mlproj = str(bin_path(mlflow_venv, "mlflow")), str(bin_path(mlproj_venv, "mlproj"))
    port = free_port()
    server = start_server(mlflow, base / "server", port)
    uri = f"http://127.0.0.1:{port}"
    rows, same, outcome, compared, skipped = [], 0, 0, 0, 0
    try:
        for name, project, args in cases:
            why = reachable(project) if project.startswith("https://") else None
            shown = f"`run {project.replace(str(ROOT) + '/', '')} {' '.join(args)}`"
            if why is not None:
                rows.append(f"| {name} | {shown} | - | - | not run: cannot fetch ({why[:80]}) |")
                skipped += 1
                continue
            codes = {}
            for tool, exe, venv in (("mlflow", mlflow, mlflow_venv), ("mlproj", mlproj, mlproj_venv)):
                env = child_env(venv, MLFLOW_TRACKING_URI=uri, MLPROJ_HOME=str(base / "mlproj-home"))
                codes[tool] = run([exe, "run", project, *args], env, cwd)
            compared += 1
            agree = codes["mlflow"][0] == codes["mlproj"][0]
            both = (codes["mlflow"][0] == 0) == (codes["mlproj"][0] == 0)
            same += agree
            outcome += both
            said = codes["mlflow"][1].partition("=== ")[2].rstrip(" =") or codes["mlflow"][1]
            note = (
                "same" if agree else ("both failed" if both else "one failed") + f"; mlflow: `{said[:100]}`"
            )
            rows.append(f"| {name} | {shown} | {codes['mlflow'][0]} | {codes['mlproj'][0]} | {note} |")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    body = "\n".join(
        [
            "Each project run by both tools with the same arguments, tracking to one local `mlflow "
            "server`, `--env-manager local`, from an empty folder.",
            "",
            "| project | argv after the tool's name | mlflow exit | mlproj exit | |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"- same outcome (both 0, or both not 0): **{outcome} of {compared}**; same exit code: {same} of "
            f"{compared}; {skipped} not run (not reachable from this machine)",
            "- by design (design.md §4, README), mlproj exits 2 for bad input found before anything "
            "runs, where `mlflow run` exits 1; and a relative `path` default is resolved against the "
            "project folder, where MLflow resolves it against the caller's folder (so the project runs "
            "from anywhere)",
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
