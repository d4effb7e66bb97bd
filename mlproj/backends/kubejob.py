"""The Kubernetes Job a run becomes: MLflow's Job template, checked and filled in.

A template is a `batch/v1` Job (MLflow's `kube-job-template-path`) whose container that runs the project
says so with MLflow's placeholders: its `image` is "{replaced with URI of Docker image created during
Project execution}" and its `command` is "{replaced with MLflow Project entry point command}". Every
string "{replaced with MLflow Project name}" becomes the project's name. The run's variables are appended
to that container's `env` (an entry that is MLflow's "{appended with …}" note is dropped). mlproj adds its
labels (the run's ID), `namespace`, `image_pull_secrets` and `resources` from the backend config, and an
emptyDir at /mlproj/run (`MLPROJ_RUN_DIR`). Nothing here talks to a cluster: this is plain data.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path

from mlproj.errors import InputError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

NAME_PLACEHOLDER = "{replaced with MLflow Project name}"
IMAGE_PLACEHOLDER = "{replaced with URI of Docker image created during Project execution}"
COMMAND_PLACEHOLDER = "{replaced with MLflow Project entry point command}"
ENV_NOTE = re.compile(r"^\{appended with .*\}$")  # MLflow's documented `env: ["{appended with …}"]`
RUN_LABEL = "mlproj/run-id"
MANAGED_BY = ("app.kubernetes.io/managed-by", "mlproj")
RUN_DIR_VOLUME = "mlproj-run"
RUN_DIR = "/mlproj/run"
MIN_TTL = 60  # seconds a finished Job must stay for its end to be read (ttlSecondsAfterFinished)
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # an RFC 1123 label: names, namespaces
_QUANTITY = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]i?|Ki)?")
_REPOSITORY = re.compile(
    r"([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
)


def dns_label(key: str, value: Any) -> str:  # noqa: ARG001 - a Validator's signature
    shown = str(value).strip()
    if isinstance(value, bool) or len(shown) > 63 or not _LABEL.fullmatch(shown):
        raise ValueError("expected a Kubernetes name: lowercase letters, digits and '-', at most 63")
    return shown


def repository(key: str, value: Any) -> str:  # noqa: ARG001 - a Validator's signature
    shown = str(value).strip()
    if isinstance(value, bool) or not _REPOSITORY.fullmatch(shown):
        raise ValueError(
            "expected an image repository without a tag, such as registry.example.com/team/project"
        )
    return shown


def secret_names(key: str, value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ValueError("expected a list of Secret names")
    return [dns_label(key, name) for name in names]


def resources(key: str, value: Any) -> dict[str, dict[str, str]]:  # noqa: ARG001 - a Validator's signature
    """`{"limits": {"memory": "512Mi"}, "requests": {"cpu": 1}}`: Kubernetes' container resources."""
    if not isinstance(value, dict) or not value:
        raise ValueError("expected a mapping with limits and/or requests")
    result: dict[str, dict[str, str]] = {}
    for part, amounts in value.items():
        if part not in ("limits", "requests"):
            raise ValueError(f"unknown key {part!r} (expected limits and/or requests)")
        if not isinstance(amounts, dict):
            raise ValueError(f"{part}: expected a mapping of resource → quantity")
        for name, amount in amounts.items():
            shown = str(amount).strip()
            if isinstance(amount, bool) or not isinstance(amount, (str, int, float)):
                raise ValueError(f"{part}.{name}: expected a quantity such as 2, 500m or 512Mi")
            if not _QUANTITY.fullmatch(shown):
                raise ValueError(f"{part}.{name}={amount!r}: expected a quantity such as 2, 500m or 512Mi")
        result[part] = {str(name): str(amount).strip() for name, amount in amounts.items()}
    return result


def template_path(key: str, value: Any) -> str:  # noqa: ARG001 - a Validator's signature
    """The template's absolute path (a relative one is from the folder mlproj runs in, as MLflow's)."""
    if isinstance(value, bool) or not isinstance(value, str) or not value.strip():
        raise ValueError("expected the path of a Job template (YAML)")
    return str(Path(value.strip()).expanduser().absolute())


def load_template(path: str) -> dict[str, Any]:
    """The Job template at `path`, checked: an input error names the file and what is wrong."""
    from mlproj.yamlio import load_yaml_file

    where = f"kube-job-template-path {path}"
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{where}: no such file (expected a Kubernetes Job in YAML)")
    try:
        job = load_yaml_file(file)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if not isinstance(job, dict):
        raise InputError(f"{where}: expected a Kubernetes Job (a mapping), got {type(job).__name__}")
    if job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
        raise InputError(
            f"{where}: expected apiVersion: batch/v1 and kind: Job, "
            f"got {job.get('apiVersion')!r} and {job.get('kind')!r}"
        )
    pod = _at(job, ("spec", "template", "spec"))
    containers = pod.get("containers") if isinstance(pod, dict) else None
    if not isinstance(containers, list) or not containers or not all(isinstance(c, dict) for c in containers):
        raise InputError(f"{where}: spec.template.spec.containers: expected a list of containers")
    index = project_container(containers)
    if index is None:
        raise InputError(
            f'{where}: no container has image: "{IMAGE_PLACEHOLDER}" '
            "(MLflow's placeholder for the project's image)"
        )
    command = containers[index].get("command")
    if command not in (COMMAND_PLACEHOLDER, [COMMAND_PLACEHOLDER]):
        raise InputError(
            f"{where}: containers[{index}].command: expected "
            f"[\"{COMMAND_PLACEHOLDER}\"] (MLflow's placeholder for the entry point's command)"
        )
    _check_shapes(job, containers[index], where, f"spec.template.spec.containers[{index}]")
    restart = pod.get("restartPolicy")
    if restart not in (None, "Never"):
        raise InputError(
            f"{where}: spec.template.spec.restartPolicy: expected Never (a retry is a pod of its own, "
            f"whose output mlproj streams; the Job's backoffLimit says how many), got {restart!r}"
        )
    ttl = _at(job, ("spec", "ttlSecondsAfterFinished"))
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < MIN_TTL):
        raise InputError(
            f"{where}: spec.ttlSecondsAfterFinished: expected at least {MIN_TTL} (the cluster must keep "
            f"the Job until mlproj has read how it ended), got {ttl!r}"
        )
    return job


# Where render() adds to the template, the shape it needs there (absent is fine).
_SHAPES = (
    ("metadata", dict),
    ("metadata.labels", dict),
    ("spec", dict),
    ("spec.template", dict),
    ("spec.template.metadata", dict),
    ("spec.template.metadata.labels", dict),
    ("spec.template.spec.volumes", list),
    ("spec.template.spec.imagePullSecrets", list),
)
_CONTAINER_SHAPES = (("env", list), ("resources", dict), ("volumeMounts", list))


def _check_shapes(job: dict[str, Any], container: dict[str, Any], where: str, container_key: str) -> None:
    found: list[tuple[str, Any, type]] = [
        (key, _at(job, tuple(key.split("."))), kind) for key, kind in _SHAPES
    ]
    found += [(f"{container_key}.{key}", container.get(key), kind) for key, kind in _CONTAINER_SHAPES]
    resources = container.get("resources")
    if isinstance(resources, dict):
        found += [
            (f"{container_key}.resources.{part}", resources.get(part), dict)
            for part in ("limits", "requests")
        ]
    for key, value, kind in found:
        if value is not None and not isinstance(value, kind):
            expected = "a mapping" if kind is dict else "a list"
            raise InputError(f"{where}: {key}: expected {expected}, got {type(value).__name__}")


def project_container(containers: list[Any]) -> int | None:
    for index, container in enumerate(containers):
        if container.get("image") == IMAGE_PLACEHOLDER:
            return index
    return None


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def job_name(project: str, run_id: str) -> str:
    """`<project>-<run id>`: at most 63 characters (a Job's name is a label of its pods)."""
    return f"{project[: 63 - 1 - len(run_id)]}-{run_id}".strip("-")


def project_slug(name: str | None) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")
    return slug[:30].strip("-") or "mlproj"


def render(
    template: Mapping[str, Any],
    *,
    run_id: str,
    project: str,
    namespace: str,
    image: str,
    command: list[str],
    env: Mapping[str, str],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The Job to create: the template with its placeholders replaced and mlproj's settings added."""
    job: dict[str, Any] = _replace_names(copy.deepcopy(dict(template)), project)
    metadata = job.setdefault("metadata", {})
    metadata["name"] = job_name(project, run_id)
    metadata["namespace"] = namespace
    metadata["labels"] = {**(metadata.get("labels") or {}), RUN_LABEL: run_id, MANAGED_BY[0]: MANAGED_BY[1]}
    pod_template = job["spec"]["template"]
    pod_metadata = pod_template.setdefault("metadata", {}) or {}
    pod_template["metadata"] = pod_metadata
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), RUN_LABEL: run_id}
    pod = pod_template["spec"]
    pod.setdefault("restartPolicy", "Never")
    containers = pod["containers"]
    index = project_container(containers)
    if index is None:  # pragma: no cover - load_template refuses such a template
        raise InputError("the Job template has no container for the project")
    container = containers[index]
    container["image"] = image
    container["command"] = list(command)
    kept = [entry for entry in container.get("env") or [] if not _is_note(entry)]
    given = {entry.get("name") for entry in kept if isinstance(entry, dict)}
    container["env"] = [*kept, *({"name": k, "value": v} for k, v in env.items() if k not in given)]
    if config.get("resources"):  # each of limits and requests: the template's, with the config's over it
        merged = dict(container.get("resources") or {})
        for part, amounts in config["resources"].items():
            merged[part] = {**(merged.get(part) or {}), **amounts}
        container["resources"] = merged
    container["volumeMounts"] = [
        *(container.get("volumeMounts") or []),
        {"name": RUN_DIR_VOLUME, "mountPath": RUN_DIR},
    ]
    pod["volumes"] = [*(pod.get("volumes") or []), {"name": RUN_DIR_VOLUME, "emptyDir": {}}]
    if config.get("image_pull_secrets"):
        pod["imagePullSecrets"] = [
            *(pod.get("imagePullSecrets") or []),
            *({"name": name} for name in config["image_pull_secrets"]),
        ]
    return job


def _is_note(entry: Any) -> bool:
    return isinstance(entry, str) and bool(ENV_NOTE.match(entry.strip()))


def _replace_names(data: Any, project: str) -> Any:
    if isinstance(data, str):
        return project if data == NAME_PLACEHOLDER else data
    if isinstance(data, dict):
        return {key: _replace_names(value, project) for key, value in data.items()}
    if isinstance(data, list):
        return [_replace_names(item, project) for item in data]
    return data
