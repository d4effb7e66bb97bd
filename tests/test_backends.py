"""Backends without a cluster: the registry, backend_config checks, third-party backends through the
`mlproj.backends` entry-point group (a real installed-distribution layout in tmp_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mlproj.home import Home
from tests.helpers import assert_input_error, command_project, mlproj, mlproj_json

PLUGIN = '''
"""A third-party backend: runs locally, and tells the workload it went through the plugin."""
from dataclasses import replace

from mlproj.backends.local import LocalBackend


class MarkingBackend(LocalBackend):
    name = "marking"

    def launch(self, launch):
        env = {**launch.process.env, "THROUGH_PLUGIN": "yes:" + launch.record.backend}
        return super().launch(replace(launch, process=replace(launch.process, env=env)))


class NotABackend:
    pass


def broken():
    raise RuntimeError("this plugin is broken")
'''


def install_plugin(site: Path) -> dict[str, str]:
    """A distribution `mlproj-marking` with entry points, as pip would install it into `site`."""
    site.mkdir(parents=True)
    (site / "mlproj_marking.py").write_text(PLUGIN)
    dist = site / "mlproj_marking-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mlproj-marking\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[mlproj.backends]\n"
        "marking = mlproj_marking:MarkingBackend\n"
        "not-a-backend = mlproj_marking:NotABackend\n"
        "broken = mlproj_marking:broken\n"
        "missing = mlproj_marking_gone:Backend\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def test_a_third_party_backend_runs_through_its_entry_point(tmp_path: Path, home: Home) -> None:
    env = install_plugin(tmp_path / "site")
    project = command_project(tmp_path / "p", "echo plugin=$THROUGH_PLUGIN")
    done = mlproj("run", str(project), "-b", "marking", "--json", env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["backend"] == "marking"
    assert record["status"] == "Finished"
    assert Path(record["log_path"]).read_text() == "plugin=yes:marking\n"
    # status and wait work for it from another process, as for any run.
    assert mlproj_json("status", record["run_id"], env=env)["backend"] == "marking"


@pytest.mark.parametrize(
    ("backend", "needle"),
    [
        ("not-a-backend", "is not an mlproj Backend"),
        ("broken", "this plugin is broken"),
        ("missing", "cannot be loaded"),
        (
            "nosuch",
            "unknown backend 'nosuch' (available: local, slurm, ray, kubernetes, broken, marking, missing",
        ),
    ],
)
def test_bad_backends_are_input_errors(tmp_path: Path, home: Home, backend: str, needle: str) -> None:
    env = install_plugin(tmp_path / "site")
    project = command_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), "-b", backend, env=env)
    assert_input_error(done, needle)
    assert mlproj_json("runs", env=env) == []


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ('{"partitoin": "debug"}', "backend slurm: unknown backend_config key 'partitoin' (known: account,"),
        ('{"time": "soon"}', "backend slurm: backend_config time='soon': expected a time limit"),
        ('{"cpus_per_task": 0}', "cpus_per_task=0: expected a whole number of at least 1"),
        ('{"cpus_per_task": "two"}', "cpus_per_task='two'"),
        ('{"mem": "lots"}', "mem='lots': expected an amount of memory"),
        ('{"gpus": "a:b"}', "gpus='a:b': expected a number of GPUs"),
        ('{"sbatch_args": {"a": 1}}', "sbatch_args={'a': 1}: expected a list of strings"),
        ('{"partition": ""}', "partition='': expected a non-empty string"),
        ("[1, 2]", "--backend-config: expected a mapping of settings, got list"),
        ("{nope", "--backend-config: malformed JSON"),
    ],
)
def test_bad_slurm_config_is_an_input_error(tmp_path: Path, home: Home, config: str, needle: str) -> None:
    project = command_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), "-b", "slurm", "-c", config)
    assert_input_error(done, needle)
    assert mlproj_json("runs") == []


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ('{"adress": "http://x"}', "backend ray: unknown backend_config key 'adress'"),
        ('{"num_cpus": -1}', "backend ray: backend_config num_cpus=-1: expected a positive number"),
        ('{"runtime_env": "pip"}', "runtime_env='pip': expected a mapping"),
    ],
)
def test_bad_ray_config_is_an_input_error(tmp_path: Path, home: Home, config: str, needle: str) -> None:
    project = command_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), "-b", "ray", "-c", config)
    assert_input_error(done, needle)


def test_backend_config_from_a_yaml_file(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo hi")
    config = tmp_path / "slurm.yaml"
    config.write_text("partition: debug\ntime: bad time\n")
    done = mlproj("run", str(project), "-b", "slurm", "-c", str(config))
    assert_input_error(done, "time='bad time'")
    missing = mlproj("run", str(project), "-b", "slurm", "-c", str(tmp_path / "nope.json"))
    assert_input_error(missing, "no such file")


def test_the_local_backend_takes_no_configuration(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo hi")
    done = mlproj("run", str(project), "-c", '{"partition": "debug"}')
    assert_input_error(done, "backend local: unknown backend_config key 'partition' (known: none)")


def test_a_cluster_that_does_not_answer_is_an_input_error(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo hi")
    # A Slurm configuration naming a controller nobody runs: sinfo cannot reach it.
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=nowhere\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1\nAuthType=auth/none\n"
        "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=p Nodes=localhost Default=YES\n"
    )
    done = mlproj(
        "run", str(project), "-b", "slurm", env={"SLURM_CONF": str(conf), "PATH": os.environ["PATH"]}
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("mlproj: error: backend slurm: ")
    assert mlproj_json("runs") == []
    ray = mlproj("run", str(project), "-b", "ray", "-c", '{"address": "http://127.0.0.1:9"}')
    assert ray.returncode == 2, ray.stderr
    assert ray.stderr.startswith("mlproj: error: backend ray: "), ray.stderr
    assert mlproj_json("runs") == []


@pytest.mark.parametrize(
    ("settings", "step", "needle"),
    [
        (
            "  backend: moon\n",
            "",
            ":3: settings.backend: unknown backend 'moon' (available: local, slurm, ray, kubernetes",
        ),
        ("", "    backend: 7\n", ":7: jobs.a.backend: expected the name of a backend, got 7"),
        ("", "    backend_config: [1]\n", ":7: jobs.a.backend_config: expected a mapping"),
        (
            "",
            "    backend: slurm\n    backend_config: {partitoin: x}\n",
            "jobs.a: backend_config: backend slurm:",
        ),
        ("  backend: ray\n  backend_config: {num_cpus: none}\n", "", "settings.backend_config: backend ray:"),
    ],
)
def test_bad_pipeline_backends_are_input_errors(
    tmp_path: Path, home: Home, settings: str, step: str, needle: str
) -> None:
    pipeline = tmp_path / "pipeline.yml"
    settings = settings or "  max_parallel: 1\n"
    pipeline.write_text(f"type: pipeline\nsettings:\n{settings}jobs:\n  a:\n    command: echo hi\n{step}")
    done = mlproj("run", str(pipeline))
    assert_input_error(done, str(pipeline), needle)
    assert mlproj_json("runs") == []


def test_a_container_log_stream_that_does_not_end_is_closed_once_the_container_exited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake container: Podman's log stream that, at times, does not end when the container exits
    cannot be made to happen on purpose against a real engine."""
    import threading

    from mlproj.backends import containers

    monkeypatch.setattr(containers, "LOG_GRACE", 0.2)

    class Stream:
        def __init__(self) -> None:
            self.closed = threading.Event()

        def __iter__(self) -> Any:
            yield b"all the output\n"
            self.closed.wait(30)  # a stream that would never end by itself

        def close(self) -> None:
            self.closed.set()

    class Container:
        def __init__(self) -> None:
            self.attrs: dict[str, Any] = {}
            self.stream = Stream()

        def logs(self, **_options: Any) -> Stream:
            return self.stream

        def wait(self) -> dict[str, int]:
            return {"StatusCode": 3}

    container = Container()
    log = tmp_path / "output.log"
    workload = containers.ContainerWorkload(None, container, log)
    assert workload.wait(10) == 3
    assert container.stream.closed.is_set()
    assert log.read_bytes() == b"all the output\n"
