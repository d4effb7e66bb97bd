"""A pipeline run's DAG on its page (design.md §11): layers, statuses told in words, reused steps
marked, loops drawn as one node counting their iterations, every value escaped."""

from __future__ import annotations

import re
from pathlib import Path

from mlproj.pipelines.loader import load_pipeline
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.server.ui.dag import layers, render
from tests.pipelines import write_pipeline


def pipeline_file(tmp_path: Path) -> Path:
    return write_pipeline(
        tmp_path / "p.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          prep:
            command: echo prep > ${{outputs.data}}/x
            outputs:
              data: {type: uri_folder}
          train:
            command: cat ${{inputs.data}}/x
            inputs:
              data: ${{parent.jobs.prep.outputs.data}}
          body:
            command: echo ${{inputs.n}}
            inputs:
              n: {type: integer, value: 0}
          fan:
            type: parallel_for
            body: ${{parent.jobs.body}}
            items: [{n: 1}, {n: 2}, {n: 3}]
            depends_on: [prep]
          report:
            command: echo done
            depends_on: [fan, train]
        """,
    )


def step(name: str, status: RunStatus, reused_from: str | None = None) -> RunRecord:
    return RunRecord(
        run_id=f"{abs(hash(name)):032x}"[:32],
        kind=RunKind.STEP,
        status=status,
        step=name,
        reused_from=reused_from,
    )


def test_steps_are_laid_out_in_layers(tmp_path: Path) -> None:
    pipeline = load_pipeline(pipeline_file(tmp_path))
    assert layers(pipeline) == {"prep": 0, "train": 1, "fan": 1, "report": 2}


def test_the_dag_tells_statuses_reuse_and_loops(tmp_path: Path) -> None:
    pipeline = load_pipeline(pipeline_file(tmp_path))
    steps = [
        step("prep", RunStatus.FINISHED, reused_from="a" * 32),
        step("train", RunStatus.RUNNING),
        step("fan", RunStatus.RUNNING),
        step("fan.0", RunStatus.FINISHED),
        step("fan.1", RunStatus.FINISHED),
        step("fan.2", RunStatus.RUNNING),
    ]
    svg = render(pipeline, steps)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "♻ reused (aaaaaaaa)" in svg
    assert "parallel_for · 2 Finished, 1 Running" in svg  # a loop: one node, its iterations counted
    assert svg.count('class="node ') == 4  # prep, train, fan, report: not each iteration
    assert "▶ Running" in svg and 'class="node node-NotStarted"' in svg  # report has not started
    assert len(re.findall(r'<path class="edge"', svg)) == len(pipeline.edges())
    hrefs = re.findall(r'href="([^"]+)"', svg)
    assert hrefs == [f"/runs/{s.run_id}" for s in steps if s.step in ("prep", "train", "fan")]


def test_every_value_in_the_dag_is_escaped(tmp_path: Path) -> None:
    from mlproj.pipelines.model import Pipeline, Step

    # Names are checked when a pipeline is read; the drawing escapes them whatever they are.
    hostile = '<script>alert("x")</script>'
    pipeline = Pipeline(
        file=tmp_path / "p.yml", name="p", steps={hostile: Step(name=hostile, type="command")}
    )
    svg = render(pipeline, [step(hostile, RunStatus.FAILED, reused_from='"><img src=x>')])
    assert "<script>" not in svg and "<img" not in svg
    assert "&lt;script&gt;" in svg


BRANCHES = Path(__file__).parent / "azure" / "control" / "branches.yml"


def test_an_if_else_s_blocks_are_drawn_as_named_branches_the_one_not_taken_faded() -> None:
    pipeline = load_pipeline(BRANCHES)
    undecided = render(pipeline, [step("gate", RunStatus.RUNNING)])
    assert re.findall(r'<path class="(edge branch[^"]*)"', undecided) == ["edge branch", "edge branch"]
    gate = RunRecord(
        run_id="g" * 32,
        kind=RunKind.STEP,
        status=RunStatus.FINISHED,
        step="gate",
        reason="the condition is false: ran the false_block",
    )
    svg = render(pipeline, [gate, step("deploy", RunStatus.SKIPPED), step("retrain", RunStatus.FINISHED)])
    labels = dict(re.findall(r'<text class="branch-label ([a-z-]+)"[^>]*>(true|false)</text>', svg))
    assert labels == {"not-taken": "true", "taken": "false"}
    # Each block's step is joined to the if_else once, by its branch, not also by a plain edge.
    assert len(re.findall(r'<path class="edge', svg)) == len(pipeline.edges())


def test_steps_are_grouped_loops_with_iterations_sweeps_with_their_best_trial() -> None:
    from mlproj.pipelines.model import Pipeline, Step
    from mlproj.server.ui.pipeline import groups

    pipeline = Pipeline(
        file=Path("p.yml"),
        name="p",
        steps={
            "prep": Step(name="prep", type="command"),
            "fan": Step(name="fan", type="parallel_for"),
            "tune": Step(name="tune", type="sweep"),
            "gate": Step(name="gate", type="if_else", control={"true_block": ["a"], "false_block": ["b"]}),
            "a": Step(name="a", type="command"),
            "b": Step(name="b", type="command"),
        },
    )

    def record(name: str, status: RunStatus, **values: object) -> RunRecord:
        return RunRecord(run_id=name.replace(".", "-"), kind=RunKind.STEP, status=status, step=name, **values)  # type: ignore[arg-type]

    steps = [
        record("prep", RunStatus.FAILED, attempt=1),
        record("prep", RunStatus.FINISHED, attempt=2),
        record("fan", RunStatus.RUNNING),
        record("fan.1", RunStatus.FAILED, attempt=1),
        RunRecord(run_id="fan-1-again", kind=RunKind.STEP, status=RunStatus.RUNNING, step="fan.1", attempt=2),
        record("fan.0", RunStatus.FINISHED),
        record("fan.0.train", RunStatus.FINISHED),
        record("tune", RunStatus.FINISHED, reason="best trial tune.1: score=2 (maximize), of 2 trials"),
        record("tune.0", RunStatus.FINISHED, parameters={"x": "0.1"}),
        record("tune.1", RunStatus.FINISHED, parameters={"x": "0.3"}),
        record("gate", RunStatus.FINISHED, reason="the condition is true: ran the true_block"),
        record("a", RunStatus.FINISHED),
        record("b", RunStatus.SKIPPED),
    ]
    found = {group.record.step: group for group in groups(pipeline, steps)}
    assert list(found) == ["prep", "fan", "tune", "gate", "a", "b"]  # every other step at the top
    assert found["prep"].record.attempt == 2 and [r.attempt for r in found["prep"].earlier] == [1]
    fan = found["fan"]
    assert [fan.member_name(r) for r in fan.members] == ["0", "0.train", "1", "1"]  # index, name, attempt
    # Counted once each, by their latest attempt: the failed first attempt of fan.1 is history.
    assert (
        fan.iterations == 2
        and fan.member_steps == 3
        and fan.current == {"fan-0", "fan-0-train", "fan-1-again"}
    )
    assert fan.counts == "2 Finished, 1 Running" and fan.open  # unfolded while it runs
    assert found["tune"].best == "tune.1" and not found["tune"].open
    assert found["gate"].branches == [("true_block", "a", "taken"), ("false_block", "b", "not taken")]
    # Without the pipeline (its copy gone), iterations are still found under their loop by name.
    without = groups(None, steps[2:7])
    assert [g.record.step for g in without] == ["fan"] and without[0].kind == "loop"
    # A loop that ended, whose retried iteration finally finished, is folded.
    ended = [record("fan", RunStatus.FINISHED), record("fan.0", RunStatus.FAILED, attempt=1)]
    ended.append(
        RunRecord(run_id="again", kind=RunKind.STEP, status=RunStatus.FINISHED, step="fan.0", attempt=2)
    )
    assert not groups(pipeline, ended)[0].open
