"""`docker`: MLflow's docker_env, run through the Docker Engine API (the `docker` package).

The image runs the entry point's command with `sh -c`, in a container labelled with the run ID. Unless
the image is built with the project inside (`build_image`), the project folder is mounted as the
working directory (MLflow runs the bare image without the project's code). The run's folder is
mounted at /mlproj/run (`MLPROJ_RUN_DIR`). Containers are removed once their exit code has been read.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlproj.envs.base import BuildStep, EnvManager
from mlproj.envs.envspec import EnvSpec
from mlproj.errors import InputError, MlprojError
from mlproj.process import RUN_DIR_VARIABLE, RUN_ID_VARIABLE, ExecRequest
from mlproj.spec import Project
from mlproj.workload import Workload

LABEL = "mlproj.run_id"
CODE_DIR = "/mlflow/projects/code"  # where MLflow puts a project in a built image
RUN_DIR = "/mlproj/run"
API_TIMEOUT = 60
# A fixed API version spares a round trip to negotiate one (half a second on some engines); 1.41 is
# spoken by Docker 20.10 and later and by Podman 3 and later. DOCKER_API_VERSION overrides it.
API_VERSION = "1.41"
_CLIENTS: dict[str, Any] = {}


def client() -> Any:
    """A client for the Docker API at DOCKER_HOST (or the default socket); input errors if none answers."""
    try:
        import docker
    except ImportError:
        raise InputError(
            "docker_env projects need the docker package: pip install 'mlproj[docker]'"
        ) from None
    where = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
    if where in _CLIENTS:
        return _CLIENTS[where]
    version = os.environ.get("DOCKER_API_VERSION") or API_VERSION
    try:
        api = docker.from_env(timeout=API_TIMEOUT, version=version)
        api.ping()
    except Exception as exc:  # DockerException, or the transport's own (requests) connection errors
        raise InputError(f"no Docker API answers at {where}: {_reason(exc)}") from None
    _CLIENTS[where] = api
    return api


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text.strip().splitlines()[-1][:300] if text.strip() else type(exc).__name__


class DockerEnv(EnvManager):
    name = "docker"
    cached = False  # images are the engine's to cache
    launches_itself = True  # a container through the Engine API, so the local backend only

    def load_spec(self, project: Project, options: Mapping[str, Any]) -> EnvSpec:
        """The docker_env of MLproject with the run's docker options; the image tag when it is built."""
        if project.docker_env is None:
            raise InputError(
                f"--env-manager docker: {project.spec_file or project.directory} has no docker_env"
            )
        docker_env: dict[str, Any] = {
            **project.docker_env,
            "docker_args": dict(options.get("docker_args") or {}),
        }
        docker_options(docker_env["docker_args"])  # unknown or bad arguments are input errors now
        docker_env["auth"] = options.get("docker_auth")
        if options.get("build_image"):
            from mlproj.envs.docker_image import content_tag, image_exists

            docker_env["build_tag"] = content_tag(project, docker_env["image"])
            docker_env["needs_build"] = not image_exists(client(), docker_env["build_tag"])
        return EnvSpec(kind="docker", project_dir=str(project.directory), docker=docker_env)

    def check(self, spec: EnvSpec) -> None:
        docker_env = _docker(spec)
        for entry in docker_env["environment"]:
            if isinstance(entry, str) and entry not in os.environ:
                raise InputError(f"docker_env.environment: {entry} is not set in this environment")
        ensure_image(client(), docker_env["image"], docker_env.get("auth"))

    def build_steps(self, spec: EnvSpec, target: Path) -> list[BuildStep]:
        docker_env = _docker(spec)
        tag = docker_env.get("build_tag")
        if not tag or not docker_env.get("needs_build"):
            return []
        import sys

        argv = (sys.executable, "-m", "mlproj.envs.docker_image", docker_env["image"], tag, spec.project_dir)
        return [BuildStep(f"docker image {tag}", argv, Path(spec.project_dir))]

    def activate(self, target: Path, base_env: Mapping[str, str]) -> dict[str, str]:
        return {}

    def launch(self, run_id: str, request: ExecRequest, run_request: Mapping[str, Any]) -> Workload:
        spec = EnvSpec.from_dict(dict(run_request["env_spec"]))
        return ContainerWorkload.start(run_id, request, _docker(spec))

    def cleanup(self, run_id: str) -> None:
        try:
            api = client()
        except InputError:
            return
        for container in api.containers.list(all=True, filters={"label": f"{LABEL}={run_id}"}):
            try:
                container.remove(force=True)
            except Exception:  # noqa: S112 - gone already, or the engine refuses: nothing left to do
                continue


def _docker(spec: EnvSpec) -> dict[str, Any]:
    if spec.docker is None:
        raise InputError("--env-manager docker needs a docker_env in MLproject")
    return dict(spec.docker)


def ensure_image(api: Any, image: str, auth: Mapping[str, str] | None) -> None:
    """The image is present locally, or is pulled now; an input error names it otherwise."""
    import docker

    try:
        api.images.get(image)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise InputError(f"docker_env.image {image}: {_reason(exc)}") from None
    else:
        return
    try:
        if auth:
            api.login(**auth)
        api.images.pull(image)
    except docker.errors.DockerException as exc:
        raise InputError(
            f"docker_env.image {image}: not found locally and cannot be pulled: {_reason(exc)}"
        ) from None


class ContainerWorkload(Workload):
    """A container whose output is appended to the run log by a thread that also reads its exit code."""

    def __init__(self, api: Any, container: Any, log_path: Path) -> None:
        self.api = api
        self.container = container
        self._done = threading.Event()
        self._code: int | None = None
        self._thread = threading.Thread(target=self._follow, args=(log_path,), daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, run_id: str, request: ExecRequest, docker_env: Mapping[str, Any]) -> ContainerWorkload:
        api = client()
        built = bool(docker_env.get("build_tag"))
        image = docker_env["build_tag"] if built else docker_env["image"]
        volumes = [f"{request.log_path.parent}:{RUN_DIR}:rw", *docker_env["volumes"]]
        if not built:
            volumes.append(f"{request.cwd}:{CODE_DIR}:rw")
        environment = {RUN_ID_VARIABLE: run_id, RUN_DIR_VARIABLE: RUN_DIR, "PYTHONUNBUFFERED": "1"}
        for entry in docker_env["environment"]:
            if isinstance(entry, str):
                environment[entry] = os.environ.get(entry, "")
            else:
                environment[entry[0]] = entry[1]
        options: dict[str, Any] = {
            "working_dir": CODE_DIR,
            **docker_options(docker_env.get("docker_args") or {}),
        }
        extra_env = options.pop("environment", {})
        volumes += options.pop("volumes", [])
        container = api.containers.create(
            image,
            ["sh", "-c", request.argv[-1]],
            environment={**environment, **extra_env},
            volumes=volumes,
            labels={LABEL: run_id},
            detach=True,
            **options,
        )
        try:
            container.start()
        except Exception as exc:  # the engine created it but cannot start it (a bad user, a bad mount)
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise MlprojError(f"the container could not start: {_reason(exc)}") from None
        return cls(api, container, request.log_path)

    def _follow(self, log_path: Path) -> None:
        try:
            with log_path.open("ab") as log:
                for chunk in self.container.logs(stream=True, follow=True):
                    log.write(chunk)
                    log.flush()
            self._code = int(self.container.wait().get("StatusCode", 1))
        except Exception:
            self._code = 1
        finally:
            self._done.set()

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


# `-A name=value` (MLflow's docker run arguments) → Docker SDK options.
def docker_options(args: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in args.items():
        key = name.lstrip("-")
        handler = _OPTIONS.get(key)
        if handler is None:
            known = ", ".join(sorted(_OPTIONS))
            raise InputError(f"-A {name}: unknown docker argument (supported: {known})")
        try:
            handler(options, value)
        except ValueError as exc:
            raise InputError(f"-A {name}={value}: {exc}") from None
    return options


def _set(option: str, convert: Any = str) -> Any:
    def apply(options: dict[str, Any], value: str) -> None:
        try:
            options[option] = convert(value)
        except ValueError:
            raise ValueError("not a valid value") from None

    return apply


def _append(option: str) -> Any:
    def apply(options: dict[str, Any], value: str) -> None:
        options.setdefault(option, []).append(value)

    return apply


def _env(options: dict[str, Any], value: str) -> None:
    name, equals, text = value.partition("=")
    options.setdefault("environment", {})[name] = text if equals else os.environ.get(name, "")


def _gpus(options: dict[str, Any], value: str) -> None:
    from docker.types import DeviceRequest

    if value not in ("all", "") and not (value.isdigit() and int(value) > 0):
        raise ValueError("expected `all` or a number of GPUs")
    count = -1 if value in ("all", "") else int(value)
    options["device_requests"] = [DeviceRequest(count=count, capabilities=[["gpu"]])]


_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?[bkmg]?$", re.IGNORECASE)


def _memory(option: str) -> Any:
    def apply(options: dict[str, Any], value: str) -> None:
        if not _MEMORY.match(value.strip()):
            raise ValueError("expected a size such as 512m or 2g (units b, k, m, g)")
        options[option] = value.strip()

    return apply


def _flag(option: str) -> Any:
    def apply(options: dict[str, Any], value: str) -> None:
        options[option] = value.lower() not in ("false", "0", "no")

    return apply


_OPTIONS: dict[str, Any] = {
    "cpus": _set("nano_cpus", lambda v: int(float(v) * 1e9)),
    "memory": _memory("mem_limit"),
    "m": _memory("mem_limit"),
    "shm-size": _memory("shm_size"),
    "user": _set("user"),
    "u": _set("user"),
    "network": _set("network_mode"),
    "ipc": _set("ipc_mode"),
    "hostname": _set("hostname"),
    "h": _set("hostname"),
    "name": _set("name"),
    "platform": _set("platform"),
    "workdir": _set("working_dir"),
    "w": _set("working_dir"),
    "privileged": _flag("privileged"),
    "init": _flag("init"),
    "cap-add": _append("cap_add"),
    "device": _append("devices"),
    "volume": _append("volumes"),
    "v": _append("volumes"),
    "env": _env,
    "e": _env,
    "gpus": _gpus,
}
