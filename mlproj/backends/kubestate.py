"""What a Kubernetes cluster says of a run's Job and its pods (mlproj.backends.kubeworkload follows them).

The Job's state in mlproj's words (`query`): `Queued` until one of its pods is scheduled (with the
pod's phase and waiting reason, such as `Pending: ImagePullBackOff`, as the native state), `Running`,
then `Finished` or `Failed` from the Job's `Complete` or `Failed` condition, with the cluster's reason
when the exit code does not say it all.
"""

from __future__ import annotations

import contextlib

from mlproj.backends.kubejob import RUN_LABEL
from mlproj.backends.workload import JobState
from mlproj.errors import MlprojError
from mlproj.process import RUN_ID_VARIABLE
from mlproj.runs.status import RunStatus

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any


TIMEOUT = 30  # seconds for one API request


def kube(error: type[MlprojError] = MlprojError) -> tuple[Any, Any]:
    """The official client's `client` and `config` modules (untyped here: the API's objects are read
    the way the cluster sends them, with None wherever a field is unset)."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise error(
            "backend kubernetes: the kubernetes package is not installed: pip install 'mlproj[kubernetes]'"
        ) from None
    return client, config


def reason(exc: BaseException) -> str:
    """The API server's own message for a refusal (its Status), else the error's first line."""
    body = getattr(exc, "body", None)
    if body:
        import json

        with contextlib.suppress(ValueError, TypeError):
            status = json.loads(body)
            if isinstance(status, dict) and status.get("message"):
                return (
                    f"{status.get('reason') or getattr(exc, 'status', '')}: {first_line(status['message'])}"
                )
    status_code = getattr(exc, "status", None)
    if status_code:
        return f"{status_code} {getattr(exc, 'reason', '') or ''}".strip()
    return first_line(exc)


def first_line(exc: BaseException | str) -> str:
    message = str(exc).strip()
    return message.splitlines()[0][:300] if message else type(exc).__name__


def is_missing(exc: BaseException) -> bool:
    return getattr(exc, "status", None) == 404


def run_pods(api: Any, namespace: str, run_id: str) -> list[Any]:
    """The run's pods, oldest first (a Job retried has several)."""
    try:
        pods = (
            kube()[0]
            .CoreV1Api(api)
            .list_namespaced_pod(namespace, label_selector=f"{RUN_LABEL}={run_id}", _request_timeout=TIMEOUT)
            .items
        )
    except Exception as exc:  # noqa: BLE001 - refused or unreachable: told in one line
        raise MlprojError(
            f"backend kubernetes: cannot list the pods of run {run_id}: {reason(exc)}"
        ) from None
    mine = [pod for pod in pods if (pod.metadata.labels or {}).get(RUN_LABEL) == run_id]
    return sorted(mine, key=lambda pod: (_epoch(pod.metadata.creation_timestamp) or 0.0, pod.metadata.name))


def _main_container(pod: Any) -> Any:
    """The status of the container that runs the project (the one given the run's ID)."""
    statuses = (pod.status.container_statuses if pod.status else None) or []
    for container in pod.spec.containers or []:
        if any(var.name == RUN_ID_VARIABLE for var in container.env or []):
            return next((s for s in statuses if s.name == container.name), None)
    return statuses[0] if statuses else None


def _scheduled(pod: Any) -> bool:
    """Whether the scheduler has put the pod on a node (design.md §13: Queued until then)."""
    status = pod.status
    if pod.spec.node_name or (status is not None and status.phase in ("Running", "Succeeded", "Failed")):
        return True
    conditions = (status.conditions if status is not None else None) or []
    return any(c.type == "PodScheduled" and c.status == "True" for c in conditions)


def _started_at(pod: Any) -> float | None:
    """When the project's container started (else the pod, as the kubelet saw it)."""
    main = _main_container(pod)
    state = main.state if main is not None else None
    when = state.running.started_at if state is not None and state.running else None
    when = when or (state.terminated.started_at if state is not None and state.terminated else None)
    return _epoch(when) or _epoch(pod.status.start_time if pod.status else None)


def _waiting(pod: Any) -> str | None:
    main = _main_container(pod)
    waiting = main.state.waiting if main is not None and main.state is not None else None
    return (
        waiting.reason if waiting is not None and waiting.reason not in (None, "ContainerCreating") else None
    )


def terminated(pod: Any) -> Any:
    main = _main_container(pod)
    return main.state.terminated if main is not None and main.state is not None else None


def query(api: Any, namespace: str, name: str, run_id: str, *, deleted: bool = False) -> JobState | None:
    """The Job's state in mlproj's words: None when the cluster does not know it (or, once `deleted`
    by us, Canceled)."""
    client = kube()[0]
    try:
        job = client.BatchV1Api(api).read_namespaced_job(name, namespace, _request_timeout=TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - a missing Job is told by its 404, the rest is an error
        if is_missing(exc):
            return JobState(RunStatus.CANCELED, "Deleted", reason="the Job was deleted") if deleted else None
        raise MlprojError(f"backend kubernetes: cannot read Job {namespace}/{name}: {reason(exc)}") from None
    status = job.status
    true = {c.type: c for c in (status.conditions if status else None) or [] if c.status == "True"}
    pods = run_pods(api, namespace, run_id)
    last = pods[-1] if pods else None
    ended = terminated(last) if last is not None else None
    exit_code = ended.exit_code if ended is not None else None
    scheduled = [pod for pod in pods if _scheduled(pod)]
    started = (
        (_started_at(scheduled[0]) or _epoch(status.start_time if status else None)) if scheduled else None
    )
    if "Complete" in true:
        return JobState(RunStatus.FINISHED, "Complete", 0, None, started, _epoch(status.completion_time))
    if "Failed" in true:
        failed = true["Failed"]
        why = None
        if ended is not None and ended.reason not in (None, "Completed", "Error"):
            why = f"Kubernetes: the container ended: {ended.reason} (exit code {ended.exit_code})"
        elif not exit_code or failed.reason != "BackoffLimitExceeded":
            why = f"Kubernetes: {failed.reason}: {first_line(failed.message or '')}".rstrip(": ")
        ended_at = _epoch(failed.last_transition_time)
        return JobState(RunStatus.FAILED, "Failed", exit_code or None, why, started, ended_at)
    if job.metadata.deletion_timestamp is not None:
        return JobState(
            RunStatus.RUNNING if scheduled else RunStatus.QUEUED, "Terminating", started_at=started
        )
    if "Suspended" in true:
        return JobState(RunStatus.QUEUED, "Suspended")
    # The pod's own phase and why its container waits (ImagePullBackOff…): the cluster's words.
    phase = str((last.status.phase if last is not None and last.status is not None else None) or "Pending")
    waiting = _waiting(last) if last is not None else None
    native = f"{phase}: {waiting}" if waiting else phase
    if not scheduled:
        return JobState(RunStatus.QUEUED, native)
    return JobState(RunStatus.RUNNING, native, started_at=started)


def _epoch(moment: Any) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        from datetime import datetime

        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return float(moment.timestamp())


def delete_job(api: Any, namespace: str, name: str) -> None:
    """Delete the Job, its pods first (foreground propagation: the Job goes once they are gone)."""
    client = kube()[0]
    options = client.V1DeleteOptions(propagation_policy="Foreground")
    try:
        client.BatchV1Api(api).delete_namespaced_job(name, namespace, body=options, _request_timeout=TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - gone already is what was wanted; the rest is told
        if not is_missing(exc):
            raise MlprojError(
                f"backend kubernetes: cannot delete Job {namespace}/{name}: {reason(exc)}"
            ) from None


def delete_pods(api: Any, namespace: str, run_id: str, grace: float) -> None:
    """Delete the run's pods with `grace` seconds to stop (0: at once). A Job's deletion leaves them to
    the garbage collector, with their own grace period, whatever the Job's deletion asked."""
    core = kube()[0].CoreV1Api(api)
    for pod in run_pods(api, namespace, run_id):
        try:
            core.delete_namespaced_pod(
                pod.metadata.name,
                namespace,
                grace_period_seconds=max(0, int(grace)),
                _request_timeout=TIMEOUT,
            )
        except Exception as exc:  # noqa: BLE001 - gone already is what was wanted; the rest is told
            if not is_missing(exc):
                raise MlprojError(
                    f"backend kubernetes: cannot delete pod {pod.metadata.name}: {reason(exc)}"
                ) from None


def pod_logs(api: Any, namespace: str, run_id: str) -> list[tuple[str, bytes]]:
    """Each of the run's pods that has run, with its whole output (as the cluster keeps it now, its
    attempt line first), oldest first."""
    found = []
    for index, pod in enumerate(run_pods(api, namespace, run_id)):
        if has_run(pod):
            with contextlib.suppress(Exception):  # this pod's log is gone: the others are still told
                found.append(
                    (
                        pod.metadata.name,
                        attempt_line(pod.metadata.name, index).encode() + whole_log(api, namespace, pod),
                    )
                )
    return found


def read_log(api: Any, namespace: str, pod: Any, **options: Any) -> Any:
    """The response that carries the output of the pod's container that runs the project (bytes:
    a program may write anything)."""
    options.setdefault("_request_timeout", TIMEOUT)
    return (
        kube()[0]
        .CoreV1Api(api)
        .read_namespaced_pod_log(
            pod.metadata.name,
            namespace,
            container=_main_container(pod).name,
            _preload_content=False,
            **options,
        )
    )


def whole_log(api: Any, namespace: str, pod: Any) -> bytes:
    response = read_log(api, namespace, pod)
    try:
        return bytes(response.data)
    finally:
        response.release_conn()


def has_run(pod: Any) -> bool:
    main = _main_container(pod)
    return main is not None and main.state is not None and bool(main.state.running or main.state.terminated)


def attempt_line(pod: str, index: int) -> str:
    """What precedes a retried pod's output in the run's log."""
    return f"mlproj: pod {pod} (attempt {index + 1})\n" if index else ""
