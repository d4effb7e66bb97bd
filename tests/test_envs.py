"""Environments built for real (virtualenv, uv, and conda through a stand-in), offline.

Every install comes from a folder of wheels written by hand once per session (`wheels`): pip and uv are
told to use only that folder (no index, the machine's pip configuration ignored), so a build that works
here used our wheel, and a requirement that is not in the folder cannot be installed. The CLI runs as a
real child process, and the workload (`show.py`) reports the interpreter and the package it sees.

No conda can be installed where these tests run, so conda, mamba and micromamba are played by a small
script (`STANDIN`) that does what `conda env create --yes --prefix P --file F` does for a conda.yaml that
holds python and a pip list: it creates a prefix (`python -m venv`) and pip-installs the pip section the
way conda does (a requirements file written beside F, pip run from F's folder).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlproj.home import Home
from tests.helpers import PYTHON, alive, assert_input_error, mlproj, mlproj_json, wait_until, write_project

RUNNING = ".".join(map(str, sys.version_info[:2]))

SHOW = """\
import importlib.util, json, os, sys
info = {
    "prefix": sys.prefix,
    "version": ".".join(map(str, sys.version_info[:3])),
    "conda_prefix": os.environ.get("CONDA_PREFIX"),
    "virtual_env": os.environ.get("VIRTUAL_ENV"),
    "build_pkg": importlib.util.find_spec("mlprojbuildpkg") is not None,
    "pkg_version": None,
}
try:
    import mlprojtestpkg
except ImportError:
    pass
else:
    info["pkg_version"] = mlprojtestpkg.VERSION
    info["pkg_file"] = mlprojtestpkg.__file__
print("ENVINFO " + json.dumps(info))
"""

HOLD = """\
import sys, time
from pathlib import Path
deadline = time.time() + 60
while not Path(sys.argv[1]).exists() and time.time() < deadline:
    time.sleep(0.05)
exec(open("show.py").read())
"""

MLPROJECT = """\
name: envs-test
{env_line}entry_points:
  main:
    command: "python show.py"
  sleep:
    command: "python -c 'import time; time.sleep(60)'"
  hold:
    parameters:
      go: string
    command: "python hold.py {{go}}"
"""

STANDIN = '''#!@PYTHON@
"""Stand-in for conda / mamba / micromamba: `[env] create --yes --prefix P --file F`."""
import json, os, subprocess, sys, time
from pathlib import Path

import yaml

name = Path(sys.argv[0]).name
args = sys.argv[1:]
env_file = args[args.index("--file") + 1] if "--file" in args else None
calls = os.environ.get("STANDIN_CALLS")
if calls:
    text = Path(env_file).read_text() if env_file and Path(env_file).is_file() else None
    with open(calls, "a") as out:
        out.write(json.dumps({"name": name, "argv": args, "file_text": text}) + "\\n")
command = ["create"] if name.startswith("micromamba") else ["env", "create"]
if args[: len(command)] != command:
    sys.exit(f"{name}: unsupported command line {args}")
options, rest = {}, args[len(command):]
while rest:
    word = rest.pop(0)
    if word == "--yes":
        options["yes"] = True
    elif word in ("--prefix", "--file") and rest:
        options[word[2:]] = rest.pop(0)
    else:
        sys.exit(f"{name}: unexpected argument {word!r}")
if set(options) != {"yes", "prefix", "file"}:
    sys.exit(f"{name}: expected --yes --prefix P --file F, got {args}")
prefix = options["prefix"]
if os.path.exists(prefix):
    sys.exit(f"{name}: prefix already exists: {prefix}")
spec = yaml.safe_load(Path(options["file"]).read_text())
pip_specs = [s for d in spec.get("dependencies") or [] if isinstance(d, dict) for s in d.get("pip", [])]
print(f"Collecting package metadata: creating {prefix}", flush=True)
subprocess.run([sys.executable, "-m", "venv", "--without-pip", prefix], check=True)
if os.environ.get("STANDIN_SLEEP"):
    Path(os.environ["STANDIN_PIDFILE"]).write_text(str(os.getpid()))
    time.sleep(float(os.environ["STANDIN_SLEEP"]))
if pip_specs:
    workdir = Path(options["file"]).resolve().parent  # as conda does: pip runs beside the env file
    requirements = workdir / f"condaenv.{os.getpid()}.requirements.txt"
    requirements.write_text("\\n".join(pip_specs) + "\\n")
    pip = [sys.executable, "-m", "pip", "--python", os.path.join(prefix, "bin", "python"), "install"]
    done = subprocess.run([*pip, "-U", "-r", str(requirements), "--exists-action=b"], cwd=workdir)
    requirements.unlink()
    if done.returncode:
        sys.exit("Pip subprocess error: pip failed")
print("done", flush=True)
'''


# --- fixtures ---------------------------------------------------------------------------------------------


def make_wheel(folder: Path, name: str, version: str, body: str) -> Path:
    """A pure-Python wheel written by hand: the module, METADATA, WHEEL and a RECORD with hashes."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": body,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: mlproj-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder, "mlprojtestpkg", "1.0", "VERSION = '1.0'\n")
    make_wheel(folder, "mlprojtestpkg", "2.0", "VERSION = '2.0'\n")
    make_wheel(folder, "mlprojbuildpkg", "1.0", "BUILD = True\n")
    # a build backend for the uv.lock project that is a package (virtualenv ships a setuptools wheel)
    import virtualenv

    embedded = sorted(Path(virtualenv.__file__).parent.glob("seed/wheels/embed/setuptools-*.whl"))
    if embedded:
        shutil.copy(embedded[-1], folder)
    return folder


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def offline(home: Home, wheels: Path, uv_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip and uv (in mlproj's child processes too) install only from `wheels`."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # the machine's extra index URLs and find-links
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("UV_NO_INDEX", "1")
    monkeypatch.setenv("UV_FIND_LINKS", str(wheels))
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_cache))
    for name in ("MLPROJ_ENV_MANAGER", "MLPROJ_CONDA_EXE", "CONDA_EXE", "VIRTUAL_ENV", "CONDA_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    return wheels


@pytest.fixture
def cleanup_runs(home: Home) -> Any:
    """Run IDs to cancel (and PIDs to kill) when the test ends: a failing test must not leave a detached
    run or a build behind."""
    leftovers: list[str | int] = []
    yield leftovers
    for item in leftovers:
        if isinstance(item, int):
            if alive(item):
                os.kill(item, signal.SIGKILL)
        else:
            mlproj("cancel", item, "--grace", "1", timeout=60)


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder holding `conda`, `mamba` and `micromamba` stand-ins; calls are logged to calls.jsonl."""
    folder = tmp_path / "standin-bin"
    folder.mkdir()
    for name in ("conda", "mamba", "micromamba"):
        script = folder / name
        script.write_text(STANDIN.replace("@PYTHON@", sys.executable))
        script.chmod(0o755)
    monkeypatch.setenv("STANDIN_CALLS", str(tmp_path / "calls.jsonl"))
    return folder


def standin_calls(tmp_path: Path) -> list[dict[str, Any]]:
    calls = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


# --- helpers ----------------------------------------------------------------------------------------------


def env_project(
    folder: Path,
    files: dict[str, str],
    env_line: str = "",
) -> Path:
    return write_project(
        folder, MLPROJECT.format(env_line=env_line), {"show.py": SHOW, "hold.py": HOLD, **files}
    )


def python_env(*deps: str, python: str | None = RUNNING, build: tuple[str, ...] = ()) -> str:
    text = f"python: {json.dumps(python)}\n" if python else ""
    text += f"build_dependencies: {json.dumps(list(build))}\n"
    return text + "dependencies:\n" + "".join(f"  - {json.dumps(dep)}\n" for dep in deps)


def conda_env(*pip: str, python: str = RUNNING) -> str:
    return (
        "name: test\nchannels: [conda-forge]\ndependencies:\n"
        f"  - python={python}\n  - pip\n  - pip:\n" + "".join(f"    - {json.dumps(dep)}\n" for dep in pip)
    )


def run_ok(project: Path, *args: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Run in the foreground with --json; the record, what the workload saw, and stderr."""
    done = mlproj("run", str(project), "--json", *args, timeout=300)
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    assert record["status"] == "Finished"
    return record, envinfo(done.stderr), done.stderr


def envinfo(output: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.startswith("ENVINFO ")]
    assert len(lines) == 1, output
    info: dict[str, Any] = json.loads(lines[0][len("ENVINFO ") :])
    return info


def nothing_recorded(home: Home) -> None:
    assert json.loads(mlproj("runs", "--json").stdout) == []
    assert not home.runs_dir.exists() or not any(home.runs_dir.iterdir())


def envs_list() -> list[dict[str, Any]]:
    done = mlproj("envs", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def build_folders(home: Home, fingerprint: str = "") -> list[Path]:
    if not home.envs_dir.is_dir():
        return []
    pattern = f"{fingerprint}-*" if fingerprint else "*"
    return sorted(p for p in home.envs_dir.glob(pattern) if p.is_dir())


def not_lock_files(home: Home) -> list[str]:
    if not home.envs_dir.is_dir():
        return []
    return sorted(p.name for p in home.envs_dir.iterdir() if not p.name.endswith(".lock"))


def same(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def snapshot(env: Path) -> list[tuple[int, int]]:
    """Inode and modification time of the environment and of what was installed into it."""
    site = next(env.glob("lib/python*/site-packages"))
    paths = [env, env / "bin", env / "bin" / "python", site, site / "mlprojtestpkg"]
    return [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths]


def status(run_id: str) -> dict[str, Any]:
    document: dict[str, Any] = mlproj_json("status", run_id)
    return document


def supervisor_of(run_id: str) -> psutil.Process:
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "mlproj.submit.detached" in cmdline and run_id in cmdline:
            return proc
    raise AssertionError(f"no supervisor for {run_id}")


def other_python() -> str | None:
    """A Python X.Y other than the running one that pyenv has (newest first, 3.8 or later)."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for entry in root.glob("3.*") if root.is_dir() else []:
        parts = entry.name.split(".")
        if len(parts) >= 2 and parts[1].isdigit() and (entry / "bin" / "python").exists():
            found.append((int(parts[1]), f"3.{parts[1]}"))
    found = [f for f in found if f[0] >= 8 and f[1] != RUNNING]
    return max(found)[1] if found else None


# --- virtualenv and uv: build, reuse, rebuild -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("manager", ["virtualenv", "uv"])
def test_build_reuse_rebuild_and_a_changed_requirement(
    tmp_path: Path, home: Home, offline: Path, monkeypatch: pytest.MonkeyPatch, manager: str
) -> None:
    if manager == "uv":
        monkeypatch.setenv("MLPROJ_ENV_MANAGER", "uv")  # chosen by the variable (virtualenv by default)
    project = env_project(
        tmp_path / "proj",
        {
            "python_env.yaml": python_env("-r requirements.txt", build=("mlprojbuildpkg",)),
            "requirements.txt": "mlprojtestpkg==1.0\n",
        },
    )

    # a cold build installs our wheel, and the workload runs inside the environment
    first, info, stderr = run_ok(project)
    assert first["env_manager"] == manager
    assert first["env_reused"] is False
    fingerprint = first["env_fingerprint"]
    env = Path(first["env_path"])
    assert env.name == "env"
    assert env.parent.parent == home.envs_dir
    assert env.parent.name.startswith(f"{fingerprint}-")
    assert (home.envs_dir / f"{fingerprint}.json").is_file()
    assert same(info["prefix"], env)
    assert info["version"].startswith(RUNNING + ".")
    assert info["pkg_version"] == "1.0"
    assert Path(info["pkg_file"]).resolve().is_relative_to(env.resolve())
    assert info["build_pkg"] is True
    assert info["virtual_env"] == str(env)
    assert "Preparing environment" in stderr
    # It ends with one line: what the build took, the manager and the packages it installed (pip,
    # setuptools and the like count too: they are in the environment).
    built = re.search(rf"environment built in [0-9.]+ s \({manager}, ([0-9]+) packages\)\n", stderr)
    assert built is not None and int(built.group(1)) >= 1, stderr
    log = Path(first["log_path"]).read_text()  # the build's output is in the run log
    assert f"mlproj: {built.group(0)}" in log
    assert "mlproj: build dependencies:" in log
    assert "mlproj: dependencies:" in log
    if manager == "virtualenv":
        assert f"Processing {offline}/mlprojtestpkg-1.0-py3-none-any.whl" in log
        assert "Successfully installed mlprojtestpkg-1.0" in log
    else:
        assert "uv venv" in log
        assert "+ mlprojtestpkg==1.0" in log
    assert log.rstrip().splitlines()[-1].startswith("ENVINFO ")
    before = snapshot(env)

    # a second run reuses it, untouched
    second, info, stderr = run_ok(project)
    assert second["env_reused"] is True
    assert second["env_fingerprint"] == fingerprint
    assert second["env_path"] == str(env)
    assert same(info["prefix"], env)
    assert snapshot(env) == before
    assert "mlproj: " not in Path(second["log_path"]).read_text()
    assert "Preparing environment" not in stderr
    assert build_folders(home, fingerprint) == [env.parent]

    # the same environment files in another folder are the same environment
    elsewhere = shutil.copytree(project, tmp_path / "elsewhere" / "copy")
    third, info, _ = run_ok(elsewhere)
    assert (third["env_fingerprint"], third["env_reused"], third["env_path"]) == (fingerprint, True, str(env))

    # --rebuild-env builds a fresh one, which replaces the old one
    rebuilt, info, _ = run_ok(project, "--rebuild-env")
    assert rebuilt["env_fingerprint"] == fingerprint
    assert rebuilt["env_reused"] is False
    new_env = Path(rebuilt["env_path"])
    assert new_env != env
    assert same(info["prefix"], new_env)
    assert info["pkg_version"] == "1.0"
    assert env.parent.exists()  # replaced, and left for prune: a run may still be using it
    assert mlproj("envs", "prune", "--older-than", "30").returncode == 0
    assert not env.parent.exists()
    assert build_folders(home, fingerprint) == [new_env.parent]
    assert [row["path"] for row in envs_list()] == [str(new_env.parent)]

    # editing the -r file is a new environment
    (project / "requirements.txt").write_text("mlprojtestpkg==2.0\n")
    changed, info, _ = run_ok(project)
    assert changed["env_fingerprint"] != fingerprint
    assert changed["env_reused"] is False
    assert info["pkg_version"] == "2.0"
    assert same(info["prefix"], changed["env_path"])
    listed = {row["fingerprint"]: row for row in envs_list()}
    assert set(listed) == {fingerprint, changed["env_fingerprint"]}
    assert {row["manager"] for row in listed.values()} == {manager}


@pytest.mark.slow
@pytest.mark.parametrize("manager", ["virtualenv", "uv"])
def test_a_dependency_that_cannot_be_installed(
    tmp_path: Path, home: Home, offline: Path, manager: str
) -> None:
    project = env_project(
        tmp_path / "proj", {"python_env.yaml": python_env("mlprojtestpkg==1.0", "mlprojnosuchpkg==9.9")}
    )
    done = mlproj("run", str(project), "--json", "--env-manager", manager, timeout=300)
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "Failed"
    error = record["error"]
    assert error.startswith(f"building the {manager} environment failed (dependencies, exit code 1): ")
    assert "mlprojnosuchpkg" in error  # the installer's last lines
    if manager == "virtualenv":
        assert "No matching distribution found for mlprojnosuchpkg==9.9" in error
    assert "ENVINFO" not in done.stderr  # the workload never ran
    assert "mlprojnosuchpkg" in Path(record["log_path"]).read_text()
    assert mlproj("wait", record["run_id"], "--no-show-output").returncode == 1
    # nothing is left in the cache: no metadata, no build folder (lock files may stay)
    assert envs_list() == []
    assert not_lock_files(home) == []


@pytest.mark.slow
def test_five_runs_at_once_on_a_cold_cache_build_one_environment(
    tmp_path: Path, home: Home, offline: Path
) -> None:
    project = env_project(tmp_path / "proj", {"python_env.yaml": python_env("mlprojtestpkg==1.0")})
    starts = [
        subprocess.Popen(
            [PYTHON, "-m", "mlproj", "run", str(project), "-d", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    run_ids = []
    for start in starts:
        out, err = start.communicate(timeout=120)
        assert start.returncode == 0, err
        run_ids.append(json.loads(out)["run_id"])
    for run_id in run_ids:
        assert mlproj("wait", run_id, "--no-show-output", timeout=300).returncode == 0
    records = [status(run_id) for run_id in run_ids]
    assert {r["status"] for r in records} == {"Finished"}
    assert {r["env_manager"] for r in records} == {"virtualenv"}
    fingerprints = {r["env_fingerprint"] for r in records}
    assert len(fingerprints) == 1
    assert [r["env_reused"] for r in records].count(False) == 1  # one build, four reuses
    assert len({r["env_path"] for r in records}) == 1
    (fingerprint,) = fingerprints
    assert build_folders(home) == [Path(records[0]["env_path"]).parent]
    assert build_folders(home, fingerprint) == build_folders(home)
    for record in records:
        info = envinfo(Path(record["log_path"]).read_text())
        assert same(info["prefix"], record["env_path"])
        assert info["pkg_version"] == "1.0"


@pytest.mark.slow
def test_a_run_waits_while_another_process_holds_the_build_lock(
    tmp_path: Path, home: Home, offline: Path, monkeypatch: pytest.MonkeyPatch, cleanup_runs: list[str | int]
) -> None:
    from filelock import FileLock

    from mlproj.envs.envspec import load_env_spec
    from mlproj.spec import load_project

    monkeypatch.setenv("MLPROJ_ENV_MANAGER", "uv")
    project = env_project(tmp_path / "proj", {"python_env.yaml": python_env("mlprojtestpkg==1.0")})
    fingerprint = load_env_spec(load_project(project)).fingerprint("uv")
    home.envs_dir.mkdir(parents=True)
    lock = FileLock(str(home.envs_dir / f"{fingerprint}.lock"))
    lock.acquire()
    try:
        done = mlproj("run", str(project), "-d", "--json")
        run_id = json.loads(done.stdout)["run_id"]
        cleanup_runs.append(run_id)
        wait_until(lambda: status(run_id)["status"] != "Queued", timeout=60, interval=0.1)
        time.sleep(1.5)
        assert status(run_id)["status"] == "Preparing"  # waiting for the lock
        assert build_folders(home) == []
    finally:
        lock.release()
    assert mlproj("wait", run_id, "--no-show-output", timeout=120).returncode == 0
    record = status(run_id)
    assert (record["env_fingerprint"], record["env_reused"]) == (fingerprint, False)


@pytest.mark.slow
def test_rebuild_env_leaves_alone_the_environment_of_a_running_run(
    tmp_path: Path, home: Home, offline: Path, monkeypatch: pytest.MonkeyPatch, cleanup_runs: list[str | int]
) -> None:
    monkeypatch.setenv("MLPROJ_ENV_MANAGER", "uv")
    project = env_project(tmp_path / "proj", {"python_env.yaml": python_env("mlprojtestpkg==1.0")})
    run_ok(project)
    go = tmp_path / "go"
    started = mlproj("run", str(project), "-e", "hold", "-P", f"go={go}", "-d", "--json")
    holder = json.loads(started.stdout)["run_id"]
    cleanup_runs.append(holder)
    wait_until(lambda: status(holder)["status"] == "Running", timeout=60, interval=0.2)
    run_ok(project, "--rebuild-env")
    go.touch()
    waited = mlproj("wait", holder, "--no-show-output", timeout=120)
    record = status(holder)
    assert envinfo(Path(record["log_path"]).read_text())["pkg_version"] == "1.0"
    assert waited.returncode == 0, record["error"]


# --- uv with a lock file ----------------------------------------------------------------------------------


def locked_project(folder: Path, package: bool) -> Path:
    """A uv project (pyproject.toml + uv.lock, locked offline) whose MLproject has no environment file."""
    pyproject = (
        '[project]\nname = "lockedproj"\nversion = "0.1"\nrequires-python = ">=3.8"\n'
        'dependencies = ["mlprojtestpkg==1.0"]\n'
    )
    files = {"show.py": SHOW}
    if package:  # a package in a src layout, which `uv sync` installs (editable) into the environment
        pyproject += (
            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
            '[tool.setuptools]\npackage-dir = {"" = "src"}\npackages = ["lockedproj"]\n'
        )
        files["src/lockedproj/__init__.py"] = "WHO = 'first'\n"
        files["src/lockedproj/__main__.py"] = "import lockedproj\nprint('WHO', lockedproj.WHO)\n"
    files["pyproject.toml"] = pyproject
    command = "python -m lockedproj" if package else "python show.py"
    write_project(
        folder, f"name: locked\nentry_points:\n  main:\n    command: {json.dumps(command)}\n", files
    )
    from uv import find_uv_bin

    subprocess.run(
        [find_uv_bin(), "lock", "--python", sys.executable], cwd=folder, check=True, capture_output=True
    )
    assert (folder / "uv.lock").is_file()
    return folder


@pytest.mark.slow
def test_uv_syncs_a_project_that_has_a_lock_file(tmp_path: Path, home: Home, offline: Path) -> None:
    project = locked_project(tmp_path / "proj", package=False)
    record, info, _ = run_ok(project, "--env-manager", "uv")
    assert record["env_manager"] == "uv"
    assert record["env_reused"] is False
    assert same(info["prefix"], record["env_path"])
    assert info["pkg_version"] == "1.0"
    log = Path(record["log_path"]).read_text()
    assert "mlproj: uv sync from uv.lock:" in log
    assert "sync --frozen" in log
    assert not (project / ".venv").exists()  # the environment is built in the cache, not in the project
    again, _, _ = run_ok(project, "--env-manager", "uv")
    assert (again["env_reused"], again["env_fingerprint"]) == (True, record["env_fingerprint"])
    # without --env-manager, a project without an environment file runs `local`
    local, info, _ = run_ok(project)
    assert local["env_manager"] == "local"
    assert info["pkg_version"] is None


@pytest.mark.slow
def test_uv_sync_environment_reused_from_another_folder_runs_that_folders_code(
    tmp_path: Path, home: Home, offline: Path
) -> None:
    if not list(offline.glob("setuptools-*.whl")):
        pytest.skip("no setuptools wheel to build the locked package offline")
    first = locked_project(tmp_path / "first", package=True)
    second = shutil.copytree(first, tmp_path / "second")
    (second / "src" / "lockedproj" / "__init__.py").write_text("WHO = 'second'\n")
    done = mlproj("run", str(first), "--env-manager", "uv", timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "WHO first"
    done = mlproj("run", str(second), "--env-manager", "uv", timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "WHO second"


# --- Python versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("manager", ["virtualenv", "uv"])
def test_a_python_version_that_is_not_installed(
    tmp_path: Path, home: Home, offline: Path, manager: str
) -> None:
    project = env_project(tmp_path / "proj", {"python_env.yaml": python_env("mlprojtestpkg", python="3.99")})
    line = assert_input_error(
        mlproj("run", str(project), "--env-manager", manager), "Python 3.99 is not available"
    )
    assert RUNNING in line.split("3.99 is not available", 1)[1]  # it lists the versions it found
    nothing_recorded(home)
    assert not_lock_files(home) == []


@pytest.mark.slow
@pytest.mark.parametrize("manager", ["virtualenv", "uv"])
def test_a_python_version_found_in_pyenv(tmp_path: Path, home: Home, offline: Path, manager: str) -> None:
    version = other_python()
    if version is None:
        pytest.skip(f"pyenv has no Python 3.8+ other than the running {RUNNING}")
    project = env_project(
        tmp_path / "proj", {"python_env.yaml": python_env("mlprojtestpkg==1.0", python=version)}
    )
    record, info, _ = run_ok(project, "--env-manager", manager)
    assert info["version"].startswith(version + ".")
    assert same(info["prefix"], record["env_path"])
    assert info["pkg_version"] == "1.0"
    (listed,) = envs_list()
    assert listed["python"].startswith(version)


# --- conda (through the stand-in) -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("found_by", "name"), [("MLPROJ_CONDA_EXE", "conda"), ("CONDA_EXE", "mamba"), ("PATH", "micromamba")]
)
def test_a_conda_project_runs_in_a_conda_prefix(
    tmp_path: Path,
    home: Home,
    offline: Path,
    standin: Path,
    monkeypatch: pytest.MonkeyPatch,
    found_by: str,
    name: str,
) -> None:
    if found_by == "PATH":
        only = tmp_path / "path-bin"
        only.mkdir()
        shutil.copy2(standin / name, only / name)
        monkeypatch.setenv("PATH", f"{only}{os.pathsep}{os.environ['PATH']}")
    else:
        monkeypatch.setenv(found_by, str(standin / name))
    conda_yaml = conda_env("mlprojtestpkg==1.0")
    project = env_project(tmp_path / "proj", {"conda.yaml": conda_yaml})
    record, info, _ = run_ok(project)  # conda.yaml → conda by default
    assert record["env_manager"] == "conda"
    assert record["env_reused"] is False
    prefix = Path(record["env_path"])
    assert prefix.parent.parent == home.envs_dir
    assert info["conda_prefix"] == str(prefix)
    assert same(info["prefix"], prefix)
    assert info["pkg_version"] == "1.0"
    (call,) = standin_calls(tmp_path)
    command = ["create"] if name == "micromamba" else ["env", "create"]
    assert call["name"] == name
    assert call["argv"][: len(command) + 3] == [*command, "--yes", "--prefix", str(prefix)]
    assert call["argv"][len(command) + 3] == "--file"
    assert call["file_text"] == conda_yaml
    assert "Collecting package metadata" in Path(record["log_path"]).read_text()
    (listed,) = envs_list()
    assert (listed["manager"], listed["python"]) == ("conda", RUNNING)

    again, info, _ = run_ok(project)
    assert (again["env_reused"], again["env_path"]) == (True, str(prefix))
    assert len(standin_calls(tmp_path)) == 1


@pytest.mark.slow
def test_a_conda_pip_section_with_a_requirements_file(
    tmp_path: Path, home: Home, offline: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_CONDA_EXE", str(standin / "conda"))
    project = env_project(
        tmp_path / "proj",
        {"conda.yaml": conda_env("-r requirements.txt"), "requirements.txt": "mlprojtestpkg==1.0\n"},
    )
    done = mlproj("run", str(project), "--json", timeout=300)
    assert done.returncode == 0, done.stdout
    assert envinfo(done.stderr)["pkg_version"] == "1.0"


@pytest.mark.slow
def test_uv_on_a_conda_project_uses_its_pip_section_and_python(
    tmp_path: Path, home: Home, offline: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_CONDA_EXE", str(standin / "conda"))
    version = other_python() or RUNNING
    project = env_project(
        tmp_path / "proj",
        {
            "conda.yaml": conda_env("-r requirements.txt", python=version),
            "requirements.txt": "mlprojtestpkg==2.0\n",
        },
    )
    record, info, _ = run_ok(project, "--env-manager", "uv")
    assert record["env_manager"] == "uv"
    assert info["version"].startswith(version + ".")
    assert info["pkg_version"] == "2.0"
    assert info["conda_prefix"] is None
    assert same(info["prefix"], record["env_path"])
    assert standin_calls(tmp_path) == []  # conda was not used


def test_no_conda_is_an_input_error(
    tmp_path: Path, home: Home, offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("conda", "mamba", "micromamba")
    path = [d for d in os.environ["PATH"].split(os.pathsep) if not any((Path(d) / n).exists() for n in names)]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    project = env_project(tmp_path / "proj", {"conda.yaml": conda_env("mlprojtestpkg")})
    assert_input_error(mlproj("run", str(project)), "conda is not installed", "MLPROJ_CONDA_EXE")
    nothing_recorded(home)
    assert not home.envs_dir.exists()


def test_conda_exe_variable_naming_a_missing_file(
    tmp_path: Path, home: Home, offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "conda"
    monkeypatch.setenv("MLPROJ_CONDA_EXE", str(missing))
    project = env_project(tmp_path / "proj", {"conda.yaml": conda_env("mlprojtestpkg")})
    assert_input_error(mlproj("run", str(project)), f"MLPROJ_CONDA_EXE={missing}")
    nothing_recorded(home)


def test_conda_manager_on_a_python_env_project(
    tmp_path: Path, home: Home, offline: Path, standin: Path
) -> None:
    project = env_project(tmp_path / "proj", {"python_env.yaml": python_env("mlprojtestpkg")})
    assert_input_error(mlproj("run", str(project), "--env-manager", "conda"), "needs a conda.yaml")
    nothing_recorded(home)


# --- builds that are stopped half-way (a slow stand-in build) ---------------------------------------------


def start_slow_conda_run(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str, int]:
    """A detached conda run whose build stops half-way (the prefix created, nothing installed yet)."""
    pidfile = tmp_path / "standin.pid"
    monkeypatch.setenv("MLPROJ_CONDA_EXE", str(standin / "conda"))
    monkeypatch.setenv("STANDIN_SLEEP", "120")
    monkeypatch.setenv("STANDIN_PIDFILE", str(pidfile))
    project = env_project(tmp_path / "proj", {"conda.yaml": conda_env("mlprojtestpkg==1.0")})
    done = mlproj("run", str(project), "-d", "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    wait_until(lambda: status(run_id)["status"] == "Preparing", timeout=60, interval=0.1)
    wait_until(pidfile.exists, timeout=60)
    monkeypatch.delenv("STANDIN_SLEEP")
    return project, run_id, int(pidfile.read_text())


@pytest.mark.slow
def test_a_build_killed_half_way_is_never_used(
    tmp_path: Path,
    home: Home,
    offline: Path,
    standin: Path,
    monkeypatch: pytest.MonkeyPatch,
    cleanup_runs: list[str | int],
) -> None:
    project, run_id, builder = start_slow_conda_run(tmp_path, standin, monkeypatch)
    cleanup_runs += [run_id, builder]
    (half,) = build_folders(home)
    assert (half / "env" / "bin" / "python").exists()  # half-built
    assert envs_list() == []  # not published
    supervisor = supervisor_of(run_id)
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(timeout=10)
    record = status(run_id)  # reading it reconciles it
    assert record["status"] == "Failed"
    assert "supervising process" in record["error"]
    wait_until(lambda: not alive(builder), timeout=30)  # and ends the build it left behind
    assert half.exists()
    assert envs_list() == []

    again, info, _ = run_ok(project)
    assert again["env_reused"] is False
    prefix = Path(again["env_path"])
    assert half.name.startswith(f"{again['env_fingerprint']}-")
    assert prefix.parent != half
    assert not half.exists()  # removed by the next build of the fingerprint
    assert build_folders(home) == [prefix.parent]
    assert same(info["prefix"], prefix)
    assert info["pkg_version"] == "1.0"


@pytest.mark.slow
def test_cancel_during_a_build(
    tmp_path: Path,
    home: Home,
    offline: Path,
    standin: Path,
    monkeypatch: pytest.MonkeyPatch,
    cleanup_runs: list[str | int],
) -> None:
    _project, run_id, builder = start_slow_conda_run(tmp_path, standin, monkeypatch)
    cleanup_runs += [run_id, builder]
    done = mlproj("cancel", run_id, "--grace", "2", timeout=60)
    assert done.returncode == 0, done.stderr
    record = status(run_id)
    assert record["status"] == "Canceled"
    wait_until(lambda: not alive(builder), timeout=30)
    wait_until(lambda: not_lock_files(home) == [], timeout=30)
    assert envs_list() == []
    assert mlproj("wait", run_id, "--no-show-output").returncode == 130


@pytest.mark.slow
def test_timeout_does_not_count_the_build(
    tmp_path: Path, home: Home, offline: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROJ_CONDA_EXE", str(standin / "conda"))
    monkeypatch.setenv("STANDIN_SLEEP", "3")
    monkeypatch.setenv("STANDIN_PIDFILE", str(tmp_path / "standin.pid"))
    project = env_project(tmp_path / "proj", {"conda.yaml": conda_env("mlprojtestpkg==1.0")})
    record, info, _ = run_ok(project, "--timeout", "2")
    assert record["env_reused"] is False
    assert info["pkg_version"] == "1.0"


# --- choosing the manager ---------------------------------------------------------------------------------


def test_a_project_without_an_environment_file_runs_local(tmp_path: Path, home: Home, offline: Path) -> None:
    project = env_project(tmp_path / "proj", {})
    record, info, _ = run_ok(project)
    assert record["env_manager"] == "local"
    assert (record["env_fingerprint"], record["env_path"], record["env_reused"]) == (None, None, None)
    assert same(info["prefix"], sys.prefix)
    assert not home.envs_dir.exists()


def test_unknown_managers_are_input_errors(
    tmp_path: Path, home: Home, offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = env_project(tmp_path / "proj", {"python_env.yaml": python_env("mlprojtestpkg")})
    assert_input_error(mlproj("run", str(project), "--env-manager", "pipenv"), "pipenv", "virtualenv")
    monkeypatch.setenv("MLPROJ_ENV_MANAGER", "pipenv")
    assert_input_error(mlproj("run", str(project)), "MLPROJ_ENV_MANAGER=pipenv")
    nothing_recorded(home)
    assert not home.envs_dir.exists()
    # the flag wins over the variable
    record, _, _ = run_ok(env_project(tmp_path / "bare", {}), "--env-manager", "local")
    assert record["env_manager"] == "local"


@pytest.mark.parametrize(
    ("files", "env_line", "fragment"),
    [
        ({}, "python_env: envs/missing.yaml\n", "python_env: no such file"),
        ({}, "conda_env: missing.yaml\n", "conda_env: no such file"),
        ({"python_env.yaml": "python: [3\n"}, "", "malformed YAML"),
        ({"python_env.yaml": "dependencies: [-r nowhere.txt]\n"}, "", "nowhere.txt"),
        ({"python_env.yaml": "packages: [x]\n"}, "", "packages: unknown key"),
        ({"conda.yaml": "dependencies: [python=latest]\n"}, "", "python=latest"),
    ],
)
def test_bad_environment_files_are_input_errors(
    tmp_path: Path, home: Home, offline: Path, files: dict[str, str], env_line: str, fragment: str
) -> None:
    project = env_project(tmp_path / "proj", files, env_line=env_line)
    assert_input_error(mlproj("run", str(project)), fragment)
    nothing_recorded(home)
    assert not home.envs_dir.exists()


# --- envs list / prune ------------------------------------------------------------------------------------


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


@pytest.mark.slow
def test_envs_list_and_prune(
    tmp_path: Path,
    home: Home,
    offline: Path,
    monkeypatch: pytest.MonkeyPatch,
    cleanup_runs: list[str | int],
) -> None:
    monkeypatch.setenv("MLPROJ_ENV_MANAGER", "uv")
    assert envs_list() == []
    assert mlproj("envs", "list").stdout.strip() == "No cached environments."
    assert mlproj("envs", "prune").stdout.strip() == "Nothing to prune."

    old_project = env_project(tmp_path / "old", {"python_env.yaml": python_env("mlprojtestpkg==1.0")})
    old, _, _ = run_ok(old_project)
    (row,) = envs_list()
    assert row["fingerprint"] == old["env_fingerprint"]
    assert row["manager"] == "uv"
    assert row["python"] == RUNNING
    assert isinstance(row["size_bytes"], int)
    assert row["size_bytes"] > 1000
    assert row["path"] == str(Path(old["env_path"]).parent)
    assert row["source"] == str(old_project / "python_env.yaml")
    for key in ("created_at", "last_used"):
        assert abs(parse_time(row[key]) - time.time()) < 120
    table = mlproj("envs", "list")
    assert table.returncode == 0
    assert row["fingerprint"] in table.stdout

    # last_used moves when a run reuses the environment
    meta = home.envs_dir / f"{old['env_fingerprint']}.json"
    ten_days_ago = time.time() - 10 * 86400
    os.utime(meta, (ten_days_ago, ten_days_ago))
    assert abs(parse_time(envs_list()[0]["last_used"]) - ten_days_ago) < 5
    run_ok(old_project)
    assert abs(parse_time(envs_list()[0]["last_used"]) - time.time()) < 120
    os.utime(meta, (ten_days_ago, ten_days_ago))

    new_project = env_project(tmp_path / "new", {"python_env.yaml": python_env("mlprojtestpkg==2.0")})
    new, _, _ = run_ok(new_project)
    assert mlproj("envs", "prune", "--older-than", "30").stdout.strip() == "Nothing to prune."
    pruned = mlproj("envs", "prune", "--older-than", "5")
    assert pruned.returncode == 0, pruned.stderr
    assert f"removed {old['env_fingerprint']}" in pruned.stdout
    assert new["env_fingerprint"] not in pruned.stdout
    assert [r["fingerprint"] for r in envs_list()] == [new["env_fingerprint"]]
    assert not Path(old["env_path"]).exists()
    assert not meta.exists()

    # an environment that an unfinished run uses is kept
    started = mlproj("run", str(new_project), "-e", "sleep", "-d", "--json")
    sleeper = json.loads(started.stdout)["run_id"]
    cleanup_runs.append(sleeper)
    wait_until(lambda: status(sleeper)["status"] == "Running", timeout=60, interval=0.2)
    kept = mlproj("envs", "prune")
    assert f"kept {new['env_fingerprint']}" in kept.stdout
    assert Path(new["env_path"]).is_dir()
    assert mlproj("cancel", sleeper, "--grace", "1").returncode == 0

    # a folder no metadata points at (a killed build) goes too
    orphan = home.envs_dir / f"{'0' * 24}-abcdef"
    (orphan / "env").mkdir(parents=True)
    pruned = mlproj("envs", "prune")
    assert f"removed {new['env_fingerprint']}" in pruned.stdout
    assert "removed 1 unfinished build folder(s)" in pruned.stdout
    assert envs_list() == []
    assert not_lock_files(home) == []
    assert mlproj("envs", "prune").stdout.strip() == "Nothing to prune."


@pytest.mark.slow
def test_prune_during_a_build_leaves_the_build_alone(
    tmp_path: Path,
    home: Home,
    offline: Path,
    standin: Path,
    monkeypatch: pytest.MonkeyPatch,
    cleanup_runs: list[str | int],
) -> None:
    _project, run_id, builder = start_slow_conda_run(tmp_path, standin, monkeypatch)
    cleanup_runs += [run_id, builder]
    (building,) = build_folders(home)
    pruned = mlproj("envs", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert building.exists()
    assert status(run_id)["status"] == "Preparing"
