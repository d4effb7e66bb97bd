"""`kubernetes`: runs as Kubernetes Jobs, MLflow's way (`pip install 'mlproj[kubernetes]'`).

The project's docker_env image is built with the project inside (as for `--build-image`) and pushed to
`repository-uri` through the Docker Engine API, while the run is `Preparing`. A `batch/v1` Job is then
made from MLflow's Job template (`kube-job-template-path`, mlproj.backends.kubejob), labelled with the
run's ID, and created through the official client in the kubeconfig's context (`kube-context`, else the
current one, else the cluster the process runs in). The run is `Queued` until a pod of the Job is
scheduled, `Running` until the Job's `Complete` or `Failed` condition, and its pods' output is streamed
into the run's log. `cancel` deletes the Job with foreground propagation (its pods go first); a run whose
supervisor is gone is reconciled from the Job. The Job's ID is `NAMESPACE/NAME`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from mlproj.backends import kubejob
from mlproj.backends.base import Backend, Launch, config_of, text
from mlproj.backends.kubestate import (
    TIMEOUT,
    delete_job,
    delete_pods,
    first_line,
    kube,
    pod_logs,
    query,
    reason,
)
from mlproj.backends.workload import append_missing
from mlproj.errors import InputError, MlprojError
from mlproj.process import RUN_ID_VARIABLE
from mlproj.runs.request import RunRequest

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.backends.workload import JobState, Workload
    from mlproj.envs.base import EnvManager
    from mlproj.runs.envspec import EnvSpec
    from mlproj.runs.record import RunRecord

# mlproj's variables that go into the pod besides the run's own (never credentials: a Job's spec is
# readable by whoever may list Jobs; the template brings them from a Secret, as MLflow's examples do).
CARRIED = ("MLPROJ_PIPELINE_RUN_ID", "MLPROJ_STEP", "MLPROJ_BACKEND", "PYTHONUNBUFFERED")
_CLIENTS: dict[tuple[str | None, str | None], Any] = {}


def api_client(config: Mapping[str, Any], error: type[MlprojError] = InputError) -> Any:
    """A client for the kubeconfig's `kube-context` (else its current context, else the cluster this
    process runs in), one per context per process; an unknown context is an error that lists them."""
    context = config.get("kube-context")
    key = (_kubeconfig(), context)
    if key in _CLIENTS:
        return _CLIENTS[key]
    client, kubeconfig = kube(error)
    try:
        made = kubeconfig.new_client_from_config(config_file=key[0], context=context, persist_config=False)
    except Exception as exc:  # noqa: BLE001 - unreadable YAML, a missing certificate, no such context…
        problem = first_line(exc)
        if context is not None:
            raise error(
                f"backend kubernetes: kube-context {context!r}: {_context_problem(context, problem)}"
            ) from None
        if any(Path(path).expanduser().exists() for path in _kubeconfig_files()):
            raise error(f"backend kubernetes: the kubeconfig cannot be used: {problem}") from None
        loaded = client.Configuration()
        try:
            kubeconfig.load_incluster_config(client_configuration=loaded)
        except kubeconfig.ConfigException:
            raise error(
                f"backend kubernetes: no kubeconfig to use (KUBECONFIG or ~/.kube/config: {problem}) "
                "and not inside a cluster"
            ) from None
        made = client.ApiClient(loaded)
    _CLIENTS[key] = made
    return made


def _kubeconfig() -> str | None:
    """KUBECONFIG as it is now (the client reads it once, when it is imported)."""
    return os.environ.get("KUBECONFIG") or None


def _kubeconfig_files() -> list[str]:
    return (_kubeconfig() or "~/.kube/config").split(os.pathsep)


def _context_problem(context: str, problem: str) -> str:
    """Why the context cannot be used: absent (the contexts there are listed), or its own problem."""
    try:
        contexts, _ = kube()[1].list_kube_config_contexts(config_file=_kubeconfig())
    except Exception as exc:  # noqa: BLE001 - no kubeconfig, or one that cannot be read
        return f"no kubeconfig to find it in ({first_line(exc)})"
    names = sorted(str(c.get("name")) for c in contexts or [] if isinstance(c, dict))
    if context not in names:
        return f"not in the kubeconfig (its contexts: {', '.join(names) or 'none'})"
    return f"cannot be used: {problem}"


def namespace_of(config: Mapping[str, Any], template: Mapping[str, Any]) -> str:
    """`namespace` from the backend config, else the template's, else the context's, else default."""
    given = config.get("namespace") or (template.get("metadata") or {}).get("namespace")
    if given:
        return str(given)
    with contextlib.suppress(Exception):  # no kubeconfig (in a cluster): the default namespace
        contexts, current = kube()[1].list_kube_config_contexts(config_file=_kubeconfig())
        wanted = config.get("kube-context") or (current or {}).get("name")
        for context in contexts or []:
            if context.get("name") == wanted and (context.get("context") or {}).get("namespace"):
                return str(context["context"]["namespace"])
    return "default"


class KubernetesBackend(Backend):
    name = "kubernetes"
    runs_containers = True
    queues = True
    config_fields = {  # noqa: RUF012 - read-only table
        "kube-context": (text, "a context of the kubeconfig"),
        "repository-uri": (kubejob.repository, "the image repository the project's image is pushed to"),
        "kube-job-template-path": (kubejob.template_path, "the path of a Kubernetes Job template (YAML)"),
        "namespace": (kubejob.dns_label, "the namespace the Job is created in"),
        "image_pull_secrets": (kubejob.secret_names, "the Secrets the pod pulls its image with"),
        "resources": (kubejob.resources, "the container's resources: limits and/or requests"),
    }

    def environment_options(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The project goes into its image, which is pushed where the cluster pulls it."""
        return {"build_image": True, "push_to": config.get("repository-uri")}

    def accept(self, manager: EnvManager) -> None:
        if not manager.in_container:
            raise InputError(
                f"backend kubernetes runs a project's docker_env image, and the {manager.name} "
                "environment is not one: give the project a docker_env in its MLproject"
            )

    def check(self, config: Mapping[str, Any], manager: EnvManager, spec: EnvSpec | None) -> None:
        self.accept(manager)
        for key, meaning in (
            ("repository-uri", "the image repository the project's image is pushed to"),
            ("kube-job-template-path", "the Job template to run it with"),
        ):
            if not config.get(key):
                raise InputError(f"backend kubernetes: backend_config needs {key} ({meaning})")
        template = kubejob.load_template(config["kube-job-template-path"])
        docker = (spec.docker if spec is not None else None) or {}
        if docker.get("docker_args"):
            raise InputError(
                "backend kubernetes: -A docker arguments do not apply to a Job: set them in the Job template"
            )
        api = api_client(config)
        namespace = namespace_of(config, template)
        client = kube()[0]
        try:
            client.BatchV1Api(api).list_namespaced_job(namespace, limit=1, _request_timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - refused, unreachable, forbidden: the reason is told
            raise InputError(
                f"backend kubernetes: cannot list Jobs in namespace {namespace} at "
                f"{api.configuration.host}: {reason(exc)}"
            ) from None

    def launch(self, launch: Launch) -> Workload:
        record, container = launch.record, launch.container
        config = dict(launch.request.backend_config)
        if container is None:
            raise MlprojError("backend kubernetes: the run has no image to run")
        try:
            template = kubejob.load_template(config["kube-job-template-path"])
        except InputError as exc:  # changed since the run was submitted
            raise MlprojError(str(exc)) from None
        api = api_client(config, MlprojError)
        namespace = namespace_of(config, template)
        env = {**container.environment, **launch.request.env}
        env.update({name: launch.process.env[name] for name in CARRIED if name in launch.process.env})
        env[RUN_ID_VARIABLE] = record.run_id
        if "MLFLOW_TRACKING_URI" in env and os.environ.get("KUBE_MLFLOW_TRACKING_URI"):
            env["MLFLOW_TRACKING_URI"] = os.environ["KUBE_MLFLOW_TRACKING_URI"]  # MLflow's variable
        spec = launch.request.env_spec
        docker = dict((spec.docker if spec is not None else None) or {})
        job = kubejob.render(
            template,
            run_id=record.run_id,
            project=_project(str(docker.get("build_tag") or "")),
            namespace=namespace,
            image=container.image,
            command=["/bin/sh", "-c", launch.request.command],
            env=env,
            config=config,
        )
        name = job["metadata"]["name"]
        with launch.process.log_path.open("ab") as log:
            if docker.get("volumes"):
                log.write(
                    b"mlproj: docker_env.volumes are not mounted in a Job: set them in the Job template\n"
                )
            log.write(f"{creating_line(namespace, name)}(image {container.image})\n".encode())
        client = kube()[0]
        try:
            client.BatchV1Api(api).create_namespaced_job(namespace, job, _request_timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the cluster's refusal, in its own words
            raise MlprojError(f"backend kubernetes: the cluster refused Job {name}: {reason(exc)}") from None
        from mlproj.backends.kubeworkload import KubeJob

        return KubeJob(record, api, namespace, name, launch.process.log_path)

    def job_state(self, record: RunRecord) -> JobState | None:
        namespace, name = _job_of(record)
        return query(api_client(config_of(record), MlprojError), namespace, name, record.run_id)

    def cancel_job(self, record: RunRecord, grace: float) -> None:
        """The Job deleted (foreground), and its pods given `grace` seconds (the garbage collector would
        give them their own)."""
        namespace, name = _job_of(record)
        api = api_client(config_of(record), MlprojError)
        delete_job(api, namespace, name)
        delete_pods(api, namespace, record.run_id, grace)

    def collect_logs(self, record: RunRecord) -> None:
        if not record.log_path:
            return
        namespace, name = _job_of(record)
        api = api_client(config_of(record), MlprojError)
        with contextlib.suppress(Exception):  # the pods are gone: there is no log to collect
            complete = b"".join(output for _, output in pod_logs(api, namespace, record.run_id))
            log = Path(record.log_path)
            data = log.read_bytes()
            at = data.rfind(creating_line(namespace, name).encode())  # the pods' output follows it
            if at >= 0:
                streamed = data[data.index(b"\n", at) + 1 :]
                if complete.startswith(streamed):
                    append_missing(log, complete, len(streamed))

    def describe_job(self, record: RunRecord) -> str:
        return f"kubernetes Job {record.job_id}"


def creating_line(namespace: str, name: str) -> str:
    """The line of the run's log after which its pods' output comes."""
    return f"mlproj: creating Job {namespace}/{name} "


def _job_of(record: RunRecord) -> tuple[str, str]:
    """The run's Job: as recorded, else (its supervisor died before recording it) as it was named."""
    namespace, _, name = (record.job_id or "").partition("/")
    if name:
        return namespace, name
    config = config_of(record)
    try:
        template = kubejob.load_template(str(config.get("kube-job-template-path")))
    except InputError:
        template = {}
    request = record.request
    spec = request.env_spec if isinstance(request, RunRequest) else None
    built = str(((spec.docker if spec is not None else None) or {}).get("build_tag") or "")
    return namespace_of(config, template), kubejob.job_name(_project(built), record.run_id)


def _project(build_tag: str) -> str:
    """The project's name in a Job's name: that of its built image (`<project>:<content hash>`)."""
    return kubejob.project_slug(build_tag.rpartition(":")[0])
