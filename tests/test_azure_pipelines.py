"""Azure ML v2 pipeline job files run unchanged (design.md §9): the files under tests/azure/ (our own,
written as Azure ML's documentation writes them), each run end to end with the real `mlproj` command.

Each test copies tests/azure/ into tmp_path and runs there; nothing of Azure itself is needed."""

from __future__ import annotations

import http.server
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlproj.api.pipeline import PipelineRun
from mlproj.home import Home
from tests.clusters import need, ray_missing, slurm_missing
from tests.helpers import assert_input_error, assert_nothing_unfinished, mlproj, mlproj_json
from tests.pipelines import run_ok, run_pipeline, write_pipeline

AZURE = Path(__file__).parent / "azure"


@pytest.fixture
def azure(tmp_path: Path) -> Path:
    """A copy of tests/azure/ to run in."""
    return Path(shutil.copytree(AZURE, tmp_path / "azure"))


def steps_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in document["steps"]}


def test_components_pipeline_components_and_inline_jobs_run_end_to_end(azure: Path, home: Home) -> None:
    document = run_ok(azure / "pipeline.yml")
    steps = steps_of(document)
    # The pipeline component is flattened: its jobs are steps `stage.train` and `stage.score`.
    assert list(steps) == ["prep", "stage.train", "stage.score", "report"]
    assert document["experiment"] == "azure-tests"
    assert document["run_name"] == "azure-train"
    assert document["tags"] == {"owner": "tests", "team": "ml", "stage": "test"}  # properties and tags
    assert steps["report"]["tags"] == {"owner": "tests", "team": "ml", "stage": "test", "kind": "report"}
    # Component defaults fill what the job does not give; relative paths are the component file's.
    assert steps["prep"]["parameters"] == {"raw": str(azure / "data" / "raw.csv"), "min": "2"}
    assert (Path(steps["prep"]["outputs"]["clean"]) / "rows.csv").read_text() == "2,b\n3,c\n4,d\n"
    # The optional `epochs` has no value: its `$[[...]]` part of the command is left out.
    assert steps["stage.train"]["parameters"] == {"data": steps["prep"]["outputs"]["clean"], "lr": "0.05"}
    model = Path(steps["stage.train"]["outputs"]["model"])
    assert (model / "model.txt").read_text() == "rows=3 lr=0.05 epochs=1\n"
    # Pipeline outputs bound from inside the pipeline component with ${{parent.outputs.x}}.
    assert document["outputs"]["model"] == str(model)
    score = Path(document["outputs"]["score"])
    assert score.read_text() == "score of rows=3 lr=0.05 epochs=1\n"
    # A job that declares no outputs keeps its ./outputs folder as `artifacts`; it ran in a copy.
    artifacts = Path(steps["report"]["outputs"]["artifacts"])
    report = (artifacts / "report.txt").read_text().splitlines()
    assert report == ["score of rows=3 lr=0.05 epochs=1", "MLTable", "rows.csv", "verbose=true label=run one"]
    notes = Path(steps["stage.train"]["run_dir"]) / "code" / "outputs" / "notes.txt"
    assert notes.read_text() == f"trained in {Path(steps['stage.train']['run_dir']) / 'code'}\n"
    assert not (azure / "src" / "outputs").exists()
    # environment_variables reach the workload.
    log = mlproj("logs", document["run_id"], "--step", "prep")
    assert "prep kept 3 rows; SOURCE=azure-tests" in log.stdout


def test_set_overrides_any_key_and_survives_a_detached_run(azure: Path, home: Home) -> None:
    done = mlproj(
        "run",
        str(azure / "pipeline.yml"),
        "-d",
        "--set",
        "jobs.stage.inputs.epochs=4",
        "--set",
        "jobs.prep.inputs.min=3",
        "--set",
        "inputs.lr=0.5",
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    (azure / "components" / "train.yml").unlink()  # the run has what it runs: components resolved
    assert mlproj("wait", run_id, timeout=180).returncode == 0
    steps = steps_of(mlproj_json("status", run_id))
    assert steps["prep"]["parameters"]["min"] == "3"
    model = Path(steps["stage.train"]["outputs"]["model"]) / "model.txt"
    assert model.read_text() == "rows=2 lr=0.5 epochs=4\n"
    assert steps["stage.train"]["parameters"]["epochs"] == "4"


def test_a_set_through_something_that_is_not_a_mapping_is_exit_2(azure: Path, home: Home) -> None:
    done = mlproj("run", str(azure / "pipeline.yml"), "--set", "jobs.report.command.x=1")
    assert_input_error(done, "--set jobs.report.command.x=1", "jobs.report.command is a str, not a mapping")
    done = mlproj("run", str(azure / "pipeline.yml"), "--set", "nokey")
    assert_input_error(done, "--set nokey: expected KEY.PATH=VALUE")
    assert_nothing_unfinished(home)


def test_inputs_given_with_p_and_a_second_run_reuses_deterministic_steps(azure: Path, home: Home) -> None:
    first = run_ok(azure / "pipeline.yml", "-P", "epochs=2", "-P", "raw_data=data/raw.csv", cwd=azure)
    assert steps_of(first)["stage.train"]["parameters"]["epochs"] == "2"
    second = steps_of(run_ok(azure / "pipeline.yml", "-P", "epochs=2"))
    assert all(step["reused_from"] for step in second.values())
    other = steps_of(run_ok(azure / "pipeline.yml", "-P", "epochs=3"))
    assert other["prep"]["reused_from"] and not other["stage.train"]["reused_from"]


def test_is_deterministic_false_is_never_reused(azure: Path, home: Home) -> None:
    pipeline = write_pipeline(
        azure / "once.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          stamp:
            is_deterministic: false
            command: date +%s%N > outputs/stamp.txt
          fixed:
            command: echo fixed > outputs/fixed.txt
        """,
    )
    run_ok(pipeline)
    again = steps_of(run_ok(pipeline))
    assert again["stamp"]["reused_from"] is None
    assert again["fixed"]["reused_from"] is not None


def test_limits_timeout_and_retry_settings(azure: Path, home: Home) -> None:
    pipeline = write_pipeline(
        azure / "limits.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        settings: {continue_on_step_failure: true}
        jobs:
          flaky:
            retry_settings: {max_retries: 2}
            command: >-
              n=$(cat ../../../count 2>/dev/null || echo 0); echo $((n + 1)) > ../../../count;
              test $n -ge 1
          slow:
            limits: {timeout: 1}
            command: sleep 30
        """,
    )
    code, document = run_pipeline(pipeline)
    assert code == 1
    attempts = [(s["step"], s["status"], s["attempt"]) for s in document["steps"]]
    assert ("flaky", "Failed", 1) in attempts and ("flaky", "Finished", 2) in attempts
    slow = [s for s in document["steps"] if s["step"] == "slow"]
    assert slow[-1]["status"] == "Failed" and "timed out" in slow[-1]["error"]


def test_data_assets_and_datastore_paths_through_the_asset_map(azure: Path, home: Home) -> None:
    document = run_ok(azure / "data_assets.yml")
    count = steps_of(document)["count"]
    assert count["parameters"] == {
        "data": str(azure / "data" / "raw.csv"),
        "shared": str(azure / "data" / "extra"),
    }
    assert mlproj("logs", document["run_id"], "--step", "count").stdout.split() == ["4", "readme.txt"]


def test_an_unmapped_data_asset_is_exit_2_naming_it_and_the_map(azure: Path, home: Home) -> None:
    (azure / "azureml.yaml").write_text("computes: {}\n")
    done = mlproj("run", str(azure / "data_assets.yml"))
    assert done.returncode == 2 and done.stdout == ""
    lines = [line.strip() for line in done.stderr.strip().splitlines()]
    missing = f"not in the asset map {azure / 'azureml.yaml'} (add it under data:)"
    assert lines[1:] == [
        f"{azure / 'data_assets.yml'}:6: inputs.iris.path: azureml:iris:1: {missing}",
        f"{azure / 'data_assets.yml'}:14: jobs.count.inputs.shared.path: "
        f"azureml://datastores/workspaceblobstore/paths/shared/extra: {missing}",
    ]
    (azure / "azureml.yaml").unlink()
    done = mlproj("run", str(azure / "data_assets.yml"))
    assert done.returncode == 2
    assert "azureml:iris:1" in done.stderr and "there is none at" in done.stderr
    assert_nothing_unfinished(home)
    assert mlproj_json("runs") == []


def test_asset_map_given_elsewhere(azure: Path, home: Home, tmp_path: Path) -> None:
    elsewhere = tmp_path / "maps" / "mine.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(
        f"data:\n  iris: {azure / 'data' / 'raw.csv'}\n"
        f"  azureml://datastores/workspaceblobstore/paths/shared: {azure / 'data'}\n"
    )
    (azure / "azureml.yaml").unlink()
    document = run_ok(azure / "data_assets.yml", "--asset-map", str(elsewhere))
    assert steps_of(document)["count"]["parameters"]["data"] == str(azure / "data" / "raw.csv")
    done = mlproj("run", str(azure / "data_assets.yml"), "--asset-map", str(tmp_path / "none.yaml"))
    assert done.returncode == 2 and "none.yaml" in done.stderr


def test_unmapped_environments_and_computes_run_locally_with_a_notice(azure: Path, home: Home) -> None:
    (azure / "azureml.yaml").unlink()
    done = mlproj("run", str(azure / "pipeline.yml"))
    assert done.returncode == 0, done.stderr
    notices = [line for line in done.stderr.splitlines() if line.startswith("mlproj: warning:")]
    assert any("settings.default_compute: azureml:cpu-cluster" in n and "runs locally" in n for n in notices)
    assert any("prep.yml:" in n and "azureml:sklearn-env:1" in n for n in notices)
    assert len(notices) == len(set(notices))


def test_a_conda_file_environment_is_built_and_used(azure: Path, home: Home) -> None:
    document = run_ok(azure / "environments.yml", "--env-manager", "uv")
    built = steps_of(document)["built"]
    assert built["env_manager"] == "uv"
    line = mlproj("logs", document["run_id"], "--step", "built").stdout.strip()
    assert line.startswith("six ") and sys.prefix not in line


@pytest.mark.parametrize("kind", ["spark", "automl", "data_transfer", "import"])
def test_azure_only_job_types_are_refused_naming_the_job(azure: Path, home: Home, kind: str) -> None:
    pipeline = write_pipeline(
        azure / "cloud.yml",
        f"""
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          fine:
            command: echo fine
          cloudy:
            type: {kind}
        """,
    )
    done = mlproj("run", str(pipeline))
    assert_input_error(done, "jobs.cloudy.type", f"job 'cloudy' is an Azure ML {kind} job: it needs Azure")
    assert mlproj_json("runs") == []


def test_every_problem_of_a_file_is_reported_at_once(azure: Path, home: Home) -> None:
    pipeline = write_pipeline(
        azure / "bad.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        inputs:
          weird: {type: tensor}
        jobs:
          prep:
            component: ./components/prep.yml
            inputs:
              raw: ./data/raw.csv
              nope: 1
            colour: blue
          train:
            component: ./components/train.yml
          report:
            command: echo ${{inputs.missing}}
            sizes: 3
        """,
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2 and done.stdout == ""
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("mlproj: warning:")]
    assert lines[0] == f"mlproj: error: {pipeline}: 6 problems"
    expected = [
        f"{pipeline}:4: inputs.weird.type: unknown type 'tensor'",
        f"{pipeline}:10: jobs.prep.inputs.nope: component {azure / 'components/prep.yml'} declares no input",
        f"{pipeline}:11: jobs.prep.colour: unknown key for a command step",
        f"{pipeline}:12: jobs.train.inputs.data: no value for the component's required input 'data'",
        f"{pipeline}:15: jobs.report.command: ${{{{inputs.missing}}}}: this step declares no input 'missing'",
        f"{pipeline}:16: jobs.report.sizes: unknown key for a command step",
    ]
    for line, start in zip(lines[1:], expected, strict=True):
        assert line.strip().startswith(start), (line, start)
    assert "Traceback" not in done.stderr
    assert mlproj_json("runs") == []


def test_a_problem_in_a_component_names_the_component_file(azure: Path, home: Home) -> None:
    component = azure / "components" / "train.yml"
    component.write_text(component.read_text().replace("environment:", "enviroment:"))
    done = mlproj("run", str(azure / "pipeline.yml"))
    assert_input_error(done, f"{component}:13: enviroment: unknown key for a command component")


def test_validate_and_graph_read_azure_files(azure: Path, home: Home) -> None:
    shown = mlproj("validate", str(azure / "pipeline.yml"), "--set", "inputs.lr=0.2")
    assert shown.returncode == 0, shown.stderr
    assert "stage.train" in shown.stdout
    graph = mlproj("graph", str(azure / "pipeline.yml"), "--format", "json")
    edges = {tuple(edge) for edge in json.loads(graph.stdout)["edges"]}
    # `report` uses an output of the pipeline job `stage`: it waits for all of it, as in Azure ML.
    assert edges == {
        ("prep", "stage.train"),
        ("stage.train", "stage.score"),
        ("stage.score", "report"),
        ("stage.train", "report"),
    }


def test_a_step_mapped_to_slurm_through_computes_runs_on_slurm(azure: Path, home: Home) -> None:
    need("slurm", slurm_missing())
    document = run_ok(azure / "slurm.yml", "--asset-map", str(azure / "slurm-assets.yml"))
    here, there = steps_of(document)["here"], steps_of(document)["there"]
    assert (here["backend"], there["backend"]) == ("local", "slurm")
    assert there["backend_config"]["partition"] == "debug"
    # resources.instance_count and distribution.process_count_per_instance: Slurm's nodes and tasks.
    assert there["backend_config"]["sbatch_args"] == ["--nodes=1", "--ntasks-per-node=1"]
    written = Path(there["outputs"]["artifacts"]) / "where.txt"
    assert written.read_text() == f"there in job {there['job_id']}\n"
    assert (Path(here["outputs"]["artifacts"]) / "where.txt").read_text() == "here in \n"


def test_a_step_mapped_to_ray_reserves_a_cpu_per_process(azure: Path, home: Home) -> None:
    need("ray", ray_missing())
    (azure / "ray-assets.yml").write_text("computes:\n  ray-box: {backend: ray}\n")
    pipeline = write_pipeline(
        azure / "ray.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          there:
            compute: azureml:ray-box
            distribution: {type: pytorch, process_count_per_instance: 1}
            command: echo on ray > outputs/where.txt
        """,
    )
    document = run_ok(pipeline, "--asset-map", str(azure / "ray-assets.yml"))
    there = steps_of(document)["there"]
    assert there["backend"] == "ray" and there["backend_state"] == "SUCCEEDED"
    assert there["backend_config"] == {"num_cpus": 1}
    assert (Path(there["outputs"]["artifacts"]) / "where.txt").read_text() == "on ray\n"


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A folder served over HTTP on 127.0.0.1 (a real server in a thread)."""
    folder = tmp_path / "served"
    folder.mkdir()

    def handler(*args: Any) -> _Files:
        return _Files(*args, directory=str(folder))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


def test_http_inputs_are_downloaded_into_the_run(
    azure: Path, home: Home, http_folder: tuple[str, Path]
) -> None:
    url, served = http_folder
    (served / "rows.csv").write_text("5,e\n6,f\n")
    pipeline = write_pipeline(
        azure / "remote.yml",
        f"""
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        inputs:
          raw: {{type: uri_file, path: {url}/rows.csv}}
        jobs:
          prep:
            component: ./components/prep.yml
            inputs:
              raw: ${{{{parent.inputs.raw}}}}
          own:
            command: cat ${{{{inputs.f}}}}
            inputs:
              f: {{type: uri_file, path: {url}/rows.csv}}
        """,
    )
    document = run_ok(pipeline)
    run_dir = Path(document["run_dir"])
    steps = steps_of(document)
    assert Path(steps["prep"]["parameters"]["raw"]).is_relative_to(run_dir / "inputs")
    assert (Path(steps["prep"]["outputs"]["clean"]) / "rows.csv").read_text() == "5,e\n6,f\n"
    assert Path(steps["own"]["parameters"]["f"]).is_relative_to(run_dir / "inputs")
    assert document["parameters"]["raw"] == f"{url}/rows.csv"
    done = mlproj("run", str(pipeline), "--set", f"inputs.raw.path={url}/missing.csv")
    assert done.returncode == 2 and "inputs.raw: " in done.stderr and "404" in done.stderr
    assert [run["run_id"] for run in mlproj_json("runs")] == [document["run_id"]]
    assert [folder.name for folder in (home.root / "runs").iterdir()] == [document["run_id"]]


def test_python_api_overrides_and_asset_map(azure: Path, home: Home, tmp_path: Path) -> None:
    import mlproj as api

    elsewhere = tmp_path / "assets.yaml"
    shutil.move(azure / "azureml.yaml", elsewhere)
    with pytest.warns(UserWarning, match="azureml:AzureML-sklearn-1.5@latest: not in the asset map"):
        run = api.run(
            str(azure / "pipeline.yml"),
            parameters={"epochs": 5},
            overrides={"jobs.prep.inputs.min": 1, "inputs.label": "from python"},
            asset_map=elsewhere,
        )
    assert isinstance(run, PipelineRun)
    assert run.get_status() == "Finished"
    children = {child.name: child for child in run.get_children()}
    assert set(children) == {"prep", "stage.train", "stage.score", "report"}
    model = children["stage.train"].get_output("model").get_port_data_reference()
    target = tmp_path / "model"
    target.mkdir()
    model.download(target, show_progress=False)
    assert (target / "model" / "model.txt").read_text() == "rows=4 lr=0.05 epochs=5\n"


def test_a_detached_run_keeps_its_asset_map(azure: Path, home: Home, tmp_path: Path) -> None:
    elsewhere = tmp_path / "assets.yaml"
    elsewhere.write_text(
        f"data:\n  azureml:iris:1: {azure / 'data/raw.csv'}\n"
        f"  azureml://datastores/workspaceblobstore/paths/shared/: {azure / 'data'}\n"
    )
    (azure / "azureml.yaml").unlink()
    done = mlproj(
        "run",
        str(azure / "data_assets.yml"),
        "-d",
        "-P",
        "iris=azureml:iris:1",
        "--asset-map",
        str(elsewhere),
    )
    assert done.returncode == 0, done.stderr
    assert mlproj("wait", done.stdout.strip(), timeout=120).returncode == 0
    assert steps_of(mlproj_json("status", done.stdout.strip()))["count"]["status"] == "Finished"


def test_the_copy_of_the_code_leaves_out_a_home_inside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "script.sh").write_text("echo from the copy\n")
    pipeline = write_pipeline(
        project / "pipeline.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          here:
            code: .
            command: ls -A && sh script.sh
        """,
    )
    monkeypatch.setenv("MLPROJ_HOME", str(project / ".mlproj"))
    document = run_ok(pipeline)
    log = mlproj("logs", document["run_id"], "--step", "here")
    assert log.stdout.split() == ["outputs", "pipeline.yml", "script.sh", "from", "the", "copy"]


def test_an_input_that_uses_an_optional_input_without_a_value_has_none(azure: Path, home: Home) -> None:
    pipeline = write_pipeline(
        azure / "optional.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        inputs:
          epochs: {type: integer, optional: true, max: 10}
        jobs:
          show:
            command: echo start $[[${{inputs.flag}}]] end
            inputs:
              flag: --epochs=${{parent.inputs.epochs}}
        """,
    )
    first = run_ok(pipeline)
    assert mlproj("logs", first["run_id"], "--step", "show").stdout == "start end\n"
    second = run_ok(pipeline, "-P", "epochs=3")
    assert mlproj("logs", second["run_id"], "--step", "show").stdout == "start --epochs=3 end\n"
    done = mlproj("run", str(pipeline), "-P", "epochs=30")
    assert_input_error(done, "-P epochs (integer): expected at most 10, got 30")
