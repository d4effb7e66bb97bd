"""`docker`: MLflow's docker_env, an environment that is an image.

The environment is described here (the image, built with the project inside for `build_image`, and
pushed to a registry for a backend that pulls it (`push_to`); the
volumes; the variables; MLflow's `-A` docker options) and checked (the image is pulled before the run is
recorded); a backend that runs containers runs it (the local backend, through the Docker Engine API).
Unless the image is built with the project inside, the project folder is mounted as the working
directory (MLflow runs the bare image without the project's code); the run's folder is mounted at
/mlproj/run (`MLPROJ_RUN_DIR`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from mlproj.dockerapi import client, reason
from mlproj.envs.base import BuildStep, Container, EnvManager, PortableEnv
from mlproj.errors import InputError
from mlproj.process import RUN_DIR_VARIABLE
from mlproj.runs.envspec import EnvSpec
from mlproj.spec import Project

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

CODE_DIR = "/mlflow/projects/code"  # where MLflow puts a project in a built image
RUN_DIR = "/mlproj/run"


class DockerEnv(EnvManager):
    name = "docker"
    cached = False  # images are the engine's to cache
    in_container = True

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
            if options.get("push_to"):  # where a cluster pulls it from: the same content tag
                docker_env["push_tag"] = f"{options['push_to']}:{docker_env['build_tag'].rpartition(':')[2]}"
        return EnvSpec(kind="docker", project_dir=str(project.directory), docker=docker_env)

    def empty_spec(self, folder: Path) -> EnvSpec:  # noqa: ARG002 - the EnvManager interface's signature
        raise InputError("a command step runs with docker only with `code` whose MLproject has a docker_env")

    def check(self, spec: EnvSpec) -> None:
        docker_env = _docker(spec)
        for entry in docker_env["environment"]:
            if isinstance(entry, str) and entry not in os.environ:
                raise InputError(f"docker_env.environment: {entry} is not set in this environment")
        ensure_image(client(), docker_env["image"], docker_env.get("auth"))

    def build_steps(self, spec: EnvSpec, target: Path) -> list[BuildStep]:  # noqa: ARG002 - the EnvManager interface's signature
        docker_env = _docker(spec)
        tag = docker_env.get("build_tag")
        if not tag:
            return []
        import sys

        module = (sys.executable, "-m", "mlproj.envs.docker_image")
        steps = []
        if docker_env.get("needs_build"):
            argv = (*module, docker_env["image"], tag, spec.project_dir)
            steps.append(BuildStep(f"docker image {tag}", argv, Path(spec.project_dir)))
        if docker_env.get("push_tag"):  # pushed each time: the registry keeps what it has
            pushed = docker_env["push_tag"]
            steps.append(
                BuildStep(f"docker push {pushed}", (*module, "--push", tag, pushed), Path(spec.project_dir))
            )
        return steps

    def activate(self, target: Path, base_env: Mapping[str, str]) -> dict[str, str]:  # noqa: ARG002 - the EnvManager interface's signature
        return {}

    def container(self, spec: EnvSpec, cwd: Path, run_dir: Path) -> Container:
        """The container the workload runs in: the image (or the one built from it), the project folder
        as its working directory unless the image holds it, the run's folder, and the variables."""
        docker_env = _docker(spec)
        built = bool(docker_env.get("build_tag"))
        environment = {RUN_DIR_VARIABLE: RUN_DIR, "PYTHONUNBUFFERED": "1"}
        for entry in docker_env["environment"]:
            if isinstance(entry, str):
                environment[entry] = os.environ.get(entry, "")
            else:
                environment[entry[0]] = entry[1]
        options = docker_options(docker_env.get("docker_args") or {})
        environment.update(options.pop("environment", {}))
        volumes = [f"{run_dir}:{RUN_DIR}:rw", *docker_env["volumes"], *options.pop("volumes", [])]
        if not built:
            volumes.append(f"{cwd}:{CODE_DIR}:rw")
        return Container(
            image=docker_env.get("push_tag") or (docker_env["build_tag"] if built else docker_env["image"]),
            working_dir=options.pop("working_dir", CODE_DIR),
            volumes=tuple(volumes),
            environment=environment,
            options=options,
        )

    def portable(self, spec: EnvSpec | None) -> PortableEnv | None:  # noqa: ARG002 - the EnvManager interface's signature
        raise InputError("the docker environment is an image: a cluster cannot build it from packages")


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
        raise InputError(f"docker_env.image {image}: {reason(exc)}") from None
    else:
        return
    try:
        if auth:
            api.login(**auth)
        api.images.pull(image)
    except docker.errors.DockerException as exc:
        raise InputError(
            f"docker_env.image {image}: not found locally and cannot be pulled: {reason(exc)}"
        ) from None


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
