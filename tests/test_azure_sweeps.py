"""Hyperparameter sweeps in Azure ML v2 pipelines (design.md §9): trials run as steps, their objective
read from the MLflow metrics they log (tests/azure/sweep/, with a real MLflow; the trials import it).

The trials log to the session's MLflow server where the pipeline is tracked, and to a SQLite store of
their own otherwise; both are run here."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from mlproj.home import Home
from mlproj.pipelines.sweeps import sample, sobol, space_problems, to_stop
from tests.helpers import mlproj, mlproj_json
from tests.mlflow_server import MLFLOW_MISSING, MlflowServer, mlflow_python
from tests.pipelines import run_ok, run_pipeline, write_pipeline

SWEEP = Path(__file__).parent / "azure" / "sweep"


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """tests/azure/sweep/ with the trial run by an interpreter that has MLflow."""
    python = mlflow_python()
    if python is None:
        from tests.clusters import need

        need("mlflow", MLFLOW_MISSING)
    folder = Path(shutil.copytree(SWEEP, tmp_path / "sweep"))
    trial = folder / "trial.yml"
    trial.write_text(trial.read_text().replace("PYTHON", str(python)))
    return folder


@pytest.fixture
def tracked(mlflow_server: MlflowServer, home: Home, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    return mlflow_server


def latest(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in document["steps"]}


def test_a_grid_sweep_finds_the_known_best_trial(sweep: Path, tracked: MlflowServer) -> None:
    document = run_ok(sweep / "grid.yml", "--max-parallel", "3")
    steps = latest(document)
    trials = [steps[f"tune.{index}"] for index in range(6)]
    points = [(float(t["parameters"]["x"]), int(t["parameters"]["y"])) for t in trials]
    assert points == [(0.1, 1), (0.1, 2), (0.3, 1), (0.3, 2), (0.5, 1), (0.5, 2)]
    # Each trial is an MLflow run nested under the pipeline's, its metric read from the server.
    assert all(t["mlflow_run_id"] for t in trials)
    best_run = tracked.run(trials[3]["mlflow_run_id"])
    assert best_run["metrics"] == {"score": 2.0}
    assert best_run["tags"]["mlflow.parentRunId"] == document["mlflow_run_id"]
    node = steps["tune"]
    assert node["reason"] == "best trial tune.3: score=2 (maximize), of 6 trials"
    assert trials[3]["reason"].endswith("; score=2")  # each trial says its metric (status, the web UI)
    assert node["parameters"] == trials[3]["parameters"]
    assert node["outputs"] == trials[3]["outputs"]
    assert document["outputs"]["best_model"] == trials[3]["outputs"]["model"]
    assert mlproj("logs", document["run_id"], "--step", "use").stdout == "x=0.3 y=2\n"
    assert "tune.trial" not in steps  # the trial is a template


def test_a_random_sweep_with_a_seed_is_reproduced_exactly(sweep: Path, tracked: MlflowServer) -> None:
    space = {"x": {"type": "uniform", "min_value": 0, "max_value": 1}, "y": {"type": "randint", "upper": 3}}
    expected = sample(space, "random", 4, 11)
    for _ in range(2):
        steps = latest(run_ok(sweep / "random.yml", "--max-parallel", "4", "--force-rerun"))
        got = [steps[f"tune.{index}"]["parameters"] for index in range(4)]
        assert [(float(p["x"]), int(p["y"])) for p in got] == [(e["x"], e["y"]) for e in expected]
    assert sample(space, "random", 4, 12) != expected


def test_a_bandit_policy_stops_bad_trials_early(sweep: Path, tracked: MlflowServer) -> None:
    document = run_ok(sweep / "bandit.yml", "--max-parallel", "3")
    steps = latest(document)
    good, bad, worse = steps["tune.0"], steps["tune.1"], steps["tune.2"]
    assert good["status"] == "Finished"
    for trial in (bad, worse):
        assert trial["status"] == "Canceled", trial
        assert "early termination (bandit:" in trial["error"]
        assert trial["duration_s"] < good["duration_s"]
    assert steps["tune"]["status"] == "Finished"
    assert steps["tune"]["reason"].startswith("best trial tune.0: score=9.96")


def test_without_tracking_trials_log_to_a_store_of_their_own(sweep: Path, home: Home) -> None:
    grid = sweep / "grid.yml"
    grid.write_text(grid.read_text().replace("values: [0.1, 0.3, 0.5]", "values: [0.3]"))
    document = run_ok(grid, "--max-parallel", "2")
    steps = latest(document)
    assert steps["tune.1"]["mlflow_run_id"] is None
    assert (Path(steps["tune.1"]["run_dir"]) / "mlflow.db").is_file()
    assert steps["tune"]["reason"] == "best trial tune.1: score=2 (maximize), of 2 trials"


def test_a_trial_without_its_metric_fails_and_the_sweep_goes_on(sweep: Path, tracked: MlflowServer) -> None:
    grid = sweep / "grid.yml"
    grid.write_text(grid.read_text().replace("values: [0.1, 0.3, 0.5]", "values: [0.3, -1]"))
    document = run_ok(grid, "--max-parallel", "1")  # one at a time: the first trial logs its metric
    steps = latest(document)
    assert steps["tune.2"]["status"] == "Failed"
    assert steps["tune.2"]["error"] == (
        "the trial logged no primary metric 'score' (MLflow, through mlflow.log_metric)"
    )
    assert steps["tune.3"]["status"] == "Failed"
    assert steps["tune"]["status"] == "Finished" and steps["tune"]["reason"].startswith("best trial tune.1")


def test_a_sweep_no_trial_of_which_logs_its_metric_fails(sweep: Path, tracked: MlflowServer) -> None:
    grid = sweep / "grid.yml"
    grid.write_text(
        grid.read_text().replace("values: [0.1, 0.3, 0.5]", "values: [-1]").replace("[1, 2]", "[1]")
    )
    code, document = run_pipeline(grid)
    assert code == 1
    steps = latest(document)
    assert steps["tune"]["status"] == "Failed"
    assert (
        steps["tune"]["error"]
        == "the first trial, tune.0, logged no primary metric 'score': the sweep stopped"
    )
    assert steps["use"]["status"] == "Skipped"


def test_a_primary_metric_no_trial_logs_is_caught_at_the_first_trial(
    sweep: Path, tracked: MlflowServer
) -> None:
    grid = sweep / "grid.yml"
    grid.write_text(grid.read_text().replace("primary_metric: score", "primary_metric: acuracy"))
    code, document = run_pipeline(grid, "--max-parallel", "1")
    assert code == 1
    steps = latest(document)
    first = "the first trial, tune.0, logged no primary metric 'acuracy': the sweep stopped"
    assert steps["tune"]["error"] == first
    assert steps["tune.0"]["status"] == "Failed"
    assert {steps[f"tune.{i}"]["status"] for i in range(1, 6)} == {"Skipped"}


def test_bad_sweeps_are_exit_2_naming_every_key(sweep: Path, home: Home) -> None:
    pipeline = write_pipeline(
        sweep / "bad.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          a:
            type: sweep
            trial: ./trial.yml
            search_space:
              x: {type: gaussian, mu: 0}
              y: {type: uniform, min_value: 3, max_value: 1}
              steps: {type: choice, values: []}
            sampling_algorithm: bayesian
            objective: {goal: best}
          b:
            type: sweep
            trial: ./trial.yml
            search_space:
              x: {type: uniform, min_value: 0, max_value: 1}
              nope: {type: choice, values: [1]}
            sampling_algorithm: grid
            objective: {goal: minimize, primary_metric: loss}
            early_termination: {type: bandit}
          c:
            type: sweep
            trial: ./missing.yml
        """,
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2 and done.stdout == ""
    for expected in (
        "jobs.a.search_space.x: expected {type: KIND, ...} with KIND one of: choice, randint",
        "jobs.a.search_space.y: expected min_value below max_value",
        "jobs.a.search_space.steps.values: expected a non-empty list",
        "jobs.a.sampling_algorithm: bayesian sampling is not run by mlproj",
        "jobs.a.objective.goal: expected one of: maximize, minimize, got 'best'",
        "jobs.a.objective.primary_metric: expected the name of an MLflow metric",
        "jobs.b.sampling_algorithm: grid sampling takes choice parameters only",
        "jobs.b.early_termination: bandit needs slack_factor or slack_amount",
        "declares no input 'nope'",
        "jobs.c.trial: no such component file",
    ):
        assert expected in done.stderr, (expected, done.stderr)
    assert mlproj_json("runs") == []


# --- the rules, in-process ---------------------------------------------------------------------------


def test_every_distribution_draws_inside_its_range() -> None:
    space = {
        "c": {"type": "choice", "values": ["a", "b"]},
        "r": {"type": "randint", "upper": 5},
        "u": {"type": "uniform", "min_value": -1, "max_value": 1},
        "qu": {"type": "quniform", "min_value": 0, "max_value": 10, "q": 2},
        "lu": {"type": "loguniform", "min_value": -3, "max_value": 0},
        "qlu": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 1},
        "n": {"type": "normal", "mu": 5, "sigma": 1},
        "qn": {"type": "qnormal", "mu": 5, "sigma": 1, "q": 0.5},
        "ln": {"type": "lognormal", "mu": 0, "sigma": 0.5},
        "qln": {"type": "qlognormal", "mu": 0, "sigma": 0.5, "q": 0.1},
    }
    assert space_problems(space) == []
    points = sample(space, "random", 200, 3)
    assert {p["c"] for p in points} == {"a", "b"}
    assert {p["r"] for p in points} == set(range(5))
    assert all(-1 <= p["u"] <= 1 and p["qu"] % 2 == 0 and 0.04 < p["lu"] <= 1 for p in points)
    assert all(p["ln"] > 0 and abs(round(p["qn"] / 0.5) * 0.5 - p["qn"]) < 1e-9 for p in points)
    assert 4.5 < sum(p["n"] for p in points) / 200 < 5.5
    few = {name: space[name] for name in ("c", "u", "n")}
    first = sample(few, "sobol", 3, None)[0]  # the first Sobol point is the middle of every range
    assert (first["c"], first["u"], first["n"]) == ("b", 0.0, 5.0)
    assert sample(space, "random", 5, 9) == sample(space, "random", 5, 9)


def test_the_sobol_sequence() -> None:
    assert sobol(3, 4) == [[0.5, 0.5, 0.5], [0.75, 0.25, 0.25], [0.25, 0.75, 0.75], [0.375, 0.375, 0.625]]
    first = sobol(8, 64)
    assert len({tuple(point) for point in first}) == 64
    with pytest.raises(ValueError, match="at most 8"):
        sobol(9, 1)


def test_early_termination_policies() -> None:
    bandit = {"type": "bandit", "evaluation_interval": 1, "delay_evaluation": 1, "slack_factor": 0.2}
    running = {"good": [1.0, 2.0], "bad": [0.5, 1.0], "close": [0.9, 1.8]}
    assert set(to_stop(bandit, "maximize", running, [])) == {"bad"}
    assert to_stop({**bandit, "delay_evaluation": 2}, "maximize", running, []) == {}
    assert set(to_stop(bandit, "minimize", {"a": [1, 1], "b": [3, 3]}, [])) == {"b"}
    amount = {"type": "bandit", "slack_amount": 0.5}
    assert set(to_stop(amount, "maximize", {"a": [2.0], "b": [1.6], "c": [1.4]}, [])) == {"c"}
    median = {"type": "median_stopping", "evaluation_interval": 1, "delay_evaluation": 0}
    got = to_stop(median, "maximize", {"low": [0.1, 0.2]}, [[1.0, 1.0], [0.9, 0.9]])
    assert set(got) == {"low"} and "median" in got["low"]
    truncation = {"type": "truncation_selection", "truncation_percentage": 50}
    got = to_stop(truncation, "maximize", {"a": [4.0], "b": [1.0]}, [[3.0], [2.0]])
    assert set(got) == {"b"}


@pytest.mark.parametrize("name", ["grid.yml", "random.yml", "bandit.yml"])
def test_a_run_s_copy_of_a_sweep_loads_back_the_same(name: str, tmp_path: Path) -> None:
    from mlproj.pipelines.loader import load_pipeline

    folder = Path(shutil.copytree(SWEEP, tmp_path / "sweep"))
    original = load_pipeline(folder / name)
    copy = tmp_path / "copy.yml"
    copy.write_text(original.to_text())
    again = load_pipeline(copy, as_file=folder / name)
    assert (again.steps, again.templates, again.outputs) == (
        original.steps,
        original.templates,
        original.outputs,
    )
    assert again.to_document() == original.to_document()


def test_a_sweep_run_again_reuses_its_trials_and_still_knows_the_best(
    sweep: Path, tracked: MlflowServer
) -> None:
    first = latest(run_ok(sweep / "grid.yml", "--max-parallel", "3"))
    again = latest(run_ok(sweep / "grid.yml", "--max-parallel", "3"))
    assert all(again[f"tune.{index}"]["reused_from"] for index in range(6))
    assert (
        again["tune"]["reason"]
        == first["tune"]["reason"]
        == "best trial tune.3: score=2 (maximize), of 6 trials"
    )
    assert again["tune.3"]["reason"].endswith("score=2")  # a reused trial says its metric too
