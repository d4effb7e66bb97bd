"""What a Kubernetes cluster says of a run's Job, and the Job as the supervisor follows it.

The Job's state in mlproj's words (`query`): `Queued` until one of its pods is scheduled (with the
pod's waiting reason, such as ImagePullBackOff, in the native state), `Running`, then `Finished` or
`Failed` from the Job's `Complete` or `Failed` condition, with the cluster's reason when the exit code
does not say it all. `KubeJob` streams its pods' output into the run's log, oldest pod first, and
deletes the Job (foreground propagation) when the run is stopped.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

from mlproj.backends.kubejob import RUN_LABEL
from mlproj.backends.workload import ClusterWorkload, JobState, append_missing
from mlproj.errors import MlprojError
from mlproj.process import RUN_ID_VARIABLE
from mlproj.runs.status import RunStatus

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.runs.record import RunRecord

TIMEOUT = 30  # seconds for one API request
LOG_WAIT = 10.0  # seconds for the pods' log streams to end once the Job has ended
STREAM_TIMEOUT = 600  # seconds of a pod's silence before its log stream is read again
FOLLOW_POLL = 1.0  # seconds between looks for a pod whose output is to be streamed
API_FAILURES = 30  # failed polls in a row (about a minute) before the API's error ends the watch


def missing_package(error: type[MlprojError]) -> MlprojError:
    return error(
        "backend kubernetes: the kubernetes package is not installed: pip install 'mlproj[kubernetes]'"
    )


def kube(error: type[MlprojError] = MlprojError) -> tuple[Any, Any]:
    """The official client's `client` and `config` modules (untyped here: the API's objects are read
    the way the cluster sends them, with None wherever a field is unset)."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise missing_package(error) from None
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
    client = kube()[0]
    pods = (
        client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=f"{RUN_LABEL}={run_id}", _request_timeout=TIMEOUT)
        .items
    )
    mine = [pod for pod in pods if (pod.metadata.labels or {}).get(RUN_LABEL) == run_id]
    return sorted(mine, key=lambda pod: (_epoch(pod.metadata.creation_timestamp) or 0.0, pod.metadata.name))


def _main_container(pod: Any) -> Any:
    """The status of the container that runs the project (the one given the run's ID)."""
    statuses = (pod.status.container_statuses if pod.status else None) or []
    for container in pod.spec.containers or []:
        if any(var.name == RUN_ID_VARIABLE for var in container.env or []):
            return next((s for s in statuses if s.name == container.name), None)
    return statuses[0] if statuses else None


def _running(pod: Any) -> bool:
    """Whether the pod has been scheduled and its containers started: before that (no node yet, or a
    node still pulling the image), the run waits for the cluster."""
    phase = pod.status.phase if pod.status else None
    return phase in ("Running", "Succeeded", "Failed") or _has_run(pod)


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


def _terminated(pod: Any) -> Any:
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
    ended = _terminated(last) if last is not None else None
    exit_code = ended.exit_code if ended is not None else None
    scheduled = [pod for pod in pods if _running(pod)]
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
    waiting = _waiting(last) if last is not None else None
    if not scheduled:
        return JobState(RunStatus.QUEUED, f"Pending: {waiting}" if waiting else "Pending")
    return JobState(RunStatus.RUNNING, f"Running: {waiting}" if waiting else "Running", started_at=started)


def _epoch(moment: Any) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        from datetime import datetime

        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return float(moment.timestamp())


def delete_job(api: Any, namespace: str, name: str, grace: float | None = None) -> None:
    """Delete the Job, its pods first (foreground propagation); `grace` 0 kills them at once."""
    client = kube()[0]
    options = client.V1DeleteOptions(
        propagation_policy="Foreground",
        grace_period_seconds=None if grace is None else max(0, int(grace)),
    )
    try:
        client.BatchV1Api(api).delete_namespaced_job(name, namespace, body=options, _request_timeout=TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - gone already is what was wanted; the rest is told
        if not is_missing(exc):
            raise MlprojError(
                f"backend kubernetes: cannot delete Job {namespace}/{name}: {reason(exc)}"
            ) from None


def pod_logs(api: Any, namespace: str, run_id: str) -> list[tuple[str, str]]:
    """Each of the run's pods that has run, with its whole output, oldest first."""
    return [
        (pod.metadata.name, attempt_line(pod.metadata.name, index) + read_log(api, namespace, pod))
        for index, pod in enumerate(run_pods(api, namespace, run_id))
        if _has_run(pod)
    ]


def read_log(api: Any, namespace: str, pod: Any, **options: Any) -> Any:
    """The output of the pod's container that runs the project: all of it, or (`follow`) a stream."""
    options.setdefault("_request_timeout", TIMEOUT)
    answer = (
        kube()[0]
        .CoreV1Api(api)
        .read_namespaced_pod_log(pod.metadata.name, namespace, container=_main_container(pod).name, **options)
    )
    return answer if options.get("follow") else str(answer)


def _has_run(pod: Any) -> bool:
    main = _main_container(pod)
    return main is not None and main.state is not None and bool(main.state.running or main.state.terminated)


def attempt_line(pod: str, index: int) -> str:
    """What precedes a retried pod's output in the run's log."""
    return f"mlproj: pod {pod} (attempt {index + 1})\n" if index else ""


class KubeJob(ClusterWorkload):
    """A Job whose pods' output a thread streams into the run's log."""

    def __init__(self, record: RunRecord, api: Any, namespace: str, name: str, log_path: Path) -> None:
        super().__init__(f"kubernetes Job {namespace}/{name}", record, f"{namespace}/{name}", poll=1.0)
        self.api = api
        self.namespace = namespace
        self.name = name
        self.log_path = log_path
        self.deleted = False
        self._failures = 0  # API errors in a row
        self.written: dict[str, int] = {}  # bytes of each pod's output (its attempt line included) in the log
        self.ended: set[str] = set()  # pods whose whole output is in the log
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._tail = threading.Thread(target=self._follow, name=f"kubernetes-logs-{name}", daemon=True)
        self._tail.start()

    def fetch_state(self) -> JobState | None:
        """The Job's state; while the API fails (a restart of the API server, a network blip), the
        last one known, for up to API_FAILURES polls in a row."""
        try:
            found = query(self.api, self.namespace, self.name, self.record.run_id, deleted=self.deleted)
        except MlprojError:
            self._failures += 1
            if self.state is None or self._failures >= API_FAILURES:
                raise
            return self.state
        self._failures = 0
        return found

    def _follow(self) -> None:
        """Stream each pod's output as it runs, one pod after another (a Job retried has several). A
        stream that ends while its pod still runs (a dropped connection, a read timeout) is followed
        up by reading the pod's whole log until the pod has ended."""
        while not self._closed.is_set():
            with contextlib.suppress(Exception):  # the pods went, or the API blinked: `release` catches up
                for index, pod in enumerate(run_pods(self.api, self.namespace, self.record.run_id)):
                    name = pod.metadata.name
                    if name in self.ended or not _has_run(pod):
                        continue
                    if name not in self.written:
                        self._write(name, attempt_line(name, index).encode())
                        self._stream(pod)
                    else:
                        self._catch_up(
                            name, attempt_line(name, index) + read_log(self.api, self.namespace, pod)
                        )
                    again = (
                        kube()[0]
                        .CoreV1Api(self.api)
                        .read_namespaced_pod(name, self.namespace, _request_timeout=TIMEOUT)
                    )
                    if _terminated(again) is not None:
                        self.ended.add(name)
            self._closed.wait(FOLLOW_POLL)

    def _stream(self, pod: Any) -> None:
        response = read_log(
            self.api,
            self.namespace,
            pod,
            follow=True,
            _preload_content=False,
            _request_timeout=(TIMEOUT, STREAM_TIMEOUT),
        )
        try:
            for chunk in response.stream(4096):
                if not self._write(pod.metadata.name, chunk):
                    return
        finally:
            response.release_conn()

    def _catch_up(self, pod: str, complete: str) -> None:
        with self._lock:
            if not self._closed.is_set():
                have = self.written.get(pod, 0)
                append_missing(self.log_path, complete, have)
                self.written[pod] = max(have, len(complete.encode("utf-8")))

    def _write(self, pod: str, data: bytes) -> bool:
        with self._lock:
            if self._closed.is_set():
                return False
            with self.log_path.open("ab") as log:
                log.write(data)
            self.written[pod] = self.written.get(pod, 0) + len(data)
            return True

    def stop_job(self, sig: int) -> None:
        """Delete the Job (its pods get their grace period); on the ladder's last rung, at once."""
        self.deleted = True
        with contextlib.suppress(MlprojError):  # told by the next state read
            delete_job(self.api, self.namespace, self.name, 0 if sig == signal.SIGKILL else None)

    def release(self) -> None:
        """The Job has ended: let the streams finish, then add what they missed from each pod's log."""
        try:
            ran = {
                pod.metadata.name
                for pod in run_pods(self.api, self.namespace, self.record.run_id)
                if _has_run(pod)
            }
        except Exception:  # noqa: BLE001 - the pods are gone: nothing to wait for
            ran = set()
        deadline = time.monotonic() + LOG_WAIT
        while self._tail.is_alive() and time.monotonic() < deadline and not ran <= self.ended:
            self._tail.join(0.2)
        with self._lock:
            self._closed.set()
            with contextlib.suppress(Exception):  # the pods are gone: the log has what was streamed
                for pod, complete in pod_logs(self.api, self.namespace, self.record.run_id):
                    append_missing(self.log_path, complete, self.written.get(pod, 0))
