"""Control flow in Azure ML v2 pipelines (design.md §9): if_else, do_while and parallel_for, written
as azure-ai-ml writes them (tests/azure/control/), run end to end with the real `mlproj` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlproj.home import Home
from mlproj.pipelines.controls import ControlError, parse_boolean, read_boolean
from mlproj.pipelines.model import display_order
from tests.helpers import assert_nothing_unfinished, mlproj, mlproj_json, wait_until
from tests.pipelines import run_ok, run_pipeline, step_log, timestamp, write_pipeline
from tests.pipelines import steps as steps_of

CONTROL = Path(__file__).parent / "azure" / "control"


@pytest.mark.parametrize(
    ("score", "taken", "skipped"), [("0.9", "deploy", "retrain"), ("0.2", "retrain", "deploy")]
)
def test_if_else_runs_one_block_and_skips_the_other(
    control: Path, home: Home, score: str, taken: str, skipped: str
) -> None:
    document = run_ok(control / "branches.yml", "-P", f"score={score}")
    steps = steps_of(document)
    assert document["status"] == "Finished"
    assert steps[taken]["status"] == "Finished"
    assert steps[f"announce_{taken}"]["status"] == "Finished"
    assert step_log(document, f"announce_{taken}") == ("deploying\n" if taken == "deploy" else "retraining\n")
    # The block not taken, and what only it leads to, are Skipped, saying why; the pipeline is fine.
    assert steps[skipped]["status"] == "Skipped"
    assert f"gate took its {'true' if taken == 'deploy' else 'false'}_block" in steps[skipped]["error"]
    assert steps[f"announce_{skipped}"]["status"] == "Skipped"
    assert "branch not taken" in steps[f"announce_{skipped}"]["error"]
    assert steps["gate"]["status"] == "Finished"
    assert "ran the" in steps["gate"]["reason"]
    assert steps["done"]["status"] == "Finished"  # it only waits for both blocks


def test_an_if_else_condition_that_is_not_a_boolean_fails_the_node(control: Path, home: Home) -> None:
    branches = control / "branches.yml"
    branches.write_text(
        branches.read_text().replace("> ${{outputs.good}}", "> /dev/null; echo maybe > ${{outputs.good}}")
    )
    code, document = run_pipeline(branches)
    assert code == 1
    steps = steps_of(document)
    assert steps["gate"]["status"] == "Failed"
    assert "gate.condition: expected true or false, got 'maybe'" in steps["gate"]["error"]
    assert steps["deploy"]["status"] == "Skipped" and steps["retrain"]["status"] == "Skipped"
    assert_nothing_unfinished(home)


def test_do_while_stops_when_its_condition_is_false(control: Path, home: Home) -> None:
    document = run_ok(control / "until.yml")
    steps = steps_of(document)
    assert [name for name in steps if name.startswith("climb.")] == [
        "climb.0",
        "climb.1",
        "climb.2",
        "climb.3",
    ]
    assert steps["climb"]["reason"] == "4 iterations: the condition is false"
    # Each iteration reads the output the mapping feeds back; the node's outputs are the last one's.
    assert Path(steps["climb.2"]["parameters"]["current"]) == Path(steps["climb.1"]["outputs"]["next"])
    assert steps["climb"]["outputs"]["next"] == steps["climb.3"]["outputs"]["next"]
    assert step_log(document, "report") == "4\n"
    assert "step_up" not in steps  # the body runs only as the loop's iterations


def test_do_while_stops_at_max_iteration_count(control: Path, home: Home) -> None:
    document = run_ok(control / "until.yml", "-P", "target=100")
    steps = steps_of(document)
    assert steps["climb"]["reason"] == "6 iterations: max_iteration_count (6) reached"
    assert step_log(document, "report") == "6\n"
    again = steps_of(run_ok(control / "until.yml", "-P", "target=100"))
    assert all(again[f"climb.{index}"]["reused_from"] for index in range(6))  # reuse per iteration


def test_parallel_for_runs_every_item_at_most_max_concurrency_at_once(control: Path, home: Home) -> None:
    document = run_ok(control / "fan.yml", "--max-parallel", "8")  # the loop's own limit is 4
    steps = steps_of(document)
    iterations = [steps[f"squares.{index}"] for index in range(20)]
    assert [step["parameters"]["x"] for step in iterations] == [str(x) for x in range(1, 21)]
    spans = [(timestamp(step["started_at"]), timestamp(step["ended_at"])) for step in iterations]
    overlap = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert 1 < overlap <= 4, overlap
    assert step_log(document, "total") == f"{sum(x * x for x in range(1, 21))}\n"
    gathered = Path(steps["squares"]["outputs"]["result"])
    assert sorted(int(folder.name) for folder in gathered.iterdir()) == list(range(20))
    assert (gathered / "6" / "value").read_text() == "49\n"


def test_parallel_for_items_from_an_input_and_from_an_output(control: Path, home: Home) -> None:
    pipeline = write_pipeline(
        control / "dynamic.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        inputs:
          items: '{"small": {"x": 2}, "large": {"x": 30}}'
        jobs:
          make:
            command: >-
              echo '[{"x": 5}, {"x": 6}]' > ${{outputs.list}}
            outputs:
              list: {type: uri_file}
          first_body:
            command: echo ${{inputs.x}} > ${{outputs.o}}
            inputs:
              x: {type: integer, value: 0}
            outputs:
              o: {type: uri_file}
          second_body:
            command: echo ${{inputs.x}} > ${{outputs.o}}
            inputs:
              x: {type: integer, value: 0}
            outputs:
              o: {type: uri_file}
          named:
            type: parallel_for
            body: ${{parent.jobs.first_body}}
            items: ${{parent.inputs.items}}
          made:
            type: parallel_for
            body: ${{parent.jobs.second_body}}
            items: ${{parent.jobs.make.outputs.list}}
        """,
    )
    document = run_ok(pipeline)
    steps = steps_of(document)
    named = Path(steps["named"]["outputs"]["o"])
    assert sorted(p.name for p in named.iterdir()) == ["large", "small"]
    assert (named / "large" / "o").read_text() == "30\n"
    assert [steps[f"made.{i}"]["parameters"]["x"] for i in range(2)] == ["5", "6"]
    code, failed = run_pipeline(pipeline, "-P", "items=[1, 2]")  # items that only a run can read
    assert code == 1
    node = steps_of(failed)["named"]
    assert node["status"] == "Failed"
    assert node["error"] == "named.items: expected each item to be a mapping of the body's inputs to values"


def test_a_failed_iteration_fails_the_loop_and_resume_reruns_only_it(control: Path, home: Home) -> None:
    marker = control / "fail-seven"
    marker.touch()
    fan = control / "fan.yml"
    check = f"test ${{{{inputs.x}}}} -ne 7 || test ! -e {marker} &&"
    fan.write_text(
        fan.read_text().replace("sleep ${{inputs.pause}} &&", f"sleep ${{{{inputs.pause}}}} && {check}")
    )
    code, document = run_pipeline(fan, "-P", "pause=0", "--continue-on-step-failure")
    assert code == 1
    steps = steps_of(document)
    assert steps["squares.6"]["status"] == "Failed"
    assert (
        steps["squares"]["status"] == "Failed" and "iteration squares.6 Failed" in steps["squares"]["error"]
    )
    assert steps["total"]["status"] == "Skipped"
    finished = [
        name for name, step in steps.items() if name.startswith("squares.") and step["status"] == "Finished"
    ]
    assert len(finished) == 19
    marker.unlink()
    resumed = mlproj("resume", document["run_id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    again = mlproj_json("status", mlproj_json("runs")[0]["run_id"])
    ran = {s["step"] for s in again["steps"] if s["status"] == "Finished" and not s["reused_from"]}
    assert ran == {"squares.6", "squares", "total"}
    assert_nothing_unfinished(home)


def test_bad_control_nodes_are_exit_2_with_every_problem(control: Path, home: Home) -> None:
    pipeline = write_pipeline(
        control / "bad.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          body:
            command: echo ${{inputs.n}}
            inputs: {n: 1}
          loop:
            type: do_while
            body: ${{parent.jobs.body}}
            condition: again
            mapping: {next: n}
          fan:
            type: parallel_for
            body: ${{parent.jobs.nobody}}
            items: [{n: 1}]
          fan2:
            type: parallel_for
            body: ${{parent.jobs.other}}
            items: [{m: 1}]
          other:
            command: echo ${{inputs.n}}
            inputs: {n: 1}
          gate:
            type: if_else
            condition: maybe
            true_block: ${{parent.jobs.missing}}
          user:
            command: echo ${{inputs.v}}
            inputs:
              v: ${{parent.jobs.other.outputs.x}}
        """,
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2 and done.stdout == ""
    text = done.stderr
    for expected in (
        "jobs.loop.limits: expected {max_iteration_count: N}",
        "jobs.loop.condition: the body 'body' has no output 'again'",
        "jobs.loop.mapping.next: the body 'body' has no output 'next'",
        "jobs.fan.body: 'nobody': no such job",
        "jobs.fan2.items: item 0: the body 'other' has no input 'm'",
        "jobs.gate.condition: expected true, false or a binding, got 'maybe'",
        "jobs.gate.true_block: unknown job 'missing'",
        "'other' is the body of the loop 'fan2'",
    ):
        assert expected in text, (expected, text)
    assert "Traceback" not in text
    assert mlproj_json("runs") == []


def test_boolean_outputs_are_read_as_mldesigner_writes_them(tmp_path: Path) -> None:
    (tmp_path / "flag").write_text("True\n")
    assert read_boolean(str(tmp_path / "flag"), "c") is True
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "output").write_text("false")
    assert read_boolean(str(folder), "c") is False
    (folder / "second").write_text("true")
    with pytest.raises(ControlError, match="expected one file in"):
        read_boolean(str(folder), "c")
    with pytest.raises(ControlError, match="the output was not written"):
        read_boolean(None, "c")
    with pytest.raises(ControlError, match="expected true or false, got '1'"):
        parse_boolean("1", "c")


def test_canceling_a_running_loop_cancels_it_and_its_iterations(control: Path, home: Home) -> None:
    done = mlproj("run", str(control / "fan.yml"), "-d", "-P", "pause=30", "--max-parallel", "8")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()

    def running_iterations() -> int:
        steps = mlproj_json("status", run_id)["steps"]
        return sum(1 for s in steps if s["step"].startswith("squares.") and s["status"] == "Running")

    wait_until(lambda: running_iterations() == 4, timeout=60)
    assert mlproj("cancel", run_id).returncode == 0
    assert mlproj("wait", run_id, timeout=120).returncode != 0
    document = mlproj_json("status", run_id)
    assert document["status"] == "Canceled"
    steps = steps_of(document)
    assert steps["squares"]["status"] == "Canceled"
    assert {s["status"] for name, s in steps.items() if name.startswith("squares.")} == {"Canceled"}
    assert steps["total"]["status"] == "Canceled"
    assert_nothing_unfinished(home)


def test_iterations_are_shown_after_their_loop() -> None:
    names = ["a", "loop", "b", "loop.10", "loop.2", "stage.train", "loop.2.x", "b.0"]
    # `loop.2.x`: a step of iteration 2 of a loop whose body is a pipeline.
    assert display_order(names) == ["a", "loop", "loop.2", "loop.2.x", "loop.10", "b", "b.0", "stage.train"]


@pytest.mark.parametrize(
    "name", ["branches.yml", "until.yml", "fan.yml", "fan_pipeline.yml", "while_pipeline.yml"]
)
def test_a_run_s_copy_of_a_control_flow_pipeline_loads_back_the_same(
    control: Path, tmp_path: Path, name: str
) -> None:
    from mlproj.pipelines.loader import load_pipeline

    original = load_pipeline(control / name)
    copy = tmp_path / "copy.yml"
    copy.write_text(original.to_text())
    again = load_pipeline(copy, as_file=control / name)
    assert (again.steps, again.templates) == (original.steps, original.templates)
    assert again.to_document() == original.to_document()


def test_graph_shows_control_nodes_and_a_run_s_iterations(control: Path, home: Home) -> None:
    text = mlproj("graph", str(control / "branches.yml")).stdout
    assert "gate" in text and "[if_else (true: deploy; false: retrain)]" in text
    mermaid = mlproj("graph", str(control / "branches.yml"), "--format", "mermaid").stdout
    assert 's_gate{"gate"}' in mermaid
    dot = mlproj("graph", str(control / "until.yml"), "--format", "dot").stdout
    assert '"climb" [shape=box3d];' in dot
    document = run_ok(control / "until.yml")
    shown = mlproj("graph", document["run_id"]).stdout.splitlines()
    at = shown.index("climb  [do_while of step_up]")
    assert shown[at + 1 : at + 5] == ["  climb.0", "  climb.1", "  climb.2", "  climb.3"]
    data = json.loads(mlproj("graph", document["run_id"], "--format", "json").stdout)
    assert data["controls"] == {"climb": {"type": "do_while", "body": "step_up"}}
    assert data["iterations"] == {"climb": ["climb.0", "climb.1", "climb.2", "climb.3"]}


def test_hostile_item_keys_and_shared_blocks_are_exit_2(control: Path, home: Home) -> None:
    pipeline = write_pipeline(
        control / "keys.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          body:
            command: echo ${{inputs.x}} > ${{outputs.o}}
            inputs: {x: {type: integer, value: 0}}
            outputs: {o: {type: uri_file}}
          fan:
            type: parallel_for
            body: ${{parent.jobs.body}}
            items: {"../escape": {x: 1}}
          other:
            command: echo ${{inputs.x}}
            inputs: {x: {type: integer, value: 0}}
          fan2:
            type: parallel_for
            body: ${{parent.jobs.other}}
            items: [{x: text}]
          a:
            command: echo a
          gate:
            type: if_else
            condition: true
            true_block: ${{parent.jobs.a}}
            false_block: ${{parent.jobs.a}}
        """,
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2, done.stderr
    assert "jobs.fan.items: item key '../escape': a key is letters" in done.stderr
    assert "jobs.fan2.items: item 0: x='text' is not a value for the body's integer" in done.stderr
    assert "jobs.gate.false_block: 'a' is in true_block too" in done.stderr
    assert mlproj_json("runs") == []


def test_a_loop_halted_by_its_failed_iteration_ends_failed(control: Path, home: Home) -> None:
    fan = control / "fan.yml"
    fan.write_text(
        fan.read_text().replace(
            "sleep ${{inputs.pause}} &&", "sleep ${{inputs.pause}} && test ${{inputs.x}} -ne 2 &&"
        )
    )
    code, document = run_pipeline(fan, "-P", "pause=0", "--max-parallel", "1")
    assert code == 1
    steps = steps_of(document)
    assert steps["squares.1"]["status"] == "Failed"
    assert steps["squares"]["status"] == "Failed"
    assert steps["squares"]["error"] == "the pipeline stopped after step squares.1 failed"
    assert_nothing_unfinished(home)


def test_a_do_while_passes_a_primitive_output_as_its_value_and_reads_big_items(
    control: Path, home: Home
) -> None:
    items = json.dumps([{"x": index} for index in range(400)])  # more than 4 KB of JSON
    (control / "items.json").write_text(items)
    pipeline = write_pipeline(
        control / "primitive.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        inputs:
          list: {type: uri_file, path: ./items.json}
        jobs:
          count:
            command: >-
              echo $(( ${{inputs.n}} + 1 )) > ${{outputs.next}};
              if [ ${{inputs.n}} -lt 2 ]; then echo true; else echo false; fi > ${{outputs.again}}
            inputs: {n: {type: integer, value: 0}}
            outputs:
              next: {type: integer, is_control: true}
              again: {type: boolean, is_control: true}
          loop:
            type: do_while
            body: ${{parent.jobs.count}}
            condition: again
            mapping: {next: n}
            limits: {max_iteration_count: 5}
          body:
            command: "true"
            inputs: {x: {type: integer, value: 0}}
          many:
            type: parallel_for
            body: ${{parent.jobs.body}}
            items: ${{parent.inputs.list}}
            max_concurrency: 2
        """,
    )
    document = run_ok(pipeline, "--max-parallel", "4")
    steps = steps_of(document)
    assert [steps[f"loop.{i}"]["parameters"]["n"] for i in range(3)] == ["0", "1", "2"]
    assert steps["many"]["reason"] == "400 iterations"


def test_a_primitive_output_reaches_a_primitive_input_as_its_value(control: Path, home: Home) -> None:
    pipeline = write_pipeline(
        control / "values.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          decide:
            command: echo 7 > ${{outputs.count}}; echo fine > ${{outputs.label}}
            outputs:
              count: {type: integer, is_control: true}
              label: {type: string}
          use:
            command: echo $(( ${{inputs.count}} * 6 )) ${{inputs.label}}
            inputs:
              count: {type: integer, path: "${{parent.jobs.decide.outputs.count}}"}
              label: ${{parent.jobs.decide.outputs.label}}
          read:
            command: cat ${{inputs.count}}
            inputs:
              count: {type: uri_file, path: "${{parent.jobs.decide.outputs.count}}"}
        """,
    )
    document = run_ok(pipeline)
    steps = steps_of(document)
    assert steps["use"]["parameters"] == {"count": "7", "label": "fine"}
    assert step_log(document, "use") == "42 fine\n"
    # An input that wants the file gets the file.
    assert Path(steps["read"]["parameters"]["count"]) == Path(steps["decide"]["outputs"]["count"])
    assert step_log(document, "read") == "7\n"
    # The value, not where it was written, is what reuse compares: a rerun reuses both.
    again = steps_of(run_ok(pipeline))
    assert again["use"]["reused_from"] and again["read"]["reused_from"]
    # A value that is not what its input says fails the step that would take it, before it runs.
    pipeline.write_text(pipeline.read_text().replace("echo 7 >", 'echo "7 )); echo pwned; (( 1" >'))
    code, failed = run_pipeline(pipeline)
    assert code == 1
    use = steps_of(failed)["use"]
    assert use["status"] == "Failed" and "only an integer may stand there" in use["error"]
    assert "pwned" not in step_log(failed, "use")


def test_conditions_and_mappings_of_the_wrong_kind_are_exit_2(control: Path, home: Home) -> None:
    pipeline = write_pipeline(
        control / "kinds.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        inputs:
          score: 0.5
        jobs:
          gate:
            type: if_else
            condition: ${{parent.inputs.score}}
            true_block: ${{parent.jobs.after}}
          after:
            command: echo after
          body:
            command: echo 1 > ${{outputs.n}}; echo 2 > ${{outputs.m}}/x; echo false > ${{outputs.again}}
            inputs:
              count: {type: integer, value: 0}
              data: {type: uri_folder, optional: true}
            outputs:
              n: {type: integer, is_control: true}
              m: {type: uri_folder}
              again: {type: boolean, is_control: true}
          loop:
            type: do_while
            body: ${{parent.jobs.body}}
            condition: again
            mapping:
              n: [count, data]
              m: count
            limits: {max_iteration_count: 3}
        """,
    )
    done = mlproj("run", str(pipeline))
    assert done.returncode == 2, done.stderr
    for expected in (
        "jobs.gate.condition: ${{parent.inputs.score}} is a number: a condition is a boolean",
        "jobs.loop.mapping.n: n → data: the output is a value (integer), the input takes a path (uri_folder)",
        "jobs.loop.mapping.m: the input 'count' is mapped from 'n' already: one output each",
        "mapping.m: m → count: the output is a path (uri_folder), the input takes a value (integer)",
    ):
        assert expected in done.stderr, (expected, done.stderr)
    assert mlproj_json("runs") == []
