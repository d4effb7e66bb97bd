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
