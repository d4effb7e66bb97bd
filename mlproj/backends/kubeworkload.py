"""A run's Kubernetes Job as its supervisor follows it: polled for its state, its pods' output streamed
into the run's log, deleted when the run is stopped.

Each pod's output is streamed while it runs, oldest pod first (a retried Job has several; each pod
after the first is introduced by a line `mlproj: pod NAME (attempt N)`). A stream that ends while its
pod still runs (a dropped connection, a long silence) is opened again and what the log already has is
skipped, once the bytes skipped are seen to end as the log's do; a log that no longer matches (rotated
by the kubelet) is not guessed at: a line says where the rest is. The container of a pod never
restarts in place (the template's `restartPolicy` is `Never`: mlproj.backends.kubejob), so a pod's log
is one program's output.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

from mlproj.backends.kubestate import (
    TIMEOUT,
    attempt_line,
    delete_job,
    delete_pods,
    has_run,
    kube,
    query,
    read_log,
    run_pods,
    terminated,
    whole_log,
)
from mlproj.backends.workload import ClusterWorkload
from mlproj.errors import MlprojError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from mlproj.backends.workload import JobState
    from mlproj.runs.record import RunRecord

LOG_WAIT = 10.0  # seconds for the pods' log streams to end once the Job has ended
STREAM_TIMEOUT = 600  # seconds of a pod's silence before its log stream is opened again
FOLLOW_POLL = 1.0  # seconds between looks for a pod whose output is to be streamed
API_GRACE = 60.0  # seconds the API may fail in a row (a restart of the API server) before the watch ends
TAIL = 256  # bytes of each pod's output kept to check that a log read again lines up


class KubeJob(ClusterWorkload):
    """A Job whose pods' output a thread streams into the run's log."""

    def __init__(self, record: RunRecord, api: Any, namespace: str, name: str, log_path: Path) -> None:
        super().__init__(f"kubernetes Job {namespace}/{name}", record, f"{namespace}/{name}", poll=1.0)
        self.api = api
        self.namespace = namespace
        self.name = name
        self.log_path = log_path
        self.deleted = False
        self._failing_since: float | None = None
        self.written: dict[str, int] = {}  # bytes of each pod's own output in the log
        self.tails: dict[str, bytes] = {}  # the last TAIL bytes of each
        self.ended: set[str] = set()  # pods whose output is all in the log (or said to be elsewhere)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._tail = threading.Thread(target=self._follow, name=f"kubernetes-logs-{name}", daemon=True)
        self._tail.start()

    def fetch_state(self) -> JobState | None:
        """The Job's state; while the API fails (an API server restarting, a network blip), the last one
        known, for up to API_GRACE seconds."""
        try:
            found = query(self.api, self.namespace, self.name, self.record.run_id, deleted=self.deleted)
        except MlprojError:
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            if self.state is None or now - self._failing_since >= API_GRACE:
                raise
            return self.state
        self._failing_since = None
        return found

    # --- the pods' output --------------------------------------------------------------------------

    def _follow(self) -> None:
        while not self._closed.is_set():
            try:
                pods = run_pods(self.api, self.namespace, self.record.run_id)
            except MlprojError:
                pods = []
            for index, pod in enumerate(pods):
                name = pod.metadata.name
                if name in self.ended or not has_run(pod):
                    continue
                try:
                    if name not in self.written:
                        self.written[name] = 0
                        self._write(name, attempt_line(name, index).encode(), own=False)
                    self._stream(pod)
                    again = (
                        kube()[0]
                        .CoreV1Api(self.api)
                        .read_namespaced_pod(name, self.namespace, _request_timeout=TIMEOUT)
                    )
                    if terminated(again) is not None:
                        self.ended.add(name)
                except Exception:  # noqa: BLE001,S112 - this pod's stream broke: opened again next round
                    continue
            self._closed.wait(FOLLOW_POLL)

    def _stream(self, pod: Any) -> None:
        """Follow the pod's log, skipping what the run's log already has of it."""
        name = pod.metadata.name
        skip, skipped = self.written[name], b""
        response = read_log(
            self.api, self.namespace, pod, follow=True, _request_timeout=(TIMEOUT, STREAM_TIMEOUT)
        )
        try:
            for chunk in response.stream(4096):
                data = chunk
                if skip:
                    taken = data[:skip]
                    skip, skipped, data = skip - len(taken), (skipped + taken)[-TAIL:], data[len(taken) :]
                    if not skip and skipped != self.tails.get(name, b""):
                        self._diverged(name)
                        return
                if data and not self._write(name, data):
                    return
            if skip:  # the cluster's log is shorter than what was streamed of it
                self._diverged(name)
        finally:
            response.release_conn()

    def _write(self, pod: str, data: bytes, *, own: bool = True) -> bool:
        with self._lock:
            if self._closed.is_set():
                return False
            self._append(pod, data, own=own)
            return True

    def _append(self, pod: str, data: bytes, *, own: bool = True) -> None:
        with self.log_path.open("ab") as log:
            log.write(data)
        if own:
            self.written[pod] = self.written.get(pod, 0) + len(data)
            self.tails[pod] = (self.tails.get(pod, b"") + data)[-TAIL:]

    def _diverged(self, pod: str) -> None:
        with self._lock:
            if not self._closed.is_set():
                self._append(pod, self._elsewhere(pod), own=False)
            self.ended.add(pod)

    def _elsewhere(self, pod: str) -> bytes:
        where = f"kubectl logs -n {self.namespace} {pod}"
        said = f"\nmlproj: pod {pod}: its log no longer lines up with what was streamed (rotated?): {where}\n"
        return said.encode()

    def release(self) -> None:
        """The Job has ended: let the streams finish, then add what a pod's stream did not bring."""
        try:
            pods = list(enumerate(run_pods(self.api, self.namespace, self.record.run_id)))
        except MlprojError:
            pods = []
        ran = {pod.metadata.name for _, pod in pods if has_run(pod)}
        deadline = time.monotonic() + LOG_WAIT
        while self._tail.is_alive() and time.monotonic() < deadline and not ran <= self.ended:
            self._tail.join(0.2)
        with self._lock:
            self._closed.set()
            for index, pod in pods:
                name = pod.metadata.name
                if name in self.ended or name not in ran:
                    continue
                with contextlib.suppress(Exception):  # its log is gone: the run's log has what was streamed
                    self._complete(name, index, whole_log(self.api, self.namespace, pod))

    def _complete(self, pod: str, index: int, complete: bytes) -> None:
        have = self.written.get(pod)
        if have is None:  # never streamed: all of it
            self._append(pod, attempt_line(pod, index).encode(), own=False)
            self._append(pod, complete)
        elif complete[:have][-TAIL:] == self.tails.get(pod, b"") and len(complete) >= have:
            self._append(pod, complete[have:])
        else:
            self._append(pod, self._elsewhere(pod), own=False)

    # --- stopping ----------------------------------------------------------------------------------

    def stop_job(self, sig: int) -> None:
        """Delete the Job, its pods first (foreground propagation), each with its own grace period; on
        the ladder's last rung, the pods at once (a Job's deletion passes no grace period to them)."""
        self.deleted = True
        with contextlib.suppress(MlprojError):  # told by the next state read
            delete_job(self.api, self.namespace, self.name)
            if sig == signal.SIGKILL:
                delete_pods(self.api, self.namespace, self.record.run_id, 0)
