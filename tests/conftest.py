from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mlproj.home import Home

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlproj.runs.store import Store
    from tests.mlflow_server import MlflowServer
    from tests.servers import Server


@pytest.fixture(autouse=True)
def _no_mlflow_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests track in MLflow only where they say so (a developer's MLFLOW_TRACKING_URI stays out)."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MLFLOW_CONDA_HOME", "MLFLOW_CONDA_CREATE_ENV_CMD"):
        monkeypatch.delenv(name, raising=False)
    from mlproj import notices

    notices.forget()  # each test hears every warning


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow tracking server for the session (started on first use; see tests/mlflow_server.py)."""
    from tests.mlflow_server import MlflowServer

    started = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def store(home: Home) -> Iterator[Store]:
    """The run store of the test's MLPROJ_HOME, closed after the test."""
    from mlproj.runs.store import Store

    opened = Store.open(home)
    yield opened
    opened.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh MLPROJ_HOME for one test, also exported for child processes."""
    root = tmp_path / "mlproj-home"
    monkeypatch.setenv("MLPROJ_HOME", str(root))
    return Home.from_env()


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` with a fixed identity; return its stdout stripped."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_git_repo(path: Path, files: dict[str, str], branch: str = "main") -> str:
    """Create a Git repository at `path` with `files` committed; return the commit SHA."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return git(path, "rev-parse", "HEAD")


def commit_files(path: Path, files: dict[str, str], message: str = "change") -> str:
    """Write `files` into the repository at `path`, commit them and return the new SHA."""
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)
    return git(path, "rev-parse", "HEAD")


@pytest.fixture
def control(tmp_path: Path) -> Path:
    """A copy of tests/azure/control/: Azure pipelines that loop and branch, free to edit."""
    import shutil

    return Path(shutil.copytree(Path(__file__).parent / "azure" / "control", tmp_path / "control"))


@pytest.fixture
def server(home: Home) -> Iterator[Server]:
    """A real `mlproj serve` on 127.0.0.1 with this test's MLPROJ_HOME (tests/servers.py)."""
    from tests.servers import Server

    started = Server(home.root).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def central_european_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set to CET (UTC+1; a POSIX rule, no tz database needed)."""
    import time

    monkeypatch.setenv("TZ", "CET-1")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
