"""Finding runs (design.md §12): `mlproj runs` filters by name, tag, time, kind and URI, shows NAME and
KIND, local times and the URI as typed; every command takes a run by ID, unique prefix, unique run
name or `last`. Real runs in a real store."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mlproj.home import Home
from tests.conftest import make_git_repo
from tests.helpers import assert_input_error, command_project, mlproj, mlproj_json
from tests.pipelines import write_pipeline


def ids(*args: str) -> list[str]:
    return [run["run_id"] for run in mlproj_json("runs", *args)]


def test_runs_are_found_by_name_tag_kind_uri_and_time(tmp_path: Path, home: Home) -> None:
    train = command_project(tmp_path / "train", "echo train")
    etl = command_project(tmp_path / "etl", "echo etl")
    pipeline = write_pipeline(tmp_path / "p.yml", "type: pipeline\njobs:\n  a:\n    command: echo a\n")
    first = mlproj_json("run", str(train), "--run-name", "Baseline-1", "--tag", "team=ml")["run_id"]
    second = mlproj_json("run", str(etl), "--run-name", "cleanup", "--tag", "team=data")["run_id"]
    third = mlproj_json("run", str(pipeline), "--run-name", "nightly-baseline")["run_id"]
    assert ids("--name", "baseline") == [third, first]  # a part of the name, in any case
    assert ids("--tag", "team=ml") == [first]
    assert ids("--kind", "pipeline") == [third] and ids("--kind", "project") == [second, first]
    assert ids("--uri", "etl") == [second]
    assert ids("--since", "1h") == [third, second, first]
    tomorrow = time.strftime("%Y-%m-%d", time.localtime(time.time() + 86400))
    assert ids("--since", tomorrow) == []
    assert ids("--name", "baseline", "--kind", "project") == [first]  # filters combine
    table = mlproj("runs").stdout.splitlines()
    assert table[0].split() == [
        "RUN",
        "ID",
        "STATUS",
        "NAME",
        "KIND",
        "EXPERIMENT",
        "ENTRY",
        "CREATED",
        "DURATION",
        "URI",
    ]
    zone = time.strftime("%Z")
    assert (
        all(zone in line for line in table[1:]) and "nightly-baseline" in table[1] and "pipeline" in table[1]
    )
    for bad, expected in (
        (("--tag", "team"), "--tag 'team': expected NAME=VALUE"),
        (("--since", "yesterday"), "--since 'yesterday': expected a duration"),
        (("--kind", "step"), "--kind step: expected one of project, pipeline"),
    ):
        done = mlproj("runs", *bad)
        assert done.returncode == 2 and expected in done.stderr, (bad, done.stderr)


def test_a_git_run_shows_its_subdirectory_and_commit(tmp_path: Path, home: Home) -> None:
    repo = tmp_path / "repo"
    commit = make_git_repo(repo, {"sub/MLproject": "name: s\nentry_points:\n  main:\n    command: echo hi\n"})
    mlproj_json("run", f"file://{repo}#sub")
    line = mlproj("runs").stdout.splitlines()[1]
    assert line.endswith(f"file://{repo}#sub ({commit[:8]})")


def test_every_command_takes_a_run_by_its_name_or_last(tmp_path: Path, home: Home) -> None:
    project = command_project(
        tmp_path / "p", "echo hello from {name}", "    parameters:\n      name: {default: x}\n"
    )
    named = mlproj_json("run", str(project), "--run-name", "first-try", "-P", "name=one")["run_id"]
    newest = mlproj_json("run", str(project), "-P", "name=two")["run_id"]
    assert mlproj_json("status", "first-try")["run_id"] == named
    assert mlproj_json("status", "last")["run_id"] == newest
    assert mlproj("logs", "first-try").stdout == "hello from one\n"
    assert mlproj("logs", "last").stdout == "hello from two\n"
    assert mlproj("wait", "first-try").returncode == 0
    again = mlproj_json("rerun", "first-try", "-P", "name=three")
    assert again["tags"]["mlproj.rerun_of"] == named
    assert mlproj_json("status", "last")["run_id"] == again["run_id"]
    compared = json.loads(mlproj("compare", named[:8], "last", "--json").stdout)
    assert compared["params"] == {"name": ["one", "three"]}
    # The name is now on two runs (the rerun kept it): an ID is needed, and the error says which.
    done = mlproj("status", "first-try")
    assert_input_error(done, "run name 'first-try' is used by several runs", "give an ID")
    assert_input_error(mlproj("status", "nobody"), "no run has this name")
