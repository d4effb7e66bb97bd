"""docker_env projects with real containers, through a Docker-compatible API (Docker or Podman).

The image is `MLPROJ_TEST_IMAGE` (default `localimg`), a busybox image: commands use shell builtins and
`busybox <applet>` so that they work where only `sh` and `busybox` are in /bin. The API is the one
`DOCKER_HOST` names. Where no API answers, or the docker package or the image is missing, every test
here is skipped with the reason.
"""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlproj.home import Home
from mlproj.runs.store import Store
from tests.clusters import need
from tests.helpers import alive, assert_input_error, mlproj, mlproj_json, wait_until, write_project
from tests.mlflow_server import MlflowServer

IMAGE = os.environ.get("MLPROJ_TEST_IMAGE") or "localimg"
LABEL = "mlproj.run_id"
CODE_DIR = "/mlflow/projects/code"


def _connect() -> tuple[Any, str | None]:
    """A client for the API at DOCKER_HOST that has IMAGE, or None and why not."""
    try:
        import docker
    except ImportError:
        return None, "the docker package is not installed (pip install 'mlproj[docker]')"
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    api = docker.from_env(version="1.41", timeout=30)
    try:
        api.ping()
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, the engine is not there
        api.close()
        return None, (
            f"no Docker API answers at {where}: {type(exc).__name__}: {exc} (start Docker, or Podman's "
            "service as .ci/podman.sh does, and set DOCKER_HOST)"
        )
    try:
        api.images.get(IMAGE)
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, the image is not there
        api.close()
        return None, f"the test image {IMAGE} is not available at {where}: {exc}"
    return api, None


@pytest.fixture(scope="module")
def docker_api() -> Iterator[Any]:
    # A failed connection leaves its socket to the garbage collector (in the docker package): collect
    # it here, where its ResourceWarning is expected, rather than in some later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        api, reason = _connect()
        gc.collect()
    if api is None:
        need("docker", reason)
    yield api
    api.close()


@pytest.fixture(autouse=True)
def _engine(docker_api: Any, home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test needs the engine; containers of this test's runs are removed afterwards, whatever
    happened (the tests check that mlproj removed them itself)."""
    monkeypatch.delenv("MLPROJ_ENV_MANAGER", raising=False)
    monkeypatch.delenv("DOCKER_API_VERSION", raising=False)
    yield
    runs = home.runs_dir
    for run_id in os.listdir(runs) if runs.is_dir() else []:
        for container in containers_of(docker_api, run_id):
            container.remove(force=True)


def containers_of(api: Any, run_id: str) -> list[Any]:
    return list(api.containers.list(all=True, filters={"label": f"{LABEL}={run_id}"}))


def docker_project(
    folder: Path,
    command: str,
    *,
    docker_env: str = "",
    parameters: str = "",
    name: str = "dockertest",
    files: dict[str, str] | None = None,
) -> Path:
    """A project with `docker_env: {image: IMAGE}` (plus the `docker_env` YAML lines given)."""
    body = (
        f"name: {name}\n"
        f"docker_env:\n  image: {IMAGE}\n{docker_env}"
        f"entry_points:\n  main:\n{parameters}    command: {json.dumps(command)}\n"
    )
    return write_project(folder, body, files)


def run_id_of(done: Any) -> str:
    """The run ID from the summary line `Run <id> <status> ...` on stderr."""
    found = re.search(r"\bRun ([0-9a-f]{32})\b", done.stderr)
    assert found, done.stderr
    return found.group(1)


def status_of(run_id: str) -> str:
    return str(mlproj_json("status", run_id)["status"])


def start_detached(project: Path, *args: str) -> str:
    done = mlproj("run", str(project), "-d", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def refused(done: Any) -> None:
    """An input error, and no run recorded."""
    assert_input_error(done)
    assert mlproj_json("runs") == []


# --- running ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_parameterised_project_runs_in_its_container(tmp_path: Path, home: Home, docker_api: Any) -> None:
    project = docker_project(
        tmp_path / "p",
        "echo n={n} lr={lr} word={word}; busybox cat data.txt; pwd; echo dir=$MLPROJ_RUN_DIR; "
        "echo made-inside > $MLPROJ_RUN_DIR/made.txt",
        parameters=(
            "    parameters:\n"
            "      n: {type: int, default: 3}\n"
            "      lr: {type: float, default: 0.5}\n"
            "      word: {type: string, default: hello}\n"
        ),
        files={"data.txt": "project-file\n"},
    )
    # No --env-manager: a docker_env project runs in docker.
    done = mlproj("run", str(project), "-P", "n=5", "-P", "word=two words; echo injected")
    assert done.returncode == 0, done.stderr
    expected = [
        "n=5 lr=0.5 word=two words; echo injected",
        "project-file",
        CODE_DIR,
        "dir=/mlproj/run",
    ]
    assert done.stdout.splitlines() == expected
    run_id = run_id_of(done)
    record = mlproj_json("status", run_id)
    assert record["status"] == "Finished"
    assert record["exit_code"] == 0
    assert record["env_manager"] == "docker"
    assert record["parameters"] == {"n": "5", "lr": "0.5", "word": "two words; echo injected"}
    assert Path(record["log_path"]).read_text().splitlines() == expected
    assert mlproj("logs", run_id).stdout.splitlines() == expected
    # MLPROJ_RUN_DIR inside is the run's folder on the host.
    assert (Path(record["run_dir"]) / "made.txt").read_text() == "made-inside\n"
    assert containers_of(docker_api, run_id) == []


@pytest.mark.slow
def test_json_output_goes_to_stderr(tmp_path: Path, home: Home) -> None:
    project = docker_project(tmp_path / "p", "echo from-container")
    done = mlproj("run", str(project), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)  # nothing else on stdout
    assert record["status"] == "Finished" and record["env_manager"] == "docker"
    assert "from-container" in done.stderr


@pytest.mark.slow
def test_volumes_and_environment(tmp_path: Path, home: Home) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("from-volume\n")
    project = docker_project(
        tmp_path / "p",
        "busybox cat /data/input.txt; echo copied=$MLPROJ_TEST_COPIED; echo pair=$PAIRED; echo arg=$FOO",
        docker_env=(
            f"  volumes: [{json.dumps(f'{data}:/data')}]\n"
            "  environment: [MLPROJ_TEST_COPIED, [PAIRED, 'pair value']]\n"
        ),
    )
    done = mlproj("run", str(project), "-A", "env=FOO=bar", env={"MLPROJ_TEST_COPIED": "host value"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "from-volume",
        "copied=host value",
        "pair=pair value",
        "arg=bar",
    ]


@pytest.mark.slow
def test_non_zero_exit_code_fails_and_removes_the_container(
    tmp_path: Path, home: Home, docker_api: Any
) -> None:
    project = docker_project(tmp_path / "p", "echo failing; exit 7")
    done = mlproj("run", str(project))
    assert done.returncode == 7, done.stderr
    assert done.stdout == "failing\n"
    run_id = run_id_of(done)
    record = mlproj_json("status", run_id)
    assert record["status"] == "Failed"
    assert record["exit_code"] == 7
    assert record["error"] == "the command exited with code 7"
    assert containers_of(docker_api, run_id) == []
    assert mlproj("wait", run_id, "--no-show-output").returncode == 7


# --- build_image -----------------------------------------------------------------------------------


@pytest.fixture
def image_name(docker_api: Any) -> Iterator[str]:
    """A project name unique to the test; the images built for it are removed afterwards."""
    name = f"mlproj-test-{uuid.uuid4().hex[:10]}"
    yield name
    for image in docker_api.images.list():
        if any(name in tag for tag in image.tags):
            for tag in image.tags:
                docker_api.images.remove(tag, force=True)


def built_tag(log: str) -> str | None:
    found = re.search(r"^mlproj: docker image (\S+): ", log, re.MULTILINE)
    return found.group(1) if found else None


@pytest.mark.slow
def test_build_image_copies_the_project_and_is_reused(
    tmp_path: Path, home: Home, docker_api: Any, image_name: str
) -> None:
    project = docker_project(
        tmp_path / "p",
        "echo begin-output; pwd; busybox ls -a; echo end-list; busybox cat data.txt; "
        "busybox touch written-inside.txt",
        name=image_name,
        files={"data.txt": "one\n"},
    )
    first = mlproj("run", str(project), "--build-image", "--json")
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert record["status"] == "Finished" and record["env_manager"] == "docker"
    log = Path(record["log_path"]).read_text()
    tag = built_tag(log)
    assert tag is not None, log
    assert re.fullmatch(rf"{image_name}:[0-9a-f]+", tag), tag
    image_id = docker_api.images.get(tag).id
    output = log.splitlines()
    output = output[output.index("begin-output") + 1 :]
    assert output[0] == CODE_DIR
    assert output[output.index("end-list") + 1] == "one"
    listed = set(output[1 : output.index("end-list")])
    assert {"MLproject", "data.txt"} <= listed
    assert "Dockerfile.mlproj" not in listed and ".dockerignore" not in listed
    # The project is in the image, not mounted: a file written inside does not reach the host.
    assert not (project / "written-inside.txt").exists()

    second = mlproj("run", str(project), "--build-image", "--json")
    assert second.returncode == 0, second.stderr
    log2 = Path(json.loads(second.stdout)["log_path"]).read_text()
    assert built_tag(log2) is None, log2  # no build step: the image was reused
    assert "one" in log2.splitlines()
    assert docker_api.images.get(tag).id == image_id

    (project / "data.txt").write_text("two\n")
    third = mlproj("run", str(project), "--build-image", "--json")
    assert third.returncode == 0, third.stderr
    log3 = Path(json.loads(third.stdout)["log_path"]).read_text()
    new_tag = built_tag(log3)
    assert new_tag is not None and new_tag != tag
    assert new_tag.startswith(f"{image_name}:")
    assert "two" in log3.splitlines()


@pytest.mark.slow
def test_build_image_tag_is_a_valid_reference_for_any_project_name(
    tmp_path: Path, home: Home, docker_api: Any
) -> None:
    # "My..Project" lowercased is still not a valid repository name (no two separators in a row).
    project = docker_project(
        tmp_path / "p", "busybox cat data.txt", name="My..Project", files={"data.txt": "in\n"}
    )
    done = mlproj("run", str(project), "--build-image", "--json")
    tag = None
    try:
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        tag = built_tag(Path(record["log_path"]).read_text())
        assert tag is not None
        assert re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*:[0-9a-f]+", tag), tag
    finally:
        if tag is not None:
            docker_api.images.remove(tag, force=True)


# --- stopping --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cancel_removes_the_sleeping_container(tmp_path: Path, home: Home, docker_api: Any) -> None:
    project = docker_project(tmp_path / "p", "echo sleeping; busybox sleep 300")
    run_id = start_detached(project)
    wait_until(lambda: status_of(run_id) == "Running", timeout=30, interval=0.2)
    wait_until(lambda: [c for c in containers_of(docker_api, run_id) if c.status == "running"], timeout=15)
    started = time.monotonic()
    done = mlproj("cancel", run_id, "--grace", "1")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "now Canceled" in done.stdout
    assert elapsed < 120, elapsed  # not the 300 s the sleep would take
    record = mlproj_json("status", run_id)
    assert record["status"] == "Canceled"
    assert record["error"] == "canceled by mlproj cancel"
    wait_until(lambda: containers_of(docker_api, run_id) == [], timeout=10)
    assert mlproj("wait", run_id, "--no-show-output").returncode == 130
    assert "sleeping" in Path(record["log_path"]).read_text()


@pytest.mark.slow
def test_timeout_sends_sigterm_into_the_container(tmp_path: Path, home: Home, docker_api: Any) -> None:
    project = docker_project(
        tmp_path / "p", "trap 'echo got-TERM; exit 0' TERM; echo waiting; busybox sleep 300 & wait"
    )
    done = mlproj("run", str(project), "--timeout", "2", "--json")
    assert done.returncode == 124, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "Canceled"
    assert record["error"].startswith("timed out after")
    assert "got-TERM" in done.stderr  # the container's process received SIGTERM and could clean up
    assert containers_of(docker_api, record["run_id"]) == []


@pytest.mark.slow
def test_lost_supervisor_is_reconciled_and_its_container_removed(
    tmp_path: Path, home: Home, docker_api: Any
) -> None:
    project = docker_project(tmp_path / "p", "busybox sleep 300")
    run_id = start_detached(project)
    wait_until(lambda: status_of(run_id) == "Running", timeout=30, interval=0.2)
    wait_until(lambda: [c for c in containers_of(docker_api, run_id) if c.status == "running"], timeout=15)
    store = Store.open(home)
    try:
        supervisor = store.get(run_id).supervisor_pid
    finally:
        store.close()
    assert supervisor is not None
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not alive(supervisor), timeout=10)
    assert containers_of(docker_api, run_id) != []  # the container outlived its supervisor
    record = mlproj_json("status", run_id)
    assert record["status"] == "Failed"
    assert "supervising process" in record["error"] and "is gone" in record["error"]
    assert containers_of(docker_api, run_id) == []
    assert mlproj("wait", run_id, "--no-show-output").returncode == 1


# --- -A docker arguments and the Python API --------------------------------------------------------


@pytest.mark.slow
def test_docker_args_reach_the_container(tmp_path: Path, home: Home) -> None:
    project = docker_project(tmp_path / "p", "echo foo=$FOO; pwd; busybox hostname")
    done = mlproj("run", str(project), "-A", "env=FOO=bar", "-A", "workdir=/tmp", "-A", "hostname=mlprojhost")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["foo=bar", "/tmp", "mlprojhost"]


def test_unknown_docker_arg_is_an_input_error(tmp_path: Path, home: Home) -> None:
    project = docker_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), "-A", "bogus=1")
    refused(done)
    assert "bogus" in done.stderr


@pytest.mark.parametrize("arg", ["gpus", "gpus=two", "cpus=many", "memory=lots"])
def test_ill_typed_docker_arg_is_an_input_error(tmp_path: Path, home: Home, arg: str) -> None:
    # The value is checked before anything is recorded, as for an unknown argument.
    project = docker_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), "-A", arg)
    refused(done)


@pytest.mark.slow
def test_a_container_that_cannot_start_fails_and_is_removed(
    tmp_path: Path, home: Home, docker_api: Any
) -> None:
    # The engine creates the container, then refuses to start it (no such user in the image).
    project = docker_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), "-A", "user=mlproj-no-such-user", "--json")
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "Failed"
    assert "mlproj-no-such-user" in record["error"]
    assert containers_of(docker_api, record["run_id"]) == []


@pytest.mark.slow
def test_python_api_with_docker_args(
    tmp_path: Path, home: Home, docker_api: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlproj as api

    project = docker_project(
        tmp_path / "p", "echo A=$A; echo n={n}", parameters="    parameters:\n      n: int\n"
    )
    submitted = api.run(str(project), parameters={"n": 4}, docker_args={"env": "A=b"}, synchronous=True)
    assert submitted.get_status() == "Finished"
    assert capfd.readouterr().out.splitlines() == ["A=b", "n=4"]
    record = submitted.get_record()
    assert record["env_manager"] == "docker"
    assert containers_of(docker_api, submitted.run_id) == []
    failing = docker_project(tmp_path / "f", "exit 3")
    with pytest.raises(api.ExecutionError, match="code 3"):
        api.run(str(failing), synchronous=True)


# --- input errors: exit 2, one line, nothing recorded -----------------------------------------------

BAD_DOCKER_ENV = {
    "no image": "docker_env:\n  volumes: ['/tmp:/tmp']\n",
    "empty image": "docker_env:\n  image: ''\n",
    "not a mapping": "docker_env: [localimg]\n",
    "volumes not a list": f"docker_env:\n  image: {IMAGE}\n  volumes: '/tmp:/data'\n",
    "volume without colon": f"docker_env:\n  image: {IMAGE}\n  volumes: ['/tmp']\n",
    "volume not a string": f"docker_env:\n  image: {IMAGE}\n  volumes: [3]\n",
    "environment a string": f"docker_env:\n  image: {IMAGE}\n  environment: HOME\n",
    "environment a mapping": f"docker_env:\n  image: {IMAGE}\n  environment: {{FOO: bar}}\n",
    "environment a number": f"docker_env:\n  image: {IMAGE}\n  environment: 5\n",
    "environment bad name": f"docker_env:\n  image: {IMAGE}\n  environment: ['not a name']\n",
    "environment short pair": f"docker_env:\n  image: {IMAGE}\n  environment: [[FOO]]\n",
    "environment long pair": f"docker_env:\n  image: {IMAGE}\n  environment: [[FOO, a, b]]\n",
    "environment unset host variable": (
        f"docker_env:\n  image: {IMAGE}\n  environment: [MLPROJ_TEST_SURELY_UNSET_VARIABLE]\n"
    ),
    "image that does not exist": "docker_env:\n  image: mlproj-no-such-image-xyz\n",
}


@pytest.mark.parametrize("case", sorted(BAD_DOCKER_ENV))
def test_bad_docker_env_is_an_input_error(tmp_path: Path, home: Home, case: str) -> None:
    project = write_project(
        tmp_path / "p", BAD_DOCKER_ENV[case] + "entry_points:\n  main:\n    command: echo hi\n"
    )
    done = mlproj("run", str(project))
    refused(done)


def test_unset_host_variable_is_named(tmp_path: Path, home: Home) -> None:
    case = BAD_DOCKER_ENV["environment unset host variable"]
    project = write_project(tmp_path / "p", case + "entry_points:\n  main:\n    command: echo hi\n")
    done = mlproj("run", str(project))
    refused(done)
    assert "MLPROJ_TEST_SURELY_UNSET_VARIABLE" in done.stderr


def test_missing_image_is_named(tmp_path: Path, home: Home) -> None:
    project = write_project(
        tmp_path / "p",
        "docker_env:\n  image: mlproj-no-such-image-xyz\nentry_points:\n  main:\n    command: echo hi\n",
    )
    started = time.monotonic()
    done = mlproj("run", str(project), "-d")
    refused(done)
    assert "mlproj-no-such-image-xyz" in done.stderr
    assert time.monotonic() - started < 60


def test_no_docker_api_is_an_input_error(tmp_path: Path, home: Home) -> None:
    project = docker_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), env={"DOCKER_HOST": "unix:///tmp/nonexistent.sock"})
    refused(done)
    assert "/tmp/nonexistent.sock" in done.stderr
    # The same with --detach: nothing is started, nothing recorded.
    detached = mlproj("run", str(project), "-d", env={"DOCKER_HOST": "unix:///tmp/nonexistent.sock"})
    refused(detached)


def test_the_container_gets_the_mlflow_run_and_mlflow_ends_it(
    tmp_path: Path, home: Home, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, docker_api: Any
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    project = docker_project(
        tmp_path / "p", "echo id=$MLFLOW_RUN_ID uri=$MLFLOW_TRACKING_URI exp=$MLFLOW_EXPERIMENT_ID"
    )
    done = mlproj("run", str(project), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    expected = f"id={record['mlflow_run_id']} uri={mlflow_server.uri} exp={record['mlflow_experiment_id']}"
    assert expected in Path(record["log_path"]).read_text()
    run = mlflow_server.run(record["mlflow_run_id"])
    assert run["info"]["status"] == "FINISHED"
    assert run["tags"]["mlflow.project.env"] == "docker"
    assert run["tags"]["mlflow.docker.image.name"] == IMAGE
    image_id = run["tags"]["mlflow.docker.image.id"]  # as MLflow tags its docker runs
    assert image_id.removeprefix("sha256:") in docker_api.images.get(IMAGE).id


def test_an_azure_ml_job_with_an_image_runs_in_it(tmp_path: Path, home: Home) -> None:
    """design.md §9: `environment: {image}` runs the step in the image; the paths bound into its
    command (inputs, outputs, the run's folder) are the same inside."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("hello\n")
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"
        "type: pipeline\n"
        "inputs:\n  d: {type: uri_folder, path: ./data}\n  label: {type: string, default: /bin}\n"
        "jobs:\n"
        "  boxed:\n"
        f"    environment: {{image: {IMAGE}}}\n"
        "    command: >-\n"
        "      busybox cat ${{inputs.d}}/in.txt > ${{outputs.o}}/copy.txt && busybox pwd > outputs/pwd\n"
        "      && echo ${{inputs.label}} > outputs/label\n"
        "    inputs:\n      d: ${{parent.inputs.d}}\n      label: ${{parent.inputs.label}}\n"
        "    outputs:\n      o: {}\n"
        "  after:\n"
        "    command: cat ${{inputs.c}}/copy.txt\n"
        "    inputs:\n      c: ${{parent.jobs.boxed.outputs.o}}\n"
    )
    done = mlproj("run", str(pipeline), "--json")
    assert done.returncode == 0, done.stderr
    steps = {step["step"]: step for step in json.loads(done.stdout)["steps"]}
    assert steps["boxed"]["env_manager"] == "docker"
    assert (Path(steps["boxed"]["outputs"]["o"]) / "copy.txt").read_text() == "hello\n"
    assert (Path(steps["boxed"]["run_dir"]) / "code" / "outputs" / "pwd").read_text() == f"{CODE_DIR}\n"
    assert Path(steps["after"]["log_path"]).read_text() == "hello\n"
    # A string that names a host folder is a string: only file and folder inputs are mounted.
    assert (Path(steps["boxed"]["run_dir"]) / "code" / "outputs" / "label").read_text() == "/bin\n"
