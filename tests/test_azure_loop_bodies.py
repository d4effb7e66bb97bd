"""Loops whose body is a pipeline component (design.md §9): each iteration runs the component's jobs
as steps `loop.N.job`, with the iteration's inputs given to the jobs that take them and the
iteration's outputs read from the jobs bound to them (tests/azure/control/body/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlproj.home import Home
from mlproj.pipelines.loader import load_pipeline
from mlproj.pipelines.model import display_order, loop_of
from tests.helpers import assert_nothing_unfinished, mlproj, mlproj_json
from tests.pipelines import run_ok, run_pipeline, step_log, timestamp, write_pipeline
from tests.pipelines import steps as steps_of

CONTROL = Path(__file__).parent / "azure" / "control"


def test_parallel_for_runs_a_pipeline_body_per_item(control: Path, home: Home) -> None:
    document = run_ok(control / "fan_pipeline.yml")
    steps = steps_of(document)
    # Each item is an iteration of two steps; the item sets the component's input `x`, the body's own
    # job gives `plus` to every iteration.
    for index, x in enumerate(range(1, 6)):
        square, add = steps[f"fan.{index}.square"], steps[f"fan.{index}.add"]
        assert square["parameters"]["x"] == str(x)
        assert add["parameters"]["plus"] == "1"
        assert Path(add["parameters"]["squared"]) == Path(square["outputs"]["squared"])
        assert timestamp(add["started_at"]) >= timestamp(square["ended_at"])  # inside an iteration: in order
    assert not any(name == "body" or name.startswith("body.") for name in steps)
    # The loop's output gathers each iteration's `result` (the `add` job's `sum`) by index.
    gathered = Path(steps["fan"]["outputs"]["result"])
    assert sorted(folder.name for folder in gathered.iterdir()) == ["0", "1", "2", "3", "4"]
    assert (gathered / "2" / "value").read_text() == "10\n"
    assert step_log(document, "total") == f"{sum(x * x + 1 for x in range(1, 6))}\n"
    assert steps["fan"]["reason"] == "5 iterations"


def test_max_concurrency_counts_iterations_not_their_steps(control: Path, home: Home) -> None:
    fan = control / "fan_pipeline.yml"
    body = control / "body" / "square_then_add.yml"
    body.write_text(body.read_text().replace("command: echo $((", "command: sleep 0.3 && echo $(("))
    document = run_ok(fan, "--max-parallel", "8")
    steps = steps_of(document)
    spans = {
        index: (
            timestamp(steps[f"fan.{index}.square"]["started_at"]),
            timestamp(steps[f"fan.{index}.add"]["ended_at"]),
        )
        for index in range(5)
    }
    overlap = max(
        sum(1 for start, end in spans.values() if start <= moment < end) for moment, _ in spans.values()
    )
    assert overlap == 2, spans  # max_concurrency: 2 iterations at once, each one's steps in turn


def test_do_while_runs_a_pipeline_body_until_its_condition_is_false(control: Path, home: Home) -> None:
    document = run_ok(control / "while_pipeline.yml")
    steps = steps_of(document)
    # 9, 18, 27, 36, 45, 54: the sixth says `small` is false.
    assert steps["grow"]["reason"] == "6 iterations: the condition is false"
    assert [name for name in display_order(list(steps)) if loop_of(name, {"grow"})] == [
        f"grow.{index}.{job}" for index in range(6) for job in ("square", "add")
    ]
    # The mapping feeds the body's output `result` (add's `sum`) back as its input `prev`.
    assert "prev" not in steps["grow.0.add"]["parameters"]
    assert Path(steps["grow.3.add"]["parameters"]["prev"]) == Path(steps["grow.2.add"]["outputs"]["sum"])
    assert steps["grow"]["outputs"]["result"] == steps["grow.5.add"]["outputs"]["sum"]
    assert step_log(document, "report") == "54\n"


def test_do_while_over_a_pipeline_body_stops_at_max_iteration_count(control: Path, home: Home) -> None:
    looping = control / "while_pipeline.yml"
    looping.write_text(looping.read_text().replace("max_iteration_count: 10", "max_iteration_count: 3"))
    document = run_ok(looping)
    assert steps_of(document)["grow"]["reason"] == "3 iterations: max_iteration_count (3) reached"
    assert step_log(document, "report") == "27\n"


def test_a_failed_step_of_a_pipeline_iteration_fails_the_loop_and_resume_reruns_it(
    control: Path, home: Home
) -> None:
    marker = control / "fail-three"
    marker.touch()
    body = control / "body" / "square_then_add.yml"
    check = f"test ${{{{inputs.x}}}} -ne 3 || test ! -e {marker} &&"
    body.write_text(body.read_text().replace("command: echo $((", f"command: {check} echo $(("))
    code, document = run_pipeline(control / "fan_pipeline.yml", "--continue-on-step-failure")
    assert code == 1
    steps = steps_of(document)
    assert steps["fan.2.square"]["status"] == "Failed"
    assert steps["fan.2.add"]["status"] == "Skipped"
    assert steps["fan"]["status"] == "Failed"
    assert "iteration fan.2.square Failed" in steps["fan"]["error"]
    assert steps["total"]["status"] == "Skipped"
    marker.unlink()
    resumed = mlproj("resume", document["run_id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    again = mlproj_json("status", mlproj_json("runs")[0]["run_id"])
    ran = {s["step"] for s in again["steps"] if s["status"] == "Finished" and not s["reused_from"]}
    assert ran == {"fan.2.square", "fan.2.add", "fan", "total"}
    assert_nothing_unfinished(home)


@pytest.mark.parametrize("name", ["fan_pipeline.yml", "while_pipeline.yml"])
def test_a_loop_over_a_pipeline_keeps_what_the_flattening_knew(control: Path, name: str) -> None:
    # (that a run's copy of these loads back the same: test_azure_control)
    original = load_pipeline(control / name)
    loop = next(step for step in original.steps.values() if step.is_control)
    assert loop.control is not None
    assert loop.control["pipeline_body"] == {
        "inputs": {"x": [["square", "x"]], "plus": [["add", "plus"]], "prev": [["add", "prev"]]},
        "outputs": {"result": ["add", "sum"], "small": ["add", "again"]},
        "fixed": [],
    }
    assert set(original.templates) == {"body.square", "body.add"}


def test_graph_shows_a_pipeline_body_s_steps_under_their_loop(control: Path, home: Home) -> None:
    document = run_ok(control / "while_pipeline.yml", "--set", "jobs.body.inputs.x=8")
    shown = mlproj("graph", document["run_id"]).stdout.splitlines()
    at = shown.index("grow  [do_while of body]")
    assert shown[at + 1 : at + 3] == ["  grow.0.square", "  grow.0.add"]
    data = json.loads(mlproj("graph", document["run_id"], "--format", "json").stdout)
    assert data["iterations"] == {"grow": ["grow.0.square", "grow.0.add"]}  # 64: false at once
    board = mlproj("status", document["run_id"]).stdout
    assert "  grow.0.add" in board


def test_bad_loops_over_pipelines_are_exit_2(control: Path, home: Home) -> None:
    nested = write_pipeline(
        control / "body" / "nested.yml",
        """
        type: pipeline
        inputs:
          x: {type: integer, default: 1}
          label: {type: string, default: a}
        outputs:
          result: {type: uri_folder}
        jobs:
          inner:
            type: pipeline
            component: ./square_then_add.yml
            inputs:
              x: ${{parent.inputs.x}}
            outputs:
              result: ${{parent.outputs.result}}
          tag:
            command: echo ${{inputs.text}}
            inputs:
              text: label-${{parent.inputs.label}}
        """,
    )
    pipeline = write_pipeline(
        control / "bad_bodies.yml",
        f"""
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          body:
            type: pipeline
            component: {nested}
          fan:
            type: parallel_for
            body: ${{{{parent.jobs.body}}}}
            items: [{{x: 2, label: b, nothing: 3}}]
          user:
            command: echo ${{{{inputs.v}}}}
            inputs:
              v: ${{{{parent.jobs.body.outputs.result}}}}
        """,
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2 and done.stdout == ""
    for expected in (
        "jobs.fan.items: item 0: the body 'body' passes its input 'x' on to a nested pipeline",
        "item 0: the body 'body' passes its input 'label' on to a nested pipeline or inside a text",
        "jobs.fan.items: item 0: the body 'body' has no input 'nothing'",
        "'body' is the body of the loop 'fan'",
    ):
        assert expected in done.stderr, (expected, done.stderr)
    assert "Traceback" not in done.stderr
    assert mlproj_json("runs") == []


def test_a_hostile_pipeline_body_description_is_exit_2(control: Path, home: Home) -> None:
    pipeline = write_pipeline(
        control / "hostile.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          body.a:
            command: echo ${{inputs.x}}
            inputs: {x: 1}
          fan:
            type: parallel_for
            body: ${{parent.jobs.body}}
            items: [{x: 2}]
            pipeline_body: {inputs: {x: "a"}, outputs: [1]}
        """,
    )
    done = mlproj("validate", str(pipeline))
    assert done.returncode == 2
    assert "jobs.fan.pipeline_body: expected {inputs:" in done.stderr
    assert "Traceback" not in done.stderr


def test_loop_of_names_a_loop_s_iteration_steps() -> None:
    loops = {"fan", "outer.grow"}
    assert loop_of("fan.3", loops) == ("fan", 3)
    assert loop_of("fan.12.square", loops) == ("fan", 12)
    assert loop_of("outer.grow.0.add", loops) == ("outer.grow", 0)
    assert loop_of("fan", loops) is None
    assert loop_of("other.3", loops) is None
    assert loop_of("fanx.3", loops) is None


def test_control_nodes_inside_a_pipeline_component_name_their_own_jobs(control: Path, home: Home) -> None:
    inner = write_pipeline(
        control / "body" / "inner_loops.yml",
        """
        type: pipeline
        inputs:
          go: {type: boolean, default: true}
        outputs:
          squares: {type: uri_folder}
        jobs:
          sq:
            command: echo $(( ${{inputs.x}} * ${{inputs.x}} )) > ${{outputs.o}}/value
            inputs:
              x: {type: integer, value: 0}
            outputs:
              o: {type: uri_folder}
          fan:
            type: parallel_for
            body: ${{parent.jobs.sq}}
            items: [{x: 3}, {x: 4}]
            outputs:
              o: ${{parent.outputs.squares}}
          gate:
            type: if_else
            condition: ${{parent.inputs.go}}
            true_block: ${{parent.jobs.up}}
            false_block: ${{parent.jobs.down}}
          up:
            command: echo up
          down:
            command: echo down
        """,
    )
    pipeline = write_pipeline(
        control / "outer.yml",
        f"""
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          stage:
            type: pipeline
            component: {inner}
            inputs:
              go: false
          total:
            command: cat ${{{{inputs.all}}}}/*/value | awk '{{ s += $1 }} END {{ print s }}'
            inputs:
              all: ${{{{parent.jobs.stage.outputs.squares}}}}
        """,
    )
    document = run_ok(pipeline)
    steps = steps_of(document)
    assert steps["stage.fan.1"]["parameters"]["x"] == "4"
    assert steps["stage.up"]["status"] == "Skipped" and steps["stage.down"]["status"] == "Finished"
    assert step_log(document, "total") == "25\n"
    # A loop over that pipeline would hold loops of its own: refused, one line.
    looped = write_pipeline(
        control / "looped.yml",
        f"""
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          stage:
            type: pipeline
            component: {inner}
          again:
            type: parallel_for
            body: ${{{{parent.jobs.stage}}}}
            items: [{{go: true}}, {{go: false}}]
        """,
    )
    done = mlproj("run", str(looped))
    assert done.returncode == 2
    assert (
        "jobs.again.body: 'stage': a control node; the body is a command job or a pipeline job without"
        in (done.stderr)
    )
