"""The pipeline side of the Python API (design.md §7): mlproj.run of a pipeline file, PipelineRun,
StepRun and PortDataReference, shaped like Azure ML's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlproj
from mlproj.api.pipeline import PipelineRun, PortDataReference, StepRun
from mlproj.errors import InputError, RunNotFoundError
from mlproj.home import Home
from mlproj.pipelines.loader import load_pipeline
from tests.helpers import mlproj as mlproj_cli
from tests.helpers import wait_until, write_project
from tests.pipelines import write_pipeline

PIPELINE = """
    type: pipeline
    name: api-flow
    experiment_name: api
    tags: {team: ml}
    inputs:
      word: {type: string, default: hello}
      data: {type: uri_folder, default: ./data}
    outputs:
      model: ${{parent.jobs.train.outputs.model}}
      summary: ${{parent.jobs.summarize.outputs.summary}}
    settings:
      max_parallel: 2
    jobs:
      train:
        type: mlflow_project
        uri: ./proj
        parameters:
          word: ${{parent.inputs.word}}
          data: ${{parent.inputs.data}}
          out: ${{outputs.model}}
        outputs:
          model: {type: uri_folder}
      summarize:
        code: ./src
        command: bash summarize.sh ${{inputs.model}} ${{outputs.summary}}
        inputs:
          model: ${{parent.jobs.train.outputs.model}}
        outputs:
          summary: {type: uri_file}
        retries: 1
        timeout: 60
      notify:
        command: echo notified
        depends_on: [summarize]
        allow_reuse: false
"""
PROJECT = """
name: trainer
entry_points:
  main:
    parameters:
      word: string
      data: path
      out: string
    command: echo training; echo "{word}" > {out}/weights.txt; cat {data}/rows.txt >> {out}/weights.txt
"""


def make_flow(root: Path) -> Path:
    write_project(root / "proj", PROJECT)
    (root / "data").mkdir(parents=True)
    (root / "data" / "rows.txt").write_text("1 2 3\n")
    (root / "src").mkdir()
    (root / "src" / "summarize.sh").write_text('wc -l < "$1/weights.txt" > "$2"; echo summarized\n')
    return write_pipeline(root / "flow.yml", PIPELINE)


@pytest.fixture
def flow(tmp_path: Path, home: Home) -> Path:
    return make_flow(tmp_path / "flow")


def sleeping(tmp_path: Path) -> Path:
    return write_pipeline(
        tmp_path / "sleepy.yml",
        """
        type: pipeline
        jobs:
          nap:
            command: echo napping; sleep 300
          after:
            command: echo never
            depends_on: [nap]
        """,
    )


def test_run_returns_a_pipeline_run(flow: Path, home: Home, capfd: pytest.CaptureFixture[str]) -> None:
    run = mlproj.run(str(flow), parameters={"word": "bonjour"})
    assert isinstance(run, PipelineRun)
    assert isinstance(run, mlproj.SubmittedRun)
    assert run.get_status() == "Finished"
    assert run.wait() is True
    assert run.experiment == "api"
    out = capfd.readouterr().out
    assert "train" in out and "pipeline Finished" in out
    details = run.get_details()
    assert details["kind"] == "pipeline" and details["parameters"]["word"] == "bonjour"
    assert [s["step"] for s in details["steps"]] == ["train", "summarize", "notify"]
    assert run.get_tags() == {"team": "ml"}
    # The same run, found again by ID (or a prefix), with or without its experiment.
    for again in (
        PipelineRun.get(home.root, run.run_id),
        PipelineRun.get(None, run.run_id[:8]),
        PipelineRun.get(str(home.root), run.run_id),
        PipelineRun("api", run.run_id),
        PipelineRun(None, run.run_id),
    ):
        assert again.run_id == run.run_id
        assert again.get_status() == "Finished"
    with pytest.raises(RunNotFoundError, match="experiment 'api'"):
        PipelineRun("other", run.run_id)
    with pytest.raises(RunNotFoundError):
        PipelineRun.get(home.root, "0123" * 8)
    step_id = run.find_step_run("train")[0].run_id
    with pytest.raises(InputError, match="not a pipeline run"):
        PipelineRun.get(home.root, step_id)


def test_steps_outputs_and_logs(flow: Path, home: Home, tmp_path: Path) -> None:
    run = mlproj.run(str(flow))
    assert isinstance(run, PipelineRun)
    found = run.get_steps()
    assert [s.name for s in found] == ["train", "summarize", "notify"]
    assert all(isinstance(s, StepRun) for s in found)
    assert all(s.get_status() == "Finished" for s in found)
    assert all(s.reused_from is None for s in found)
    train = found[0]
    outputs = train.get_outputs()
    assert set(outputs) == {"model"}
    model = train.get_output_data("model")
    assert isinstance(model, PortDataReference)
    assert (model.path / "weights.txt").read_text() == "hello\n1 2 3\n"
    assert model.path.is_relative_to(home.run_dir(run.run_id))
    with pytest.raises(InputError, match="no output 'nope'"):
        train.get_output_data("nope")
    assert train.get_log() == "training\n"
    assert train.get_stdout_log() == train.get_log() == train.get_stderr_log()
    (summarize,) = run.find_step_run("summarize")
    assert summarize.attempt == 1
    assert summarize.get_log() == "summarized\n"
    assert run.find_step_run("nope") == []
    assert run.get_graph() == {
        "nodes": ["train", "summarize", "notify"],
        "edges": [["train", "summarize"], ["summarize", "notify"]],
    }
    # Pipeline outputs: a folder and a file, read in place or downloaded.
    folder = run.get_pipeline_output("model")
    assert folder.path == model.path
    copy = folder.download(tmp_path / "downloads")  # into the folder, as Azure ML downloads
    assert copy == tmp_path / "downloads" / model.path.name
    assert (copy / "weights.txt").read_text() == "hello\n1 2 3\n"
    assert (folder.datastore_name, folder.path_on_datastore) == ("local", str(model.path))
    summary = run.get_pipeline_output("summary")
    assert summary.path.read_text().strip() == "2"
    (tmp_path / "files").mkdir()
    copied = summary.download(tmp_path / "files", show_progress=False)
    assert copied.parent == tmp_path / "files" and copied.read_text().strip() == "2"
    with pytest.raises(InputError, match=r"exists already \(pass overwrite=True to replace it\)"):
        summary.download(tmp_path / "files")
    assert summary.download(tmp_path / "files", overwrite=True) == copied
    with pytest.raises(InputError, match="exists already"):
        folder.download(tmp_path / "downloads")
    assert folder.download(tmp_path / "downloads", overwrite=True) == copy
    with pytest.raises(InputError, match="is a file, not a folder"):
        folder.download(copied)
    with pytest.raises(InputError, match="no output 'nope'"):
        run.get_pipeline_output("nope")


def test_a_reused_step_reads_as_the_run_it_reused(flow: Path, home: Home) -> None:
    first = mlproj.run(str(flow))
    second = mlproj.run(str(flow))
    assert isinstance(first, PipelineRun) and isinstance(second, PipelineRun)
    (train_first,) = first.find_step_run("train")
    (train_second,) = second.find_step_run("train")
    assert train_second.reused_from == train_first.run_id
    assert train_second.get_status() == "Finished"
    assert train_second.get_log() == "training\n"
    assert train_second.get_outputs()["model"].path == train_first.get_outputs()["model"].path
    (notify,) = second.find_step_run("notify")
    assert notify.reused_from is None  # allow_reuse: false
    assert second.get_pipeline_output("model").path == first.get_pipeline_output("model").path


def test_a_failing_pipeline_raises_and_records_every_attempt(tmp_path: Path, home: Home) -> None:
    flow = make_flow(tmp_path)
    (tmp_path / "src" / "summarize.sh").write_text("echo broken; exit 3\n")
    with pytest.raises(mlproj.ExecutionError, match="step summarize Failed") as info:
        mlproj.run(str(flow))
    assert info.value.status == "Failed"
    assert info.value.run_id is not None
    run = PipelineRun.get(home.root, info.value.run_id)
    assert run.get_status() == "Failed"
    tries = run.find_step_run("summarize")
    assert [(s.attempt, s.get_status()) for s in tries] == [(1, "Failed"), (2, "Failed")]
    assert run.get_steps()[1].run_id == tries[1].run_id  # the latest attempt
    assert run.find_step_run("notify")[0].get_status() == "Skipped"
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    with pytest.raises(mlproj.ExecutionError):
        run.wait_for_completion(show_output=False)
    with pytest.raises(InputError, match="no output 'summary' yet"):
        run.get_pipeline_output("summary")


def test_asynchronous_run_wait_for_completion(
    flow: Path, home: Home, capfd: pytest.CaptureFixture[str]
) -> None:
    run = mlproj.run(str(flow), synchronous=False)
    assert isinstance(run, PipelineRun)
    assert run.wait_for_completion(show_output=True, timeout_seconds=120) == "Finished"
    out = capfd.readouterr().out
    assert "summarize" in out and "pipeline Finished" in out
    again = mlproj.run(str(flow), synchronous=False, max_parallel=1)
    assert isinstance(again, PipelineRun)
    assert again.wait_for_completion(show_output=False) == "Finished"
    assert capfd.readouterr().out == ""


@pytest.mark.slow
def test_wait_for_completion_timeout_and_cancel(tmp_path: Path, home: Home) -> None:
    run = mlproj.run(str(sleeping(tmp_path)), synchronous=False)
    assert isinstance(run, PipelineRun)
    wait_until(lambda: run.find_step_run("nap")[0].get_status() == "Running")
    with pytest.raises(TimeoutError):
        run.wait_for_completion(show_output=False, timeout_seconds=0.3)
    assert run.get_status() == "Running"
    run.cancel(grace=2)
    assert run.get_status() == "Canceled"
    assert [s.get_status() for s in run.get_steps()] == ["Canceled", "Canceled"]
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Canceled"
    with pytest.raises(mlproj.ExecutionError, match="Canceled"):
        run.wait_for_completion(show_output=False)


def test_status_is_managed_by_the_steps(flow: Path, home: Home) -> None:
    run = mlproj.run(str(flow))
    assert isinstance(run, PipelineRun)
    for call in (run.child_run, run.complete, run.fail):
        with pytest.raises(NotImplementedError, match="managed by its steps"):
            call()
    assert run.get_status() == "Finished"


def test_save_writes_a_pipeline_that_loads_back_the_same(flow: Path, home: Home, tmp_path: Path) -> None:
    run = mlproj.run(str(flow))
    assert isinstance(run, PipelineRun)
    original = load_pipeline(flow)
    saved = run.save(tmp_path / "saved.yml")
    assert saved == tmp_path / "saved.yml"
    assert load_pipeline(saved).to_document() == original.to_document()
    # Saved into another folder, it still names the same projects, code and data.
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    moved = run.save(elsewhere)
    assert moved == elsewhere / "pipeline.yml"  # into the folder, named as Azure ML names it
    assert load_pipeline(moved).to_document() == original.to_document()
    done = mlproj_cli("validate", str(moved), "--json", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == ["train", "summarize", "notify"]
    # Run from there, the saved pipeline is the same pipeline: each step is reused.
    again = mlproj.run(str(moved))
    assert isinstance(again, PipelineRun)
    reused = {s.name: s.reused_from for s in again.get_steps()}
    assert reused["train"] == run.find_step_run("train")[0].run_id
    assert reused["summarize"] == run.find_step_run("summarize")[0].run_id


def test_input_errors_raise_before_anything_runs(flow: Path, home: Home) -> None:
    with pytest.raises(InputError, match="no input 'nope'"):
        mlproj.run(str(flow), parameters={"nope": 1})
    with pytest.raises(InputError, match="applies to projects"):
        mlproj.run(str(flow), entry_point="other")
    assert mlproj_cli("runs", "--json").stdout.strip() == "[]"


def test_azure_ml_s_run_api(
    flow: Path, home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What Azure ML code calls on a PipelineRun and its StepRuns (design.md §7)."""
    run = mlproj.run(str(flow))
    assert isinstance(run, PipelineRun)
    assert run.id == run.run_id
    children = run.get_children()
    assert [c.name for c in children] == ["train", "summarize", "notify"]
    train = children[0]
    assert (train.id, train.pipeline_run_id) == (train.run_id, run.run_id)
    output = train.get_output("model")
    assert output.name == "model"
    reference = output.get_port_data_reference()
    assert isinstance(reference, PortDataReference)
    assert reference.path == train.get_output_data("model").path
    assert train.get_job_log() == "training\n"
    details = train.get_details_with_logs()
    assert details["run_id"] == train.run_id and details["logFiles"] == {"output.log": "training\n"}
    assert train.wait_for_completion(show_output=False) == "Finished"
    for method in (train.child_run, train.complete, train.fail, run.child_run, run.complete, run.fail):
        with pytest.raises(NotImplementedError, match="managed by"):
            method()
    graph = run.get_graph()
    assert [node.name for node in graph.nodes] == ["train", "summarize", "notify"]
    assert [r.run_id for r in graph.nodes[0].step_runs] == [train.run_id]
    assert graph.edges == [("train", "summarize"), ("summarize", "notify")]
    assert graph.to_dict() == {
        "nodes": ["train", "summarize", "notify"],
        "edges": [["train", "summarize"], ["summarize", "notify"]],
    }
    assert graph["nodes"] == ["train", "summarize", "notify"]
    assert json.loads(json.dumps(graph.to_dict())) == graph.to_dict()
    # A second run streams its steps' output, each line after its step's name.
    capsys.readouterr()
    again = mlproj.run(str(flow), synchronous=False, force_rerun=True)
    assert isinstance(again, PipelineRun)
    assert again.wait_for_completion(show_output=True) == "Finished"
    shown = capsys.readouterr().out
    assert "[train] training" in shown and "[summarize] summarized" in shown
