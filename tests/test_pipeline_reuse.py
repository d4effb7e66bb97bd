"""Step reuse (design.md §6): every part of the key, hits and misses, and the reason each step gives."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from mlproj.home import Home
from mlproj.pipelines.hashing import ContentHasher
from mlproj.runs.store import Store
from tests.helpers import write_project
from tests.pipelines import run_ok, steps, write_pipeline

FLOW = """
    type: pipeline
    name: flow
    inputs:
      data: {type: uri_file, default: ./data.txt}
      folder: {type: uri_folder, default: ./folder}
      x: {type: integer, default: 1}
      word: {type: string, default: hi}
    outputs:
      report: ${{parent.jobs.report.outputs.r}}
    jobs:
      prep:
        code: ./src
        command: bash prep.sh ${{inputs.data}} ${{inputs.folder}} ${{inputs.x}} ${{outputs.o}}
        inputs:
          data: ${{parent.inputs.data}}
          folder: ${{parent.inputs.folder}}
          x: ${{parent.inputs.x}}
        outputs:
          o: {type: uri_folder}
      train:
        type: mlflow_project
        uri: ./proj
        parameters:
          data: ${{parent.jobs.prep.outputs.o}}
          word: ${{parent.inputs.word}}
          epochs: 2
          out: ${{outputs.model}}
        outputs:
          model: {type: uri_folder}
      report:
        command: cat ${{inputs.model}}/model.txt > ${{outputs.r}}
        inputs:
          model: ${{parent.jobs.train.outputs.model}}
        outputs:
          r: {type: uri_file}
"""
PREP = 'cat "$1" > "$4/prepared.txt"; cat "$2"/* >> "$4/prepared.txt"; echo "x=$3" >> "$4/prepared.txt"\n'
TRAIN = """
name: train
entry_points:
  main:
    parameters:
      data: path
      word: string
      epochs: int
      out: string
    command: bash train.sh {data} {word} {epochs} {out}
"""
TRAIN_SH = 'echo "$2 x$3" > "$4/model.txt"; cat "$1/prepared.txt" >> "$4/model.txt"\n'
STEPS = ("prep", "train", "report")


class Flow:
    """A three-step chain in tmp_path: prep (a command with `code`) → train (an MLproject) → report."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "data.txt").write_text("row 1\n")
        (root / "folder").mkdir()
        (root / "folder" / "a.txt").write_text("folder file\n")
        (root / "src").mkdir()
        (root / "src" / "prep.sh").write_text(PREP)
        write_project(root / "proj", TRAIN, {"train.sh": TRAIN_SH})
        self.pipeline = write_pipeline(root / "flow.yml", FLOW)

    def edit(self, old: str, new: str) -> None:
        text = self.pipeline.read_text()
        assert old in text
        self.pipeline.write_text(text.replace(old, new))

    def run(self, *args: str) -> dict[str, dict[str, Any]]:
        return steps(run_ok(self.pipeline, *args))


def ran(step: dict[str, Any], *changed: str) -> None:
    """The step ran (was not reused), and its reason names each changed part."""
    assert step["status"] == "Finished"
    assert step["reused_from"] is None, step["reason"]
    assert step["reason"].startswith("ran: "), step["reason"]
    for part in changed:
        assert part in step["reason"], (part, step["reason"])


def reused(step: dict[str, Any], producer: dict[str, Any]) -> None:
    assert step["status"] == "Finished"
    assert step["reused_from"] == producer["run_id"], step["reason"]
    assert step["reason"] == f"reused from {producer['run_id']}"
    assert step["outputs"] == producer["outputs"]


@pytest.fixture
def flow(tmp_path: Path, home: Home) -> Flow:
    return Flow(tmp_path)


def test_an_unchanged_run_reuses_every_step(flow: Flow) -> None:
    first = flow.run()
    for name in STEPS:
        ran(first[name], "no earlier run")
    assert Path(first["report"]["outputs"]["r"]).read_text() == "hi x2\nrow 1\nfolder file\nx=1\n"
    second = flow.run()
    for name in STEPS:
        reused(second[name], first[name])
        assert second[name]["run_id"] != first[name]["run_id"]
    # A third run points at the run that produced the outputs, not at the run that reused them.
    third = flow.run()
    for name in STEPS:
        reused(third[name], first[name])


def test_a_changed_pipeline_input_runs_the_step_and_everything_downstream(flow: Flow) -> None:
    first = flow.run()
    second = flow.run("-P", "x=2")
    ran(second["prep"], "inputs.x changed")
    ran(second["train"], "parameters.data changed")  # its upstream output changed
    ran(second["report"], "inputs.model changed")
    assert Path(second["report"]["outputs"]["r"]).read_text().endswith("x=2\n")
    # Back to the first value: every step is reused from the first run again.
    third = flow.run("-P", "x=1")
    for name in STEPS:
        reused(third[name], first[name])


def test_a_changed_parameter_runs_that_step_only_where_content_changes(flow: Flow) -> None:
    first = flow.run()
    second = flow.run("-P", "word=hello")
    reused(second["prep"], first["prep"])
    ran(second["train"], "parameters.word changed")
    ran(second["report"], "inputs.model changed")
    flow.edit("epochs: 2", "epochs: 3")  # a literal parameter in the pipeline file
    third = flow.run("-P", "word=hello")
    reused(third["prep"], first["prep"])
    ran(third["train"], "parameters.epochs changed")
    assert "parameters.word" not in third["train"]["reason"]


def test_a_changed_code_folder_runs_the_step(flow: Flow) -> None:
    first = flow.run()
    (flow.root / "src" / "notes.md").write_text("a file added to the code folder\n")
    second = flow.run()
    ran(second["prep"], "code changed")
    # The step made the same output: what is downstream of it is reused.
    reused(second["train"], first["train"])
    reused(second["report"], first["report"])
    (flow.root / "proj" / "train.sh").write_text(TRAIN_SH.replace("x$3", "epochs=$3"))
    third = flow.run()
    reused(third["prep"], second["prep"])
    ran(third["train"], "code changed")
    ran(third["report"], "inputs.model changed")
    assert Path(third["report"]["outputs"]["r"]).read_text().startswith("hi epochs=2\n")


def test_changed_content_of_input_files_and_folders_runs_every_step_downstream(flow: Flow) -> None:
    flow.run()
    (flow.root / "data.txt").write_text("row 2\n")  # the same size: only the content differs
    second = flow.run()
    ran(second["prep"], "inputs.data changed")
    ran(second["train"], "parameters.data changed")
    ran(second["report"], "inputs.model changed")
    assert "row 2" in Path(second["report"]["outputs"]["r"]).read_text()
    (flow.root / "folder" / "b.txt").write_text("another file\n")
    third = flow.run()
    ran(third["prep"], "inputs.folder changed")
    assert "inputs.data" not in third["prep"]["reason"]
    ran(third["train"], "parameters.data changed")
    ran(third["report"], "inputs.model changed")
    assert Path(third["report"]["outputs"]["r"]).read_text().endswith("another file\nx=1\n")
    # The same input given with -P (another path, the same content) is the same key.
    copy = flow.root / "copy.txt"
    shutil.copyfile(flow.root / "data.txt", copy)
    fourth = flow.run("-P", f"data={copy}")
    reused(fourth["prep"], third["prep"])


def test_a_changed_command_or_environment_runs_the_step(flow: Flow) -> None:
    first = flow.run()
    flow.edit("cat ${{inputs.model}}/model.txt >", "cat ${{inputs.model}}/model.txt | tr a-z A-Z >")
    second = flow.run()
    reused(second["prep"], first["prep"])
    reused(second["train"], first["train"])
    ran(second["report"], "definition changed")
    assert Path(second["report"]["outputs"]["r"]).read_text().startswith("HI X2\n")
    flow.edit("    outputs:\n      r:", "    env_manager: uv\n    outputs:\n      r:")
    third = flow.run()
    ran(third["report"], "environment changed")
    assert "definition" not in third["report"]["reason"]


def test_allow_reuse_false_and_force_rerun_run_steps_again(flow: Flow) -> None:
    first = flow.run()
    flow.edit("  report:\n", "  report:\n    allow_reuse: false\n")
    second = flow.run()
    reused(second["prep"], first["prep"])
    reused(second["train"], first["train"])
    ran(second["report"], "allow_reuse is false")
    third = flow.run("--force-rerun")
    for name in STEPS:
        ran(third[name], "--force-rerun")
    # A step that ran again with the same key is the one reused next time.
    flow.edit("    allow_reuse: false\n", "")
    fourth = flow.run()
    for name in STEPS:
        reused(fourth[name], third[name])


def test_force_rerun_in_the_file(flow: Flow) -> None:
    flow.run()
    flow.edit("\njobs:\n", "\nsettings:\n  force_rerun: true\njobs:\n")
    second = flow.run()
    for name in STEPS:
        ran(second[name], "--force-rerun")


def test_deleted_outputs_run_the_step_again(flow: Flow) -> None:
    first = flow.run()
    shutil.rmtree(first["prep"]["outputs"]["o"])
    Path(first["report"]["outputs"]["r"]).unlink()
    second = flow.run()
    ran(second["prep"], f"the outputs of {first['prep']['run_id']} are gone")
    # The step made the same output again: the step after it is reused.
    reused(second["train"], first["train"])
    ran(second["report"], "are gone")
    assert Path(second["report"]["outputs"]["r"]).read_text() == "hi x2\nrow 1\nfolder file\nx=1\n"
    third = flow.run()
    reused(third["prep"], second["prep"])
    reused(third["report"], second["report"])


def test_an_upstream_step_that_ran_again_is_seen_by_its_content(tmp_path: Path, home: Home) -> None:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          same:
            command: echo constant > ${{outputs.o}}
            allow_reuse: false
            outputs:
              o: {type: uri_file}
          differs:
            command: date +%s%N > ${{outputs.o}}
            allow_reuse: false
            outputs:
              o: {type: uri_file}
          after_same:
            command: cat ${{inputs.i}}
            inputs:
              i: ${{parent.jobs.same.outputs.o}}
          after_differs:
            command: cat ${{inputs.i}}
            inputs:
              i: ${{parent.jobs.differs.outputs.o}}
        """,
    )
    first = steps(run_ok(pipeline))
    second = steps(run_ok(pipeline))
    ran(second["same"], "allow_reuse is false")
    ran(second["differs"], "allow_reuse is false")
    reused(second["after_same"], first["after_same"])
    ran(second["after_differs"], "inputs.i changed")


def test_the_stat_cache_is_used_and_a_racy_rewrite_is_seen(tmp_path: Path, home: Home) -> None:
    store = Store.open(home)
    try:
        folder = tmp_path / "data"
        folder.mkdir()
        old = folder / "old.txt"
        old.write_text("settled\n")
        hour_ago = time.time_ns() - 3600 * 1_000_000_000
        os.utime(old, ns=(hour_ago, hour_ago))
        fresh = folder / "fresh.txt"
        fresh.write_text("first\n")
        hasher = ContentHasher(store)
        before = hasher.digest(folder)
        assert hasher.files_read == 2
        # Rewritten at once with the same size, on a clock too coarse to tell the writes apart.
        signature = fresh.stat()
        fresh.write_text("other\n")
        os.utime(fresh, ns=(signature.st_atime_ns, signature.st_mtime_ns))
        assert (fresh.stat().st_size, fresh.stat().st_ino) == (signature.st_size, signature.st_ino)
        again = ContentHasher(store)
        assert again.digest(folder) != before
        assert again.digest(fresh) == ContentHasher(store).digest(fresh)
        # The file that had not changed for a while came from the cache, not from the disk.
        settled = ContentHasher(store)
        settled.digest(old)
        assert settled.files_read == 0
        assert settled.digest(tmp_path / "nothing") == "missing"
    finally:
        store.close()


def test_an_input_given_as_a_link_is_keyed_by_what_it_points_at(flow: Flow) -> None:
    (flow.root / "v1.txt").write_text("version 1\n")
    (flow.root / "data.txt").unlink()
    (flow.root / "data.txt").symlink_to(flow.root / "v1.txt")
    first = flow.run()
    (flow.root / "v1.txt").write_text("version 2\n")
    second = flow.run()
    ran(second["prep"], "inputs.data changed")
    assert "version 2" in Path(second["report"]["outputs"]["r"]).read_text()
    (flow.root / "v1.txt").write_text("version 1\n")
    third = flow.run()
    reused(third["prep"], first["prep"])
