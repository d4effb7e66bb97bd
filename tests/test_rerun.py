"""`mlproj rerun RUN [-P k=v]…` (design.md §12): a new run of what a run ran, asked the same way, with
parameters changed; a Git URI at the same commit; a pipeline run reusing what it may. Real runs, real
Git repositories."""

from __future__ import annotations

import json
from pathlib import Path

from mlproj.home import Home
from tests.conftest import commit_files, make_git_repo
from tests.helpers import assert_input_error, command_project, mlproj, mlproj_json
from tests.pipelines import write_pipeline

PARAMETERS = (
    "    parameters:\n      alpha: {type: float, default: 0.5}\n      note: {type: string, default: hi}\n"
)


def test_a_project_run_again_with_one_parameter_changed(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo alpha={alpha} note={note}", PARAMETERS)
    first = mlproj_json("run", str(project), "-P", "note=first", "--run-name", "try", "--tag", "team=ml")
    again = mlproj_json("rerun", first["run_id"], "-P", "alpha=0.9")
    assert again["status"] == "Finished" and again["run_id"] != first["run_id"]
    assert again["parameters"] == {"alpha": "0.9", "note": "first"}  # the earlier ones, one changed
    assert again["uri"] == first["uri"] and again["entry_point"] == "main"
    assert again["run_name"] == "try" and again["tags"] == {"team": "ml", "mlproj.rerun_of": first["run_id"]}
    assert again["env_manager"] == first["env_manager"] and again["backend"] == first["backend"]
    assert Path(again["log_path"]).read_text() == "alpha=0.9 note=first\n"


def test_a_git_run_is_rerun_at_its_commit_even_when_the_branch_moved(tmp_path: Path, home: Home) -> None:
    repo = tmp_path / "repo"
    mlproject = "name: t\nentry_points:\n  main:\n    command: cat version.txt\n"
    first_commit = make_git_repo(repo, {"MLproject": mlproject, "version.txt": "one\n"})
    first = mlproj_json("run", f"file://{repo}")
    assert first["commit"] == first_commit
    commit_files(repo, {"version.txt": "two\n"})
    again = mlproj_json("rerun", first["run_id"])
    assert again["commit"] == first_commit
    assert Path(again["log_path"]).read_text() == "one\n"
    assert Path(mlproj_json("run", f"file://{repo}")["log_path"]).read_text() == "two\n"  # the branch moved


def test_a_pipeline_run_again_reuses_what_did_not_change(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        inputs:
          n: 1
          m: 1
        jobs:
          first:
            command: echo first ${{inputs.n}}
            inputs:
              n: ${{parent.inputs.n}}
          second:
            command: echo second ${{inputs.m}}
            inputs:
              m: ${{parent.inputs.m}}
        """,
    )
    first = mlproj_json("run", str(pipeline))
    again = mlproj_json("rerun", first["run_id"], "-P", "m=2")
    steps = {step["step"]: step for step in again["steps"]}
    assert again["status"] == "Finished" and again["tags"]["mlproj.rerun_of"] == first["run_id"]
    assert steps["first"]["reused_from"]  # its input did not change: reuse applies, as for `run`
    assert not steps["second"]["reused_from"]
    assert Path(steps["second"]["log_path"]).read_text() == "second 2\n"


def test_what_cannot_be_rerun_is_refused_in_one_line(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(tmp_path / "p.yml", "type: pipeline\njobs:\n  only:\n    command: echo hi\n")
    document = mlproj_json("run", str(pipeline))
    step = document["steps"][0]["run_id"]
    assert_input_error(mlproj("rerun", step), f"run {step}", "rerun the pipeline run")
    done = mlproj("rerun", document["run_id"], "-P", "novalue")
    assert_input_error(done, "novalue")
    assert mlproj("rerun", "f" * 32).returncode != 0
    assert len(json.loads(mlproj("runs", "--json").stdout)) == 1  # nothing was started


def test_a_rerun_asks_as_the_run_was_asked_from_anywhere(tmp_path: Path, home: Home) -> None:
    """The URI as typed (relative, from the folder it was typed in), `-P` values as given (a default
    path is the project's again), a Git `#subdirectory`; an untracked run stays untracked."""
    body = (
        "name: t\nentry_points:\n  main:\n    parameters:\n      data: {type: path, default: data.csv}\n"
        "      note: {type: string, default: hi}\n    command: 'cat {data}; echo {note}'\n"
    )
    folder = tmp_path / "work" / "p"
    folder.mkdir(parents=True)
    (folder / "MLproject").write_text(body)
    (folder / "data.csv").write_text("a,b\n")
    first = mlproj_json(
        "run", "p", "-P", "note=given", cwd=tmp_path / "work", env={"MLFLOW_TRACKING_URI": ""}
    )
    assert first["tracking_uri"] is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Tracking configured now, where the earlier run had none: the rerun is not tracked either.
    again = mlproj_json(
        "rerun", first["run_id"], cwd=elsewhere, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    )
    assert again["status"] == "Finished" and again["tracking_uri"] is None
    assert Path(again["log_path"]).read_text() == "a,b\ngiven\n"
    repo = tmp_path / "repo"
    make_git_repo(repo, {"sub/MLproject": "name: s\nentry_points:\n  main:\n    command: echo from sub\n"})
    inside = mlproj_json("run", f"file://{repo}#sub")
    again = mlproj_json("rerun", inside["run_id"], cwd=elsewhere)
    assert Path(again["log_path"]).read_text() == "from sub\n"
