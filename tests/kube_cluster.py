"""A Kubernetes API for the kubernetes backend's tests, in two honest halves.

No Kubernetes API server can be installed on the machines these tests run on, so:

- `Cluster` is kmock's KubernetesEmulator (an in-memory Kubernetes API from PyPI) on 127.0.0.1, in a
  thread of the test process with its own event loop, and a kubeconfig for it. It stores objects and
  answers create, read, list, patch, delete and watch as the API server does; it has no controllers.
  So the test plays them: the Job controller (it creates the Job's pods and patches the Job's status)
  and the kubelet (it patches the pods' status and serves their logs). What it lacks is added here as
  reactions: label selectors on lists, pod logs, a namespace to read.
- `PodmanKubelet` plays the kubelet for real: each Job's pod template becomes a `kind: Pod` manifest
  run by `podman kube play` (its image pulled from the registry the backend pushed it to), and the pod's
  status, exit code and output are what Podman reports. The image, command, environment and volumes of
  the Job mlproj created are thereby run in a real container.

What no test here can show is a real cluster's own behaviour: its scheduler, admission and validation
(the emulator accepts any object), its garbage collector (foreground deletion is checked as the request
mlproj sends, and the kubelet here removes the pods), image pulls by a node, and RBAC.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clusters import need

NAMESPACE = "mlproj-tests"


def kube_missing() -> str | None:
    try:
        import kmock  # noqa: F401
        import kubernetes  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[test]')"
    return None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    """kmock's KubernetesEmulator with a kubeconfig (`kubeconfig`, contexts `kmock` and `nowhere`);
    `api` is the test's own client, for playing the Job controller and the kubelet."""

    def __init__(self, folder: Path) -> None:
        import kmock

        self.kmock = kmock
        self.logs: dict[str, bytes | Callable[[], bytes]] = {}
        box: dict[str, Any] = {}
        ready = threading.Event()

        def serve() -> None:
            async def main() -> None:
                emulator = kmock.KubernetesEmulator()
                with warnings.catch_warnings():  # kmock 0.8 reads its bundle with a deprecated call
                    warnings.simplefilter("ignore", DeprecationWarning)
                    emulator.resources.load_bundled()
                async with emulator, kmock.Server(emulator, host="127.0.0.1") as server:
                    box.update(emu=emulator, port=server.port, loop=asyncio.get_running_loop())
                    box["stop"] = asyncio.Event()
                    ready.set()
                    await box["stop"].wait()

            asyncio.run(main())

        self._thread = threading.Thread(target=serve, name="kmock", daemon=True)
        self._thread.start()
        assert ready.wait(20), "the Kubernetes API emulator did not start"
        self.emu, self.port, self._loop, self._stop = box["emu"], box["port"], box["loop"], box["stop"]
        self.url = f"http://127.0.0.1:{self.port}"
        self._on_loop(self._reactions)
        self.kubeconfig = folder / "kubeconfig"
        self.kubeconfig.write_text(json.dumps(self.config()))
        from kubernetes import client, config

        self.api: Any = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), context="kmock", persist_config=False
        )
        # Untyped: the test sends and reads plain dicts, as mlproj does.
        self.batch: Any = client.BatchV1Api(self.api)
        self.core: Any = client.CoreV1Api(self.api)

    def config(self) -> dict[str, Any]:
        closed = "http://127.0.0.1:9"  # the discard port: nothing answers
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "kmock",
            "clusters": [
                {"name": "kmock", "cluster": {"server": self.url}},
                {"name": "nowhere", "cluster": {"server": closed}},
            ],
            "users": [{"name": "tests", "user": {"token": "not-checked"}}],
            "contexts": [
                {"name": "kmock", "context": {"cluster": "kmock", "user": "tests", "namespace": NAMESPACE}},
                {"name": "nowhere", "context": {"cluster": "nowhere", "user": "tests"}},
            ],
        }

    def _on_loop(self, fn: Callable[[], None]) -> None:
        async def call() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def _reactions(self) -> None:
        kmock, emu = self.kmock, self.emu

        def list_by_labels(request: Any) -> dict[str, Any]:  # equality selectors: what mlproj sends
            wanted = dict(
                pair.split("=", 1) for pair in request.params.get("labelSelector", "").split(",") if pair
            )
            items = [
                found.raw
                for (resource, namespace, _), found in emu.objects.items()
                if resource == request.resource
                and (request.namespace is None or namespace == request.namespace)
                and not found.deleted
                and all(
                    ((found.raw.get("metadata") or {}).get("labels") or {}).get(k) == v
                    for k, v in wanted.items()
                )
            ]
            return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}

        def pod_log(request: Any) -> bytes:
            source = self.logs.get(request.name, b"")
            return source() if callable(source) else source

        emu[kmock.action.LIST] << list_by_labels
        (
            emu[kmock.resource("v1/pods"), kmock.subresource("log")]
            << kmock.headers({"Content-Type": "text/plain"})
            << pod_log
        )

    def requests(self, method: str, fragment: str = "") -> list[Any]:
        """The requests the emulator received (`method`: GET, POST, PATCH, DELETE)."""
        return [
            r for r in list(self.emu) if str(r.method).upper().endswith(method) and fragment in str(r.url)
        ]

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
            self.api.close()

    # --- the test as the Job controller and the kubelet -----------------------------------------------

    def jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every Job, as stored (the body mlproj sent, with what the test patched)."""
        listed = (
            self.batch.list_namespaced_job(namespace, _preload_content=False)
            if namespace
            else self.batch.list_job_for_all_namespaces(_preload_content=False)
        )
        return list(json.loads(listed.data)["items"])

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(json.loads(self.batch.read_namespaced_job(name, namespace, _preload_content=False).data))

    def create_pod(self, job: dict[str, Any], *, scheduled: bool, waiting: str | None = None) -> str:
        """The Job controller's part: a pod from the Job's template (the kubelet's: scheduled or not)."""
        meta = job["metadata"]
        name = f"{meta['name'][:57]}-{secrets.token_hex(3)[:5]}"
        pod = pod_manifest(job, name)
        status: dict[str, Any] = {"phase": "Pending"}
        if waiting:
            container = job["spec"]["template"]["spec"]["containers"][0]["name"]
            status["containerStatuses"] = [_container(container, {"waiting": {"reason": waiting}})]
        pod["status"] = status
        self.core.create_namespaced_pod(meta["namespace"], pod)
        if scheduled:
            self.schedule(job, name)
        return name

    def schedule(self, job: dict[str, Any], pod: str) -> None:
        namespace, container = job["metadata"]["namespace"], _main_container(job)
        self.core.patch_namespaced_pod(pod, namespace, {"spec": {"nodeName": "node-1"}})
        self.core.patch_namespaced_pod_status(pod, namespace, {"status": {
            "phase": "Running", "startTime": now(),
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [_container(container, {"running": {"startedAt": now()}})],
        }})  # fmt: skip
        self.batch.patch_namespaced_job_status(
            job["metadata"]["name"], namespace, {"status": {"active": 1, "startTime": now()}}
        )

    def end_pod(self, job: dict[str, Any], pod: str, exit_code: int, *, reason: str | None = None) -> None:
        namespace, container = job["metadata"]["namespace"], _main_container(job)
        terminated = {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error")}
        self.core.patch_namespaced_pod_status(pod, namespace, {"status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [_container(container, {"terminated": terminated})],
        }})  # fmt: skip

    def end_job(self, job: dict[str, Any], *, failed: str | None = None, message: str = "") -> None:
        """The Job controller's verdict: Complete, or Failed with `failed` as its reason."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        if failed is None:
            status = {"active": None, "succeeded": 1, "completionTime": now(), "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now()},
                {"type": "Complete", "status": "True", "lastTransitionTime": now()},
            ]}  # fmt: skip
        else:
            status = {"active": None, "failed": 1, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": failed, "lastTransitionTime": now()},
                {"type": "Failed", "status": "True", "reason": failed, "message": message,
                 "lastTransitionTime": now()},
            ]}  # fmt: skip
        self.batch.patch_namespaced_job_status(name, namespace, {"status": status})

    def run_job(self, job: dict[str, Any], output: bytes, exit_code: int = 0) -> str:
        """A whole pod's life, as a controller and a kubelet would take it: scheduled, runs, ends."""
        pod = self.create_pod(job, scheduled=True)
        self.logs[pod] = output
        self.end_pod(job, pod, exit_code)
        self.end_job(job, failed=None if exit_code == 0 else "BackoffLimitExceeded",
                     message="Job has reached the specified backoff limit")  # fmt: skip
        return pod


def _container(name: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "image": "",
        "imageID": "",
        "ready": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def _main_container(job: dict[str, Any]) -> str:
    for container in job["spec"]["template"]["spec"]["containers"]:
        if any(var.get("name") == "MLPROJ_RUN_ID" for var in container.get("env") or []):
            return str(container["name"])
    return str(job["spec"]["template"]["spec"]["containers"][0]["name"])


def pod_manifest(job: dict[str, Any], name: str) -> dict[str, Any]:
    """The Job's pod template as a `kind: Pod`, labelled as a Job controller labels its pods."""
    template = json.loads(json.dumps(job["spec"]["template"]))
    meta = job["metadata"]
    labels = {**((template.get("metadata") or {}).get("labels") or {}), "job-name": meta["name"]}
    created = (
        datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    )  # the API server's part
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "creationTimestamp": created,
        },
        "spec": template["spec"],
    }


def wait_for_job(cluster: Cluster, timeout: float = 120) -> dict[str, Any]:
    from tests.helpers import wait_until

    found: list[dict[str, Any]] = wait_until(cluster.jobs, timeout=timeout, interval=0.1)
    return found[0]


@contextlib.contextmanager
def running_cluster(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    need("kubernetes", kube_missing())
    cluster = Cluster(folder)
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    try:
        yield cluster
    finally:
        cluster.stop()


# --- the kubelet, for real: podman kube play --------------------------------------------------------


def podman_missing() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (as .ci/podman.sh installs it)"
    registry = os.environ.get("MLPROJ_TEST_REGISTRY")
    if not registry:
        return "no registry for the images (start one as .ci/registry.sh does and set MLPROJ_TEST_REGISTRY)"
    import urllib.request

    try:
        urllib.request.urlopen(f"http://{registry}/v2/", timeout=5).close()
    except OSError as exc:
        return f"no registry answers at {registry}: {exc} (start one as .ci/registry.sh does)"
    return None


class PodmanKubelet:
    """Runs each Job the emulator holds as a real pod, with `podman kube play`; reports its status,
    exit code and output through the API. As a kubelet, it takes a pod down when the pod is deleted; as
    the garbage collector, it deletes a Job's pods when the Job was deleted with propagation (only then:
    a batch/v1 Job's deletion orphans its pods by default)."""

    def __init__(self, cluster: Cluster, folder: Path) -> None:
        self.cluster = cluster
        self.folder = folder
        self.played: dict[str, str] = {}  # Job name → pod name
        self.pulled: dict[str, str] = {}  # pod name → what podman kube play said
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watcher = threading.Thread(target=self._watch, name="podman-kubelet", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(Exception):
                for job in self.cluster.jobs():
                    name = job["metadata"]["name"]
                    if name not in self.played:
                        self.played[name] = f"{name[:50]}-{secrets.token_hex(3)[:5]}"
                        worker = threading.Thread(target=self._run, args=(job,), daemon=True)
                        self._threads.append(worker)
                        worker.start()

    def _run(self, job: dict[str, Any]) -> None:
        try:
            self._play(job)
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            self.errors.append(f"{job['metadata']['name']}: {type(exc).__name__}: {exc}")

    def _play(self, job: dict[str, Any]) -> None:
        cluster, namespace, name = self.cluster, job["metadata"]["namespace"], job["metadata"]["name"]
        pod = self.played[name]
        container = f"{pod}-{_main_container(job)}"
        manifest = self.folder / f"pod-{pod}.yaml"
        manifest.write_text(json.dumps(pod_manifest(job, pod)))
        cluster.core.create_namespaced_pod(
            namespace, {**pod_manifest(job, pod), "status": {"phase": "Pending"}}
        )
        image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        podman("rmi", image, check=False)  # so that it is pulled from the registry it was pushed to
        played = podman("kube", "play", "--tls-verify=false", "--network", "none", str(manifest), check=False)
        self.pulled[pod] = played.stdout + played.stderr
        if played.returncode != 0:
            self.errors.append(f"podman kube play {pod}: {played.stderr.strip()[-500:]}")
            return
        cluster.logs[pod] = functools.partial(podman_logs, container)
        cluster.schedule(job, pod)
        with subprocess.Popen(["podman", "wait", container], stdout=subprocess.PIPE, text=True) as waiter:
            while waiter.poll() is None:
                if not self._job_exists(namespace, name) and self._propagated(name):
                    with contextlib.suppress(Exception):  # the garbage collector's part: the Job's pods go
                        cluster.core.delete_namespaced_pod(pod, namespace)
                if self._stop.is_set() or not self._pod_exists(namespace, pod):
                    podman("kube", "down", str(manifest), check=False)  # the kubelet's: a deleted pod stops
                    waiter.wait(60)
                    return
                time.sleep(0.1)
            exit_code = int((waiter.stdout.read() if waiter.stdout else "1").strip() or 1)
        cluster.logs[pod] = podman_logs(container)
        cluster.end_pod(job, pod, exit_code)
        cluster.end_job(job, failed=None if exit_code == 0 else "BackoffLimitExceeded",
                        message="Job has reached the specified backoff limit")  # fmt: skip
        podman("kube", "down", str(manifest), check=False)

    def _propagated(self, job: str) -> bool:
        """Whether the Job was deleted with its pods (a Job's deletion orphans them by default)."""
        deletes = self.cluster.requests("DELETE", f"/jobs/{job}")
        return any((r.data or {}).get("propagationPolicy") in ("Foreground", "Background") for r in deletes)

    def _pod_exists(self, namespace: str, name: str) -> bool:
        return _exists(self.cluster.core.read_namespaced_pod, namespace, name)

    def _job_exists(self, namespace: str, name: str) -> bool:
        return _exists(self.cluster.batch.read_namespaced_job, namespace, name)

    def stop(self) -> None:
        self._stop.set()
        self._watcher.join(10)
        for worker in self._threads:
            worker.join(120)


def _exists(read: Callable[[str, str], Any], namespace: str, name: str) -> bool:
    try:
        read(name, namespace)
    except Exception as exc:  # noqa: BLE001 - a 404 is the answer; anything else is an object still there
        return getattr(exc, "status", None) != 404
    return True


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=180, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()[-500:]}")
    return done


def podman_logs(container: str) -> bytes:
    done = subprocess.run(["podman", "logs", container], capture_output=True, timeout=60, check=False)
    return done.stdout + done.stderr
