"""Published pipelines and endpoints (design.md §10), from the command line and from Python, against a
real store: snapshots that survive edits, Git projects pinned, disabled pipelines and endpoints
refused, endpoint versions and their default, and where each run came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlproj.api.pipeline import PipelineEndpoint, PipelineRun, PublishedPipeline, get_pipeline_runs
from mlproj.home import Home
from mlproj.runs.catalog import ConflictError
from mlproj.runs.store import Store
from tests.conftest import commit_files, make_git_repo
from tests.helpers import assert_nothing_unfinished, mlproj, mlproj_json, write_project
from tests.pipelines import write_pipeline


def make_pipeline(folder: Path) -> Path:
    """A pipeline with a code folder, a local project and a conda-free environment of its own: the
    things a publication copies."""
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "shout.py").write_text("import sys\nprint(sys.argv[1].upper())\n")
    command = "echo project says {word}"
    write_project(
        folder / "project",
        f"name: p\nentry_points:\n  main:\n    parameters: {{word: string}}\n    command: '{command}'\n",
    )
    return write_pipeline(
        folder / "pipeline.yml",
        """
        type: pipeline
        name: greet
        inputs:
          word: {type: string, default: hello}
        jobs:
          shout:
            type: command
            code: ./src
            command: python shout.py ${{inputs.word}}
            inputs:
              word: ${{parent.inputs.word}}
          project:
            type: mlflow_project
            uri: ./project
            parameters:
              word: ${{parent.inputs.word}}
            env_manager: local
        """,
    )


def publish(pipeline: Path, *args: str) -> str:
    done = mlproj("publish", str(pipeline), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def step_log(run_id: str, step: str) -> str:
    return mlproj("logs", run_id, "--step", step).stdout


def test_a_published_pipeline_runs_its_snapshot_whatever_is_edited_later(tmp_path: Path, home: Home) -> None:
    pipeline = make_pipeline(tmp_path / "work")
    # Each step writes into the folder it works in (the code folder, the project folder).
    pipeline.write_text(
        pipeline.read_text().replace(
            "command: python shout.py", "command: echo scribble > shout.py.out && python shout.py"
        )
    )
    (tmp_path / "work" / "project" / "MLproject").write_text(
        (tmp_path / "work" / "project" / "MLproject")
        .read_text()
        .replace("'echo project", "'touch dirty && echo project")
    )
    published = publish(pipeline, "--name", "greet", "--version", "1", "--description", "says hello")
    assert len(published) == 32
    stored = _store_content(home)
    # Everything it uses is edited, after publishing: the published pipeline does not change.
    (tmp_path / "work" / "src" / "shout.py").write_text("print('edited')\n")
    (tmp_path / "work" / "project" / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n    parameters: {word: string}\n    command: 'echo edited'\n"
    )
    pipeline.write_text(pipeline.read_text().replace("default: hello", "default: edited"))
    record = mlproj_json("published", "submit", published[:8])
    assert record["status"] == "Finished"
    assert record["published_pipeline_id"] == published
    assert step_log(record["run_id"], "shout") == "HELLO\n"
    assert step_log(record["run_id"], "project") == "project says hello\n"
    # The run worked in its own copy: the snapshot's files are as published.
    shown = mlproj_json("published", "show", published)
    assert shown["name"] == "greet" and shown["version"] == "1" and shown["description"] == "says hello"
    assert shown["inputs"] == {"word": "hello"}
    assert [run["run_id"] for run in shown["runs"]] == [record["run_id"]]
    snapshot = Path(shown["pipeline_file"])
    assert snapshot.is_file() and "edited" not in snapshot.read_text()
    assert _store_content(home) == stored  # the runs wrote in their own copies
    # Parameters and the experiment are the submitter's.
    again = mlproj_json("published", "submit", published, "-P", "word=bye", "--experiment-name", "nightly")
    assert again["experiment"] == "nightly" and step_log(again["run_id"], "shout") == "BYE\n"
    listed = mlproj_json("runs", "--published", published[:6])
    assert [run["run_id"] for run in listed] == [again["run_id"], record["run_id"]]
    assert_nothing_unfinished(home)


def test_publications_share_what_did_not_change(tmp_path: Path, home: Home) -> None:
    pipeline = make_pipeline(tmp_path / "work")
    publish(pipeline, "--name", "one")
    objects = home.published_dir / "objects"
    first = sorted(path.name for path in objects.iterdir())
    publish(pipeline, "--name", "two")
    assert sorted(path.name for path in objects.iterdir()) == first  # the same content, stored once
    (tmp_path / "work" / "src" / "shout.py").write_text("print('new')\n")
    publish(pipeline, "--name", "three")
    assert len(list(objects.iterdir())) == len(first) + 1  # only the changed folder is stored again


def test_a_git_project_is_pinned_to_the_commit_it_named(tmp_path: Path, home: Home) -> None:
    repo = tmp_path / "repo"
    make_git_repo(
        repo,
        {"MLproject": "name: g\nentry_points:\n  main:\n    command: 'echo first'\n"},
    )
    pipeline = write_pipeline(
        tmp_path / "git.yml",
        f"""
        type: pipeline
        jobs:
          remote:
            type: mlflow_project
            uri: file://{repo}
            version: main
            env_manager: local
        """,
    )
    published = publish(pipeline, "--name", "pinned")
    commit_files(repo, {"MLproject": "name: g\nentry_points:\n  main:\n    command: 'echo second'\n"})
    record = mlproj_json("published", "submit", published)
    assert step_log(record["run_id"], "remote") == "first\n"
    assert (
        "version: main" not in Path(mlproj_json("published", "show", published)["pipeline_file"]).read_text()
    )


def test_disabled_pipelines_and_endpoints_refuse_to_run(tmp_path: Path, home: Home) -> None:
    published = publish(make_pipeline(tmp_path / "work"), "--name", "greet")
    assert mlproj("endpoints", "create", "greeter", "--pipeline", published).returncode == 0
    assert mlproj("published", "disable", published).returncode == 0
    refused = mlproj("published", "submit", published)
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"mlproj: error: published pipeline {published} (greet) is disabled"
    assert mlproj("endpoints", "submit", "greeter").returncode == 2  # its version is disabled
    assert mlproj("published", "enable", published).returncode == 0
    assert mlproj("endpoints", "disable", "greeter").returncode == 0
    refused = mlproj("endpoints", "submit", "greeter")
    assert refused.returncode == 2 and "endpoint 'greeter' is disabled" in refused.stderr
    assert mlproj_json("runs") == []


def test_endpoint_versions_and_their_default(tmp_path: Path, home: Home) -> None:
    pipeline = make_pipeline(tmp_path / "work")
    first = publish(pipeline, "--name", "greet")
    pipeline.write_text(pipeline.read_text().replace("default: hello", "default: v1"))
    second = publish(pipeline, "--name", "greet")
    created = mlproj_json("endpoints", "create", "greeter", "--pipeline", first, "--description", "hi")
    assert created["default_version"] == "0"
    added = mlproj_json("endpoints", "add", "greeter", "--pipeline", second)
    assert added["versions"] == [
        {"version": "0", "pipeline_id": first},
        {"version": "1", "pipeline_id": second},
    ]
    assert added["default_version"] == "0"
    run = mlproj_json("endpoints", "submit", "greeter")
    assert run["endpoint"] == "greeter" and run["published_pipeline_id"] == first
    assert step_log(run["run_id"], "shout") == "HELLO\n"
    assert mlproj_json("endpoints", "set-default", "greeter", "1")["default_version"] == "1"
    run = mlproj_json("endpoints", "submit", "greeter")
    assert run["published_pipeline_id"] == second and step_log(run["run_id"], "shout") == "V1\n"
    older = mlproj_json("endpoints", "submit", "greeter", "--version", "0", "-P", "word=old")
    assert older["published_pipeline_id"] == first and step_log(older["run_id"], "shout") == "OLD\n"
    unknown = mlproj("endpoints", "set-default", "greeter", "7")
    assert unknown.returncode == 2 and "has no version '7' (versions: 0, 1)" in unknown.stderr
    twice = mlproj("endpoints", "create", "greeter", "--pipeline", first)
    assert twice.returncode == 2 and "endpoint 'greeter' exists already" in twice.stderr


def test_the_python_api_publishes_submits_and_lists_runs(tmp_path: Path, home: Home) -> None:
    pipeline = make_pipeline(tmp_path / "work")
    record = mlproj_json("run", str(pipeline))
    run = PipelineRun.get(None, record["run_id"])
    published = run.publish_pipeline("greet", "from a run", "2")
    assert (published.name, published.description, published.version) == ("greet", "from a run", "2")
    assert published.status == "Active" and published.endpoint == f"/api/v1/published/{published.id}/submit"
    submitted = published.submit("py", {"word": "api"})
    assert submitted.wait_for_completion(show_output=False) == "Finished"
    assert submitted.find_step_run("shout")[0].get_log() == "API\n"
    assert [r.run_id for r in get_pipeline_runs(None, published.id)] == [submitted.run_id]
    assert [r.run_id for r in PipelineRun.get_pipeline_runs(str(home.root), published.id)] == [
        submitted.run_id
    ]
    assert [p.id for p in PublishedPipeline.get_all()] == [published.id]
    endpoint = PipelineEndpoint.publish(None, "greeter", published, "hello")
    assert endpoint.default_version == "0"
    second = PublishedPipeline.get(None, mlproj("publish", str(pipeline), "--name", "g2").stdout.strip())
    assert endpoint.add_default(second) == "1" and endpoint.default_version == "1"
    assert [p.id for p in endpoint.list_pipelines()] == [published.id, second.id]
    endpoint.set_default_version(0)
    by_endpoint = PipelineEndpoint.get(name="greeter").submit("py", pipeline_parameters={"word": "e"})
    assert by_endpoint.wait_for_completion(show_output=False) == "Finished"
    published.disable()
    assert published.status == "Disabled"
    assert [p.id for p in PublishedPipeline.get_all()] == [second.id]
    with pytest.raises(ConflictError, match="is disabled"):
        published.submit("py")
    with pytest.raises(ConflictError, match="is disabled"):
        endpoint.submit("py")  # its default, version 0, is the disabled pipeline
    assert_nothing_unfinished(home)


def test_publishing_bad_input_is_exit_2_and_leaves_nothing(tmp_path: Path, home: Home) -> None:
    pipeline = make_pipeline(tmp_path / "work")
    missing = mlproj("publish", str(pipeline))
    assert missing.returncode == 2 and "--name is required" in missing.stderr
    for name in ("../etc", "a b", "", "x" * 65, "-dash"):
        bad = mlproj("publish", str(pipeline), "--name", name)
        assert bad.returncode == 2, name
        assert "expected 1 to 64 letters" in bad.stderr and "Traceback" not in bad.stderr
    broken = write_pipeline(
        tmp_path / "broken.yml", "type: pipeline\njobs:\n  a:\n    command: echo ${{inputs.nope}}\n"
    )
    done = mlproj("publish", str(broken), "--name", "broken")
    assert done.returncode == 2 and "broken.yml" in done.stderr
    assert mlproj_json("published", "list") == []
    assert not home.published_dir.exists() or not any(
        path for path in home.published_dir.iterdir() if path.name != "objects"
    )
    for command in (
        ("published", "show", "zzzz"),
        ("published", "submit", "abcd"),
        ("endpoints", "show", "nope"),
    ):
        done = mlproj(*command)
        assert done.returncode == 2 and "Traceback" not in done.stderr, command


def test_published_pipelines_are_listed_newest_first(tmp_path: Path, home: Home) -> None:
    pipeline = make_pipeline(tmp_path / "work")
    first = publish(pipeline, "--name", "a")
    second = publish(pipeline, "--name", "b")
    listed = mlproj_json("published", "list")
    assert [p["id"] for p in listed] == [second, first]
    text = mlproj("published", "list").stdout
    assert text.splitlines()[0].split() == ["ID", "STATUS", "NAME", "VERSION", "PUBLISHED", "SOURCE"]
    store = Store.open(home)
    try:
        assert store.catalog().published(first[:5]).name == "a"
    finally:
        store.close()
    assert json.loads(mlproj("published", "show", first, "--json").stdout)["status"] == "Active"


def _store_content(home: Home) -> dict[str, bytes]:
    objects = home.published_dir / "objects"
    return {str(p.relative_to(objects)): p.read_bytes() for p in sorted(objects.rglob("*")) if p.is_file()}


def test_a_link_out_of_a_published_folder_is_refused(tmp_path: Path, home: Home) -> None:
    pipeline = make_pipeline(tmp_path / "work")
    (tmp_path / "shared").mkdir()
    (tmp_path / "work" / "src" / "lib").symlink_to(tmp_path / "shared")
    done = mlproj("publish", str(pipeline), "--name", "linked")
    assert done.returncode == 2
    assert "the link lib leads out of it" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "work" / "src" / "lib").unlink()
    (tmp_path / "work" / "src" / "inner.py").symlink_to("shout.py")  # a link inside is kept as a link
    assert mlproj("publish", str(pipeline), "--name", "linked").returncode == 0


def test_stored_files_are_read_only_and_runs_get_writable_copies(tmp_path: Path, home: Home) -> None:
    published = publish(make_pipeline(tmp_path / "work"), "--name", "greet")
    stored = [p for p in (home.published_dir / "objects").rglob("*") if p.is_file()]
    assert stored and all(not p.stat().st_mode & 0o222 for p in stored)
    record = mlproj_json("published", "submit", published)
    copies = list(Path(record["run_dir"], "sources").rglob("shout.py"))
    assert copies and all(p.stat().st_mode & 0o200 for p in copies)
