"""Azure ML parallel jobs (design.md §9): an entry script's init() and run(mini_batch) over the files or
rows of an input, in several processes, with retries and error thresholds (tests/azure/parallel/)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlproj.home import Home
from tests.clusters import need, ray_missing, slurm_missing
from tests.helpers import mlproj, mlproj_json
from tests.pipelines import run_ok, run_pipeline, write_pipeline

PARALLEL = Path(__file__).parent / "azure" / "parallel"
FILES = 25


@pytest.fixture
def parallel(tmp_path: Path) -> Path:
    folder = Path(shutil.copytree(PARALLEL, tmp_path / "parallel"))
    (folder / "files").mkdir()
    for index in range(1, FILES + 1):
        (folder / "files" / f"f{index:02d}.txt").write_text(f"{index}\n")
    return folder


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = [s for s in document["steps"] if s["step"] == name][-1]
    return found


def test_every_file_is_processed_exactly_once_even_when_a_batch_is_retried(
    parallel: Path, home: Home, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    document = run_ok(parallel / "pipeline.yml", "-P", f"fail_once={markers}")
    score = step(document, "score")
    lines = Path(score["outputs"]["scores"]).read_text().splitlines()
    assert sorted(lines) == [f"scored f{index:02d}.txt" for index in range(1, FILES + 1)]
    assert (markers / "f07.txt").exists()  # its batch failed once, and ran again
    log = Path(score["log_path"]).read_text()
    assert "mini-batch 1 failed (attempt 1): RuntimeError: the first try of f07.txt fails" in log
    assert "mlproj parallel: 7 of 7 mini-batches done, 0 failed" in log
    assert log.count("init in process") >= 3  # one init() per worker process
    assert mlproj("logs", document["run_id"], "--step", "count").stdout.strip() == str(FILES)
    progress = Path(score["run_dir"]) / "progress.json"
    assert progress.read_text() == '{"done": 7, "total": 7, "failed": 0}'


def test_rows_of_a_table_are_cut_into_mini_batches(parallel: Path, home: Home) -> None:
    document = run_ok(parallel / "rows.yml")
    lines = Path(step(document, "score_rows")["outputs"]["scores"]).read_text().splitlines()
    assert sorted(lines) == [f"row r{index:02d}" for index in range(1, 11)]
    assert "10 rows in 4 mini-batches" in Path(step(document, "score_rows")["log_path"]).read_text()


def test_a_batch_that_always_fails_fails_the_job_past_its_threshold(parallel: Path, home: Home) -> None:
    code, document = run_pipeline(parallel / "pipeline.yml", "-P", "always_fail=f10.txt")
    assert code == 1
    score = step(document, "score")
    assert score["status"] == "Failed"
    log = Path(score["log_path"]).read_text()
    assert log.count("RuntimeError: f10.txt always fails") == 3  # the try and max_retries 2
    assert "failed: 4 items and 1 mini-batches failed" in log
    assert step(document, "count")["status"] == "Skipped"


def test_a_batch_that_outlasts_its_timeout_is_tried_again_in_a_new_process(
    parallel: Path, home: Home
) -> None:
    component = parallel / "component.yml"
    component.write_text(
        component.read_text()
        .replace("timeout: 20", "timeout: 2")
        .replace("max_retries: 2", "max_retries: 1")
        .replace("mini_batch_error_threshold: 0", "mini_batch_error_threshold: 1")
    )
    document = run_ok(parallel / "pipeline.yml", "-P", "sleep_on=f03.txt")
    log = Path(step(document, "score")["log_path"]).read_text()
    assert log.count("mini-batch 0 failed") == 2 and "timed out after 2 s" in log
    assert "mlproj parallel: 6 of 7 mini-batches done, 1 failed" in log
    lines = Path(step(document, "score")["outputs"]["scores"]).read_text().splitlines()
    assert len(lines) == FILES - 4 and "scored f01.txt" not in lines


def test_a_parallel_job_without_an_entry_script_is_exit_2(parallel: Path, home: Home) -> None:
    pipeline = write_pipeline(
        parallel / "bad.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          a:
            type: parallel
            inputs: {d: {type: uri_folder, path: ./files}}
            input_data: ${{inputs.d}}
            task: {code: ./src}
          b:
            type: parallel
            inputs: {d: {type: uri_folder, path: ./files}}
            input_data: ./files
            mini_batch_size: lots
            task: {code: ./src, entry_script: score.py}
        """,
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2 and done.stdout == ""
    assert "jobs.a.task.entry_script: a parallel job needs its entry_script" in done.stderr
    assert "jobs.b.input_data: expected the input it cuts into mini-batches: ${{inputs.NAME}}" in done.stderr
    assert mlproj_json("runs") == []


def test_a_job_none_of_whose_batches_succeed_fails(parallel: Path, home: Home) -> None:
    entry = parallel / "src" / "score.py"
    entry.write_text(
        entry.read_text().replace("def init() -> None:", "def init() -> None:\n    raise SystemExit(7)\n")
    )
    component = parallel / "component.yml"
    component.write_text(
        component.read_text()
        .replace("max_retries: 2", "max_retries: 0")
        .replace("mini_batch_error_threshold: 0", "mini_batch_error_threshold: -1")
    )
    code, document = run_pipeline(parallel / "pipeline.yml")
    assert code == 1
    log = Path(step(document, "score")["log_path"]).read_text()
    assert "mlproj parallel: failed: none of the 7 mini-batches succeeded" in log


SLURM_ASSETS = Path(__file__).parent / "azure" / "slurm-assets.yml"


def _instances(*extra: str) -> list[str]:
    """`--set` arguments: two instances of one process each (the test cluster has two CPUs)."""
    given = ["resources.instance_count=2", "max_concurrency_per_instance=1", *extra]
    return [argument for value in given for argument in ("--set", f"jobs.score.{value}")]


def test_instances_on_slurm_are_tasks_sharing_the_batches_once_each(
    parallel: Path, home: Home, tmp_path: Path
) -> None:
    need("slurm", slurm_missing())
    markers = tmp_path / "markers"
    markers.mkdir()
    document = run_ok(
        parallel / "pipeline.yml",
        "-P",
        f"fail_once={markers}",
        "--asset-map",
        str(SLURM_ASSETS),
        *_instances("compute=azureml:cpu-cluster"),
    )
    score = step(document, "score")
    assert score["backend"] == "slurm"
    assert score["backend_config"]["sbatch_args"] == ["--ntasks=2", "--cpus-per-task=1"]
    lines = Path(score["outputs"]["scores"]).read_text().splitlines()
    assert sorted(lines) == [f"scored f{index:02d}.txt" for index in range(1, FILES + 1)]  # once each
    log = Path(score["log_path"]).read_text()
    assert "mlproj parallel: 2 instances as Slurm tasks" in log
    assert "mini-batch 1 failed (attempt 1): RuntimeError: the first try of f07.txt fails" in log
    assert "mlproj parallel: 7 of 7 mini-batches done, 0 failed" in log
    # Each instance took every other mini-batch: 4 and 3 of the 7.
    work = Path(score["run_dir"]) / "parallel"
    counts = [json.loads((work / f"instance-{index}.json").read_text())["done"] for index in range(2)]
    assert counts == [4, 3]
    assert json.loads((Path(score["run_dir"]) / "progress.json").read_text())["done"] == 7


def test_a_failing_instance_on_slurm_fails_the_job(parallel: Path, home: Home) -> None:
    need("slurm", slurm_missing())
    code, document = run_pipeline(
        parallel / "pipeline.yml",
        "-P",
        "always_fail=f06.txt",
        "--asset-map",
        str(SLURM_ASSETS),
        *_instances("compute=azureml:cpu-cluster"),
    )
    assert code == 1
    score = step(document, "score")
    assert score["status"] == "Failed"
    log = Path(score["log_path"]).read_text()
    assert "mlproj parallel: failed: 4 items and 1 mini-batches failed" in log


def test_instances_on_ray_are_processes_on_its_node(parallel: Path, home: Home) -> None:
    need("ray", ray_missing())
    (parallel / "ray-assets.yml").write_text("computes:\n  ray-box: {backend: ray}\n")
    document = run_ok(
        parallel / "pipeline.yml",
        "--asset-map",
        str(parallel / "ray-assets.yml"),
        *_instances("compute=azureml:ray-box"),
    )
    score = step(document, "score")
    assert score["backend"] == "ray" and score["backend_config"] == {"num_cpus": 2}
    log = Path(score["log_path"]).read_text()
    assert "mlproj parallel: 2 instances as 2 processes on this node" in log
    lines = Path(score["outputs"]["scores"]).read_text().splitlines()
    assert sorted(lines) == [f"scored f{index:02d}.txt" for index in range(1, FILES + 1)]


def test_instances_on_this_machine_are_one_with_a_notice(parallel: Path, home: Home) -> None:
    done = mlproj("run", str(parallel / "pipeline.yml"), "--json", *_instances())
    assert done.returncode == 0, done.stderr
    assert "jobs.score.resources.instance_count: this machine is one instance: 1 processes" in done.stderr
    score = step(json.loads(done.stdout), "score")
    assert "instance_count 2: one instance here" in Path(score["log_path"]).read_text()
