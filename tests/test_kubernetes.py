"""The kubernetes backend, in the two halves tests/kube_cluster.py describes.

- The API conversation against kmock's Kubernetes API emulator, where the test plays the Job controller
  and the kubelet: what mlproj creates, reads, streams and deletes, and what it makes of the Job's and the
  pods' status (Queued until a pod is scheduled, Running, the Job's outcome, the cluster's reasons).
- The Job mlproj created, run for real by `podman kube play` (tests/kube_cluster.PodmanKubelet), its
  image built here and pushed through the Docker API to a real registry (Debian's docker-registry, which
  CI starts: .ci/registry.sh) and pulled back from it: the command, parameters, variables, working folder
  and run folder work in a real container.

Skipped, with the reason, where kmock or the kubernetes client is missing (unless MLPROJ_TEST_REQUIRE
names kubernetes); the runs also need the Docker API and the registry (`docker`, `kubernetes`).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlproj.backends import kubejob
from mlproj.backends.kubejob import COMMAND_PLACEHOLDER, IMAGE_PLACEHOLDER
from mlproj.errors import InputError, MlprojError
from mlproj.home import Home
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store
from tests.clusters import need
from tests.helpers import (
    alive,
    assert_input_error,
    assert_nothing_unfinished,
    mlproj,
    mlproj_json,
    wait_until,
)
from tests.kube_cluster import (
    NAMESPACE,
    Cluster,
    PodmanKubelet,
    kube_missing,
    podman_missing,
    running_cluster,
    wait_for_job,
)
from tests.mlflow_server import MlflowServer
from tests.test_kubejob import MLFLOW_TEMPLATE

pytestmark = pytest.mark.slow
IMAGE = os.environ.get("MLPROJ_TEST_IMAGE") or "localimg"
REGISTRY = os.environ.get("MLPROJ_TEST_REGISTRY") or "127.0.0.1:5000"
# MLflow's documented template (resources and env note included), in the tests' namespace.
TEMPLATE = MLFLOW_TEMPLATE.replace("namespace: mlflow", f"namespace: {NAMESPACE}")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    from mlproj.backends import kubernetes

    monkeypatch.setattr(kubernetes, "_CLIENTS", {})  # each test has its own emulator
    with running_cluster(tmp_path, monkeypatch) as made:
        yield made


@pytest.fixture(scope="module")
def engines() -> None:
    """A full run builds and pushes the project's image: the Docker API and the registry."""
    from tests.test_docker import _connect

    # A failed connection leaves its socket to the garbage collector (in the docker package): collected
    # here, where its ResourceWarning is expected, rather than in some later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        api, missing = _connect()
        gc.collect()
    if api is not None:
        api.close()
    need("docker", missing)
    need("kubernetes", podman_missing())


def template(tmp_path: Path, text: str = TEMPLATE) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def config(tmp_path: Path, **more: Any) -> str:
    settings = {
        "repository-uri": f"{REGISTRY}/mlproj-tests/{tmp_path.name.lower()[-40:].strip('_-') or 'p'}",
        "kube-job-template-path": str(template(tmp_path)),
        **more,
    }
    return json.dumps(settings)


def project(tmp_path: Path, command: str, name: str = "kube-test") -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "MLproject").write_text(
        f"name: {name}\ndocker_env:\n  image: {IMAGE}\nentry_points:\n  main:\n"
        f"    parameters:\n      word: {{type: string, default: hello}}\n    command: {json.dumps(command)}\n"
    )
    (folder / "data.txt").write_text("from the project's image\n")
    return folder


def status(run_id: str) -> dict[str, Any]:
    record: dict[str, Any] = mlproj_json("status", run_id)
    return record


# --- the API conversation, in the test process --------------------------------------------------------


def create(cluster: Cluster, run_id: str, **config: Any) -> dict[str, Any]:
    """A Job as the backend makes it, created through the API."""
    job = kubejob.render(
        kubejob.load_template(str(template(Path(cluster.kubeconfig).parent))),
        run_id=run_id,
        project="p",
        namespace=NAMESPACE,
        image=f"{REGISTRY}/p:1",
        command=["/bin/sh", "-c", "true"],
        env={"MLPROJ_RUN_ID": run_id},
        config=config,
    )
    cluster.batch.create_namespaced_job(NAMESPACE, job)  # a dict, as mlproj sends it
    return cluster.job(NAMESPACE, job["metadata"]["name"])


def state(cluster: Cluster, job: dict[str, Any], run_id: str, *, deleted: bool = False) -> Any:
    from mlproj.backends.kubestate import query

    return query(cluster.api, NAMESPACE, job["metadata"]["name"], run_id, deleted=deleted)


RUN = "a" * 32


def test_queued_until_a_pod_is_scheduled_then_the_jobs_outcome(cluster: Cluster) -> None:
    job = create(cluster, RUN)
    found = state(cluster, job, RUN)
    assert (found.status, found.native, found.started_at) == (RunStatus.QUEUED, "Pending", None)
    pod = cluster.create_pod(job, scheduled=False, waiting="ImagePullBackOff")
    found = state(cluster, job, RUN)
    assert (found.status, found.native) == (RunStatus.QUEUED, "Pending: ImagePullBackOff")
    # Scheduled (design.md §13: Queued until then), its node still pulling the image: the pod's own
    # phase and reason stay in the native state.
    cluster.core.patch_namespaced_pod(pod, NAMESPACE, {"spec": {"nodeName": "node-1"}})
    found = state(cluster, job, RUN)
    assert (found.status, found.native) == (RunStatus.RUNNING, "Pending: ImagePullBackOff")
    cluster.schedule(job, pod)
    found = state(cluster, job, RUN)
    assert (found.status, found.native) == (RunStatus.RUNNING, "Running")
    assert found.started_at is not None
    cluster.end_pod(job, pod, 0)
    cluster.end_job(job)
    found = state(cluster, job, RUN)
    assert (found.status, found.native, found.exit_code, found.reason) == (
        RunStatus.FINISHED,
        "Complete",
        0,
        None,
    )
    assert found.ended_at is not None


def test_failed_jobs_say_why_in_the_clusters_words(cluster: Cluster) -> None:
    exited = create(cluster, "b" * 32)
    cluster.end_pod(exited, cluster.create_pod(exited, scheduled=True), 3)
    cluster.end_job(
        exited, failed="BackoffLimitExceeded", message="Job has reached the specified backoff limit"
    )
    found = state(cluster, exited, "b" * 32)
    # The exit code says it: no reason on top of it.
    assert (found.status, found.native, found.exit_code, found.reason) == (
        RunStatus.FAILED,
        "Failed",
        3,
        None,
    )

    late = create(cluster, "c" * 32)
    cluster.create_pod(late, scheduled=True)
    cluster.end_job(late, failed="DeadlineExceeded", message="Job was active longer than specified deadline")
    found = state(cluster, late, "c" * 32)
    assert (found.status, found.exit_code) == (RunStatus.FAILED, None)
    assert found.reason == "Kubernetes: DeadlineExceeded: Job was active longer than specified deadline"

    killed = create(cluster, "d" * 32)
    cluster.end_pod(killed, cluster.create_pod(killed, scheduled=True), 137, reason="OOMKilled")
    cluster.end_job(
        killed, failed="BackoffLimitExceeded", message="Job has reached the specified backoff limit"
    )
    found = state(cluster, killed, "d" * 32)
    assert (found.status, found.exit_code) == (RunStatus.FAILED, 137)
    assert found.reason == "Kubernetes: the container ended: OOMKilled (exit code 137)"


def test_a_deleted_job_is_unknown_or_canceled_by_us(cluster: Cluster) -> None:
    job = create(cluster, RUN)
    name = job["metadata"]["name"]
    # As a foreground deletion does: the Job stays, with a deletionTimestamp, until its pods are gone.
    cluster.batch.patch_namespaced_job(name, NAMESPACE, {"metadata": {"finalizers": ["foregroundDeletion"]}})
    cluster.batch.delete_namespaced_job(name, NAMESPACE)
    assert state(cluster, job, RUN).native == "Terminating"
    cluster.batch.patch_namespaced_job(name, NAMESPACE, {"metadata": {"finalizers": []}})
    assert state(cluster, job, RUN) is None  # the cluster forgot it: the supervisor says so
    found = state(cluster, job, RUN, deleted=True)
    assert (found.status, found.native) == (RunStatus.CANCELED, "Deleted")


def test_retried_pods_are_streamed_in_order_and_cancel_deletes_in_the_foreground(
    cluster: Cluster, tmp_path: Path
) -> None:
    from mlproj.backends.kubeworkload import KubeJob
    from mlproj.runs.record import RunRecord

    job = create(cluster, RUN)
    log = tmp_path / "run.log"
    log.write_bytes(b"")
    workload = KubeJob(RunRecord(run_id=RUN), cluster.api, NAMESPACE, job["metadata"]["name"], log)
    assert workload.wait(0.3) is None
    assert workload.state is not None and workload.state.status is RunStatus.QUEUED
    first = cluster.create_pod(job, scheduled=True)
    cluster.logs[first] = b"first try\n"
    cluster.end_pod(job, first, 1)
    wait_until(lambda: log.read_bytes() == b"first try\n", timeout=10)
    second = cluster.create_pod(job, scheduled=True)
    cluster.logs[second] = b"second try\n"
    assert workload.wait(1.5) is None
    assert workload.state.status.value == "Running"
    cluster.end_pod(job, second, 0)
    cluster.end_job(job)
    assert workload.wait(10) == 0
    workload.release()
    assert log.read_text() == f"first try\nmlproj: pod {second} (attempt 2)\nsecond try\n"

    other = create(cluster, "e" * 32)
    running = cluster.create_pod(other, scheduled=True)
    stopped = KubeJob(RunRecord(run_id="e" * 32), cluster.api, NAMESPACE, other["metadata"]["name"], log)
    stopped.signal(signal.SIGTERM)
    assert cluster.requests("DELETE", "/pods/") == []  # the pods get their own grace period
    stopped.signal(signal.SIGKILL)
    job_deletes = [options(r) for r in cluster.requests("DELETE", f"/jobs/{other['metadata']['name']}")]
    assert job_deletes == [{"propagationPolicy": "Foreground"}] * 2
    pod_deletes = [options(r) for r in cluster.requests("DELETE", f"/pods/{running}")]
    assert pod_deletes == [{"gracePeriodSeconds": 0}]  # the last rung: at once
    assert stopped.wait(5) is not None
    assert stopped.state is not None and stopped.state.status is RunStatus.CANCELED
    stopped.release()


def test_a_stream_that_ends_early_is_opened_again_and_a_rotated_log_is_not_guessed_at(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The emulator serves a pod's log as it is at the request and ends the stream: each round of the
    follower opens it again, as after a dropped connection on a real cluster."""
    from mlproj.backends.kubeworkload import KubeJob
    from mlproj.runs.record import RunRecord

    job = create(cluster, RUN)
    log = tmp_path / "run.log"
    log.write_bytes(b"")
    pod = cluster.create_pod(job, scheduled=True)
    cluster.logs[pod] = b"one \xff\n"  # not UTF-8: carried as it is
    workload = KubeJob(RunRecord(run_id=RUN), cluster.api, NAMESPACE, job["metadata"]["name"], log)
    try:
        wait_until(lambda: log.read_bytes() == b"one \xff\n", timeout=10)
        cluster.logs[pod] = b"one \xff\ntwo\n"
        wait_until(lambda: log.read_bytes() == b"one \xff\ntwo\n", timeout=10)
        cluster.logs[pod] = b"rotated\n"  # shorter than what was streamed: the kubelet rotated it
        wait_until(lambda: b"no longer lines up" in log.read_bytes(), timeout=10)
        cluster.logs[pod] = b"rotated\nthree\n"
        cluster.end_pod(job, pod, 0)
        cluster.end_job(job)
        assert workload.wait(10) == 0
    finally:
        workload.release()
    assert log.read_bytes() == (
        b"one \xff\ntwo\n\nmlproj: pod " + pod.encode() + b": its log no longer lines up with what was "
        b"streamed (rotated?): kubectl logs -n " + NAMESPACE.encode() + b" " + pod.encode() + b"\n"
    )


def options(request: Any) -> dict[str, Any]:
    """A DELETE request's options, from its body and its query (the client puts some in each)."""
    sent = {**(request.data or {}), **{k: int(v) if v.isdigit() else v for k, v in request.params.items()}}
    return {k: v for k, v in sent.items() if k not in ("kind", "apiVersion")}


def test_cancel_without_a_supervisor_gives_the_pods_the_grace_asked_for(
    cluster: Cluster, tmp_path: Path
) -> None:
    from mlproj.backends.kubernetes import KubernetesBackend
    from mlproj.runs.record import RunRecord
    from mlproj.runs.request import RunRequest

    job = create(cluster, RUN)
    pod = cluster.create_pod(job, scheduled=True)
    request = RunRequest(command="true", cwd=str(tmp_path), backend="kubernetes", backend_config={})
    record = RunRecord(run_id=RUN, request=request, job_id=f"{NAMESPACE}/{job['metadata']['name']}")
    KubernetesBackend().cancel_job(record, 7.0)
    assert [options(r) for r in cluster.requests("DELETE", "/jobs/")] == [{"propagationPolicy": "Foreground"}]
    assert [options(r) for r in cluster.requests("DELETE", f"/pods/{pod}")] == [{"gracePeriodSeconds": 7}]
    KubernetesBackend().cancel_job(record, 7.0)  # again: both are gone, nothing to do, no error


def test_the_last_state_stands_while_the_api_blinks(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlproj.backends import kubeworkload
    from mlproj.runs.record import RunRecord

    job = create(cluster, RUN)
    log = tmp_path / "run.log"
    workload = kubeworkload.KubeJob(
        RunRecord(run_id=RUN), cluster.api, NAMESPACE, job["metadata"]["name"], log
    )
    try:
        workload.state = workload.fetch_state()
        assert workload.state is not None and workload.state.native == "Pending"
        cluster.stop()  # the API server goes away
        assert workload.fetch_state() is workload.state
        assert workload.fetch_state() is workload.state
        assert workload._failing_since is not None
        workload._failing_since -= kubeworkload.API_GRACE  # as if the API had failed for that long
        with pytest.raises(MlprojError, match=f"cannot read Job {NAMESPACE}/"):
            workload.fetch_state()
    finally:
        workload._closed.set()


def test_a_run_whose_job_was_not_recorded_finds_it_by_its_name(tmp_path: Path) -> None:
    from mlproj.backends.kubernetes import _job_of
    from mlproj.runs.envspec import EnvSpec
    from mlproj.runs.record import RunRecord
    from mlproj.runs.request import RunRequest

    request = RunRequest(
        command="true",
        cwd=str(tmp_path),
        env_manager="docker",
        env_spec=EnvSpec(kind="docker", project_dir=str(tmp_path), docker={"build_tag": "wine:0123abcd"}),
        backend="kubernetes",
        backend_config={"kube-job-template-path": str(template(tmp_path)), "repository-uri": "r/w"},
    )
    assert _job_of(RunRecord(run_id=RUN, request=request)) == (NAMESPACE, f"wine-{RUN}")
    assert _job_of(RunRecord(run_id=RUN, request=request, job_id="ns/given")) == ("ns", "given")


def test_check_refuses_before_anything_is_created(cluster: Cluster, tmp_path: Path) -> None:
    from mlproj.backends.kubernetes import KubernetesBackend
    from mlproj.envs import get_manager

    backend = KubernetesBackend()
    docker, local = get_manager("docker"), get_manager("local")
    good = backend.validate_config(json.loads(config(tmp_path)))

    def refused(settings: dict[str, Any], manager: Any = docker) -> str:
        with pytest.raises(InputError) as caught:
            backend.check(backend.validate_config(settings), manager, None)
        assert "\n" not in str(caught.value)
        return str(caught.value)

    backend.check(good, docker, None)  # the emulator answers: accepted
    assert "kube-context 'prod': not in the kubeconfig (its contexts: kmock, nowhere)" in refused(
        {**good, "kube-context": "prod"}
    )
    assert refused({**good, "kube-context": "nowhere"}).startswith(
        f"backend kubernetes: cannot list Jobs in namespace {NAMESPACE} at http://127.0.0.1:9: "
    )
    assert "backend_config needs repository-uri" in refused(
        {"kube-job-template-path": good["kube-job-template-path"]}
    )
    assert "backend_config needs kube-job-template-path" in refused({"repository-uri": "r/x"})
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEMPLATE.replace(IMAGE_PLACEHOLDER, "python:3.11"))
    assert "no container has image:" in refused({**good, "kube-job-template-path": str(bad)})
    assert "the local environment is not one: give the project a docker_env" in refused(good, local)
    assert cluster.jobs() == []


def test_no_kubeconfig_and_not_in_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("kubernetes", kube_missing())
    from mlproj.backends import kubernetes

    monkeypatch.setattr(kubernetes, "_CLIENTS", {})
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(InputError) as caught:
        kubernetes.api_client({})
    assert str(caught.value).startswith(
        "backend kubernetes: no kubeconfig to use (KUBECONFIG or ~/.kube/config"
    )
    assert str(caught.value).endswith("and not inside a cluster")
    with pytest.raises(MlprojError, match="kube-context 'x': no kubeconfig to find it in"):
        kubernetes.api_client({"kube-context": "x"}, MlprojError)


def test_a_kubeconfig_that_cannot_be_used_is_named_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("kubernetes", kube_missing())
    from mlproj.backends import kubernetes

    monkeypatch.setattr(kubernetes, "_CLIENTS", {})
    broken = tmp_path / "broken"
    broken.write_text("clusters: [\n")
    monkeypatch.setenv("KUBECONFIG", str(broken))
    with pytest.raises(InputError, match=r"^backend kubernetes: the kubeconfig cannot be used: ") as caught:
        kubernetes.api_client({})
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="kube-context 'c': no kubeconfig to find it in"):
        kubernetes.api_client({"kube-context": "c"})
    uncertain = tmp_path / "uncertain"
    uncertain.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {
            "server": "https://127.0.0.1:9", "certificate-authority": str(tmp_path / "no-ca.crt"),
        }}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }))  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", str(uncertain))
    with pytest.raises(InputError, match=r"^backend kubernetes: kube-context 'c': cannot be used: "):
        kubernetes.api_client({"kube-context": "c"})


# --- whole runs: built and pushed here, the Job created in the emulator ------------------------------


def test_a_run_is_queued_then_running_then_finished_with_its_pods_output(
    cluster: Cluster, engines: None, tmp_path: Path, home: Home
) -> None:
    folder = project(tmp_path, "echo word={word}")
    started = mlproj("run", str(folder), "-b", "kubernetes", "-c", config(tmp_path), "-P", "word=a b", "-d")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    job = wait_for_job(cluster)
    name = job["metadata"]["name"]
    assert name == f"kube-test-{run_id}"
    assert job["metadata"]["labels"]["mlproj/run-id"] == run_id
    record = wait_until(lambda: (r := status(run_id))["backend_state"] and r, timeout=30)
    assert (record["status"], record["job_id"], record["backend_state"]) == (
        "Queued",
        f"{NAMESPACE}/{name}",
        "Pending",
    )
    pod = cluster.create_pod(job, scheduled=False)
    assert status(run_id)["status"] == "Queued"
    cluster.schedule(job, pod)
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=30)
    cluster.logs[pod] = b"word=a b\n"
    cluster.end_pod(job, pod, 0)
    cluster.end_job(job)
    waited = mlproj("wait", run_id, timeout=60)
    assert waited.returncode == 0, waited.stderr
    record = status(run_id)
    assert (record["status"], record["exit_code"], record["backend_state"]) == ("Finished", 0, "Complete")
    log = Path(record["log_path"]).read_text()
    assert f"mlproj: creating Job {NAMESPACE}/{name} (image {REGISTRY}/mlproj-tests/" in log
    assert log.endswith("word=a b\n")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c", "echo word='a b'"]
    assert container["name"] == "kube-test"
    variables = {entry["name"]: entry["value"] for entry in container["env"]}
    assert variables["MLPROJ_RUN_ID"] == run_id
    assert variables["MLPROJ_RUN_DIR"] == "/mlproj/run"


def test_the_pod_gets_the_mlflow_run_and_the_run_ends_it(
    cluster: Cluster,
    engines: None,
    tmp_path: Path,
    home: Home,
    mlflow_server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", "http://mlflow.ml.svc:5000")  # MLflow's variable
    folder = project(tmp_path, "echo trained")
    started = mlproj("run", str(folder), "-b", "kubernetes", "-c", config(tmp_path), "-d")
    assert started.returncode == 0, started.stderr
    job = wait_for_job(cluster)
    cluster.run_job(job, b"trained\n")
    assert mlproj("wait", started.stdout.strip(), timeout=60).returncode == 0
    record = status(started.stdout.strip())
    variables = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert variables["MLFLOW_RUN_ID"] == record["mlflow_run_id"]
    assert variables["MLFLOW_EXPERIMENT_ID"] == record["mlflow_experiment_id"]
    assert variables["MLFLOW_TRACKING_URI"] == "http://mlflow.ml.svc:5000"
    assert not {"MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD"} & set(variables)
    run = mlflow_server.run(record["mlflow_run_id"])
    assert run["info"]["status"] == "FINISHED"
    assert run["tags"]["mlflow.project.backend"] == "kubernetes"


def test_python_api_runs_on_kubernetes_with_the_run_id_asked_for(
    cluster: Cluster, engines: None, tmp_path: Path, home: Home
) -> None:
    import mlproj

    run_id = "f" * 32  # MLflow's `run_id`, which its kubernetes backend ignores, names the Job here
    submitted = mlproj.run(
        str(project(tmp_path, "echo from the api")),
        backend="kubernetes",
        backend_config=json.loads(config(tmp_path)),
        run_id=run_id,
        synchronous=False,
    )
    assert submitted.run_id == run_id
    job = wait_for_job(cluster)
    assert job["metadata"]["name"] == f"kube-test-{run_id}"
    cluster.run_job(job, b"from the api\n")
    assert submitted.wait() is True
    assert submitted.get_status() == "Finished"


def test_cancel_deletes_the_job_and_a_lost_supervisor_is_reconciled(
    cluster: Cluster, engines: None, tmp_path: Path, home: Home
) -> None:
    folder = project(tmp_path, "echo never")
    started = mlproj("run", str(folder), "-b", "kubernetes", "-c", config(tmp_path), "-d")
    run_id = started.stdout.strip()
    job = wait_for_job(cluster)
    cluster.schedule(job, cluster.create_pod(job, scheduled=False))
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=30)
    canceled = mlproj("cancel", run_id, timeout=60)
    assert canceled.returncode == 0, canceled.stderr
    record = status(run_id)
    assert record["status"] == "Canceled"
    deletes = cluster.requests("DELETE", f"/jobs/{job['metadata']['name']}")
    assert deletes and deletes[0].data["propagationPolicy"] == "Foreground"
    assert cluster.jobs() == []

    # The supervisor killed: the Job goes on, and any shell reads its end from the cluster.
    second = mlproj("run", str(folder), "-b", "kubernetes", "-c", config(tmp_path), "-d").stdout.strip()
    job = wait_for_job(cluster)
    wait_until(lambda: status(second)["job_id"], timeout=30)
    supervisor = Store.open(home).get(second).supervisor_pid
    assert supervisor is not None
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not alive(supervisor), timeout=10)
    assert status(second)["status"] == "Queued"
    pod = cluster.run_job(job, b"ended without its supervisor\n", exit_code=5)
    waited = mlproj("wait", second, timeout=60)
    assert waited.returncode == 5, waited.stderr
    record = status(second)
    assert (record["status"], record["exit_code"], record["backend_state"]) == ("Failed", 5, "Failed")
    assert Path(record["log_path"]).read_text().endswith("ended without its supervisor\n")
    assert pod


def test_bad_input_is_refused_before_the_cluster_sees_anything(
    cluster: Cluster, engines: None, tmp_path: Path, home: Home
) -> None:
    folder = project(tmp_path, "echo hi")
    settings = json.loads(config(tmp_path))
    no_placeholders = tmp_path / "plain.yaml"
    no_placeholders.write_text(TEMPLATE.replace(f'["{COMMAND_PLACEHOLDER}"]', "[python, train.py]"))
    cases = [
        ({**settings, "kube-context": "prod"}, "kube-context 'prod': not in the kubeconfig"),
        ({**settings, "kube-job-template-path": str(no_placeholders)}, "containers[0].command: expected"),
        ({**settings, "kube-job-template-path": str(tmp_path / "none.yaml")}, "none.yaml: no such file"),
        ({k: v for k, v in settings.items() if k != "repository-uri"}, "backend_config needs repository-uri"),
        ({**settings, "repository-uri": "r/x:latest"}, "without a tag"),
    ]
    for given, fragment in cases:
        done = mlproj("run", str(folder), "-b", "kubernetes", "-c", json.dumps(given))
        assert_input_error(done, fragment)
    plain = tmp_path / "plain-project"
    plain.mkdir()
    (plain / "MLproject").write_text("name: plain\nentry_points:\n  main:\n    command: echo hi\n")
    assert_input_error(
        mlproj("run", str(plain), "-b", "kubernetes", "-c", config(tmp_path)), "give the project a docker_env"
    )
    assert_input_error(
        mlproj("run", str(folder), "-b", "kubernetes", "-c", config(tmp_path), "-A", "cpus=1"),
        "-A docker arguments do not apply to a Job",
    )
    assert cluster.jobs() == []
    assert cluster.requests("POST") == []
    assert_nothing_unfinished(home)


def test_an_image_that_cannot_be_pushed_fails_the_run_before_any_job(
    cluster: Cluster, engines: None, tmp_path: Path, home: Home
) -> None:
    folder = project(tmp_path, "echo hi")
    given = config(tmp_path, **{"repository-uri": "127.0.0.1:9/nowhere/p"})
    done = mlproj("run", str(folder), "-b", "kubernetes", "-c", given, "--json", timeout=180)
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "Failed"
    assert "docker push 127.0.0.1:9/nowhere/p:" in record["error"]
    assert "\n" not in record["error"]
    assert "error: cannot push 127.0.0.1:9/nowhere/p:" in Path(record["log_path"]).read_text()
    assert cluster.jobs() == []


# --- whole runs in real containers: podman kube play of the Job's pod --------------------------------


@pytest.fixture
def kubelet(cluster: Cluster, engines: None, tmp_path: Path) -> Iterator[PodmanKubelet]:
    need("kubernetes", podman_missing())
    made = PodmanKubelet(cluster, tmp_path)
    yield made
    made.stop()
    assert made.errors == []


def test_the_jobs_pod_runs_for_real(kubelet: PodmanKubelet, tmp_path: Path, home: Home) -> None:
    command = (
        "echo word={word}; pwd; cat data.txt; echo id=$MLPROJ_RUN_ID dir=$MLPROJ_RUN_DIR;"
        " echo kept > $MLPROJ_RUN_DIR/out.txt && cat $MLPROJ_RUN_DIR/out.txt"
    )
    folder = project(tmp_path, command)
    given = config(tmp_path)
    done = mlproj("run", str(folder), "-b", "kubernetes", "-c", given, "-P", "word=$(x) y", "--json",
                  timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["status"], record["backend_state"]) == ("Finished", "Complete")
    log = Path(record["log_path"]).read_text()
    pod_output = log[log.index("word=") :].splitlines()
    assert pod_output == [
        "word=$(x) y",
        "/mlflow/projects/code",  # the project is in the image, as MLflow builds it
        "from the project's image",
        f"id={record['run_id']} dir=/mlproj/run",
        "kept",
    ]
    (played,) = kubelet.pulled.values()
    assert record["job_id"] == f"{NAMESPACE}/kube-test-{record['run_id']}"
    assert f"Trying to pull {REGISTRY}/mlproj-tests/" in played  # from the registry it was pushed to
    repository = json.loads(config(tmp_path))["repository-uri"].split("/", 1)[1]
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repository}/tags/list", timeout=10) as answer:
        assert len(json.load(answer)["tags"]) == 1


def test_a_failing_pod_fails_the_run_with_its_exit_code(
    kubelet: PodmanKubelet, tmp_path: Path, home: Home
) -> None:
    folder = project(tmp_path, "echo about to fail; exit 3")
    done = mlproj("run", str(folder), "-b", "kubernetes", "-c", config(tmp_path), "--json", timeout=300)
    assert done.returncode == 3, done.stderr
    record = json.loads(done.stdout)
    assert (record["status"], record["exit_code"], record["backend_state"]) == ("Failed", 3, "Failed")
    assert Path(record["log_path"]).read_text().endswith("about to fail\n")


def test_cancel_takes_the_real_pod_down(kubelet: PodmanKubelet, tmp_path: Path, home: Home) -> None:
    folder = project(tmp_path, "echo started; sleep 300")
    run_id = mlproj("run", str(folder), "-b", "kubernetes", "-c", config(tmp_path), "-d").stdout.strip()
    wait_until(lambda: status(run_id)["status"] == "Running", timeout=120)
    wait_until(lambda: "started" in mlproj("logs", run_id).stdout, timeout=30)
    assert kube_test_containers() != []
    assert mlproj("cancel", run_id, timeout=120).returncode == 0
    assert status(run_id)["status"] == "Canceled"
    # The container went because mlproj asked for the pods to go with the Job (the test's garbage
    # collector deletes them only then), or deleted them itself.
    wait_until(lambda: kube_test_containers() == [], timeout=60)


def kube_test_containers() -> list[str]:
    from tests.kube_cluster import podman

    listed = podman("ps", "--format", "{{.Names}}", check=False).stdout.split()
    return [name for name in listed if name.startswith("kube-test-")]


def test_a_pipeline_step_runs_as_a_job(kubelet: PodmanKubelet, tmp_path: Path, home: Home) -> None:
    project(tmp_path, "echo unused")
    settings = json.loads(config(tmp_path))
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "type: pipeline\nname: k\njobs:\n"
        "  here:\n    command: echo prepared here\n"
        "  there:\n    code: project\n"
        "    command: cat data.txt; echo step=$MLPROJ_STEP alpha=${{inputs.alpha}}\n"
        "    inputs: {alpha: 0.5}\n"
        f"    backend: kubernetes\n    backend_config: {json.dumps(settings)}\n"
    )
    done = mlproj("run", str(pipeline), "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    steps = {step["step"]: step for step in json.loads(done.stdout)["steps"]}
    assert (steps["here"]["backend"], steps["there"]["backend"]) == ("local", "kubernetes")
    assert steps["there"]["backend_state"] == "Complete"
    log = Path(steps["there"]["log_path"]).read_text()
    assert log.endswith("from the project's image\nstep=there alpha=0.5\n")
