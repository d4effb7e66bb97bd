"""A real MLflow tracking server for the tests: `mlflow server` on 127.0.0.1 (sqlite backend store,
a temporary artifact folder), started from the `mlflow` executable named by MLPROJ_TEST_MLFLOW (CI
installs MLflow in a virtualenv of its own) or found on PATH.

Tests that need it are skipped where MLflow is not installed, unless MLPROJ_TEST_REQUIRE lists mlflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.clusters import need

START_TIMEOUT = 120.0


def mlflow_executable() -> str | None:
    given = os.environ.get("MLPROJ_TEST_MLFLOW")
    if given:
        return given if Path(given).exists() else None
    return shutil.which("mlflow")


MLFLOW_MISSING = (
    "MLflow is not installed: pip install mlflow in a virtualenv of its own and set MLPROJ_TEST_MLFLOW to "
    "its mlflow executable (as .ci/mlflow.sh does)"
)


def mlflow_python() -> str | None:
    """The interpreter beside the mlflow executable: it imports mlflow (a workload that logs)."""
    executable = mlflow_executable()
    if executable is None:
        return None
    python = Path(executable).parent / "python"
    return str(python) if python.exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """One `mlflow server`, in a session of its own so that stopping it stops its workers too."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        executable = mlflow_executable()
        need("mlflow", None if executable else MLFLOW_MISSING)
        assert executable is not None
        self.executable = executable
        self.folder = folder
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [
            self.executable,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.folder / "artifacts"),
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        for name in (
            "MLFLOW_TRACKING_URI",
            "MLFLOW_RUN_ID",
            "MLFLOW_EXPERIMENT_ID",
            "MLFLOW_EXPERIMENT_NAME",
        ):
            env.pop(name, None)
        with (self.folder / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.folder / "server.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"mlflow server did not start:\n{text}")
            time.sleep(0.25)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    # What the server holds, through its REST API (what `mlflow ui` shows).
    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.uri}/api/2.0/mlflow/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def run(self, run_id: str) -> dict[str, Any]:
        """{"info": …, "tags": {…}, "params": {…}, "metrics": {…}} of an MLflow run."""
        got = self.call("GET", f"runs/get?run_id={run_id}")["run"]
        data = got.get("data", {})
        return {
            "info": got["info"],
            "tags": {t["key"]: t["value"] for t in data.get("tags", [])},
            "params": {p["key"]: p["value"] for p in data.get("params", [])},
            "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])},
        }

    def artifacts(self, run_id: str, path: str = "") -> list[str]:
        got = self.call("GET", f"artifacts/list?run_id={run_id}&path={path}")
        return [f["path"] for f in got.get("files", [])]

    def artifact_text(self, experiment_id: str, run_id: str, path: str) -> str:
        url = f"{self.uri}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/{path}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            return str(answer.read().decode())

    def experiment_id(self, name: str) -> str | None:
        try:
            got = self.call("GET", f"experiments/get-by-name?experiment_name={name}")
        except urllib.error.HTTPError:
            return None
        return str(got["experiment"]["experiment_id"])
