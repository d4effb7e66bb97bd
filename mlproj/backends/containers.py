"""Containers the local backend runs for an environment that is an image, through the Docker Engine API.

The command runs with `sh -c` (small images have no bash) in a container labelled with the run's ID;
its output is appended to the run's log by a thread that also reads its exit code. Containers are
removed once their exit code has been read, and those of a run whose supervisor is gone are removed by
the next command that reads the run.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from mlproj.backends.workload import Workload
from mlproj.dockerapi import API_TIMEOUT, LABEL, client, reason
from mlproj.errors import InputError, MlprojError
from mlproj.process import CREDENTIAL_VARIABLES, RUN_ID_VARIABLE

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.backends.base import Launch


LOG_GRACE = 5.0  # seconds the log stream has to end once the container has exited


class ContainerWorkload(Workload):
    """A container whose output is appended to the run log by a thread that also reads its exit code."""

    def __init__(self, api: Any, container: Any, log_path: Path) -> None:
        self.api = api
        self.container = container
        self._done = threading.Event()
        self._code: int | None = None
        self.image_id = str((getattr(container, "attrs", None) or {}).get("Image") or "") or None
        self._thread = threading.Thread(target=self._follow, args=(log_path,), daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, launch: Launch) -> ContainerWorkload:
        spec = launch.container
        if spec is None:  # pragma: no cover - the local backend starts containers only for containers
            raise MlprojError("no container to start")
        api = client()
        run_id = launch.record.run_id
        container = api.containers.create(
            spec.image,
            ["sh", "-c", launch.request.command],
            environment={
                **spec.environment,
                **launch.request.env,
                **{
                    name: launch.process.env[name]
                    for name in CREDENTIAL_VARIABLES
                    if name in launch.process.env
                },
                RUN_ID_VARIABLE: run_id,
            },
            volumes=[*spec.volumes, *local_tracking_volumes(launch)],
            labels={LABEL: run_id},
            working_dir=spec.working_dir,
            detach=True,
            **spec.options,
        )
        try:
            container.start()
        except Exception as exc:  # noqa: BLE001 - the engine created it but cannot start it (a bad user, a bad mount)
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise MlprojError(f"the container could not start: {reason(exc)}") from None
        return cls(api, container, launch.process.log_path)

    def _follow(self, log_path: Path) -> None:
        """Append the container's output to the log until the stream ends; its exit code is read by
        another thread meanwhile. An engine whose log stream does not end when the container has
        exited (Podman, at times) gets LOG_GRACE seconds, then the stream is closed."""
        stream: Any = None
        ended = threading.Event()
        try:
            stream = self.container.logs(stream=True, follow=True)
            waiter = threading.Thread(target=self._exit_code, args=(stream, ended), daemon=True)
            waiter.start()
            with log_path.open("ab") as log:
                for chunk in stream:
                    log.write(chunk)
                    log.flush()
            ended.set()
            waiter.join()
        except Exception:  # noqa: BLE001 - whatever the engine raises, the run ends with exit code 1
            ended.set()
            if self._code is None:
                self._code = 1
        finally:
            self._done.set()

    def _exit_code(self, stream: Any, ended: threading.Event) -> None:
        try:
            self._code = int(self.container.wait().get("StatusCode", 1))
        except Exception:  # noqa: BLE001 - the engine is gone: the run ends with exit code 1
            self._code = 1
        if not ended.wait(LOG_GRACE):  # the container exited, its log stream did not end: close it
            with contextlib.suppress(Exception):
                stream.close()

    def wait(self, timeout: float) -> int | None:
        return self._code if self._done.wait(timeout) else None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(Exception):  # it exited meanwhile
            self.container.kill(signal=int(sig))

    def alive(self) -> bool:
        return not self._done.is_set()

    def release(self) -> None:
        self._done.wait(API_TIMEOUT)
        with contextlib.suppress(Exception):  # removed already
            self.container.remove(force=True)


def remove_containers(run_id: str) -> None:
    """Remove what is left of a run's containers (its supervisor is gone)."""
    try:
        api = client()
    except InputError:
        return
    for container in api.containers.list(all=True, filters={"label": f"{LABEL}={run_id}"}):
        try:
            container.remove(force=True)
        except Exception:  # noqa: S112, BLE001 - gone already, or the engine refuses: nothing left to do
            continue


def local_tracking_volumes(launch: Launch) -> list[str]:
    """A run tracked in a store on this machine (`sqlite:`, `file:`) writes to it from the container
    too: its folder, and the run's artifact folder, mounted at the same paths (MLflow mounts them too)."""
    uri = launch.request.env.get("MLFLOW_TRACKING_URI", "")
    folders: list[Path] = []
    if uri.startswith("sqlite:///") and uri[len("sqlite:///") :].startswith("/"):
        folders.append(Path(uri[len("sqlite:///") :]).parent)
    elif uri.startswith("file:///"):
        folders.append(Path(uri[len("file://") :]))
    artifacts = launch.record.mlflow_artifact_uri or ""
    if artifacts.startswith(("file:///", "/")):
        folder = Path(artifacts.removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder)
    return [f"{folder}:{folder}:rw" for folder in dict.fromkeys(folders) if folder.is_dir()]
