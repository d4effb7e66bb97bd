"""The Azure ML v2 reader's rules, in-process and fast (design.md §9): components merged, pipelines
flattened, the asset map's lookups, `--set`, `$[[...]]`, every problem at once, a run's snapshot."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlproj.errors import InputError, SpecError, SpecErrors
from mlproj.notices import forget, listen
from mlproj.pipelines.assets import load_asset_map
from mlproj.pipelines.loader import is_azure, load_pipeline
from mlproj.pipelines.model import Step, optional_parts
from mlproj.pipelines.overrides import apply_overrides, parse_override
from mlproj.pipelines.placement import scaled
from mlproj.pipelines.problems import Problems

SCHEMA = "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"
AZURE = Path(__file__).parent / "azure"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def azure_file(path: Path, body: str) -> Path:
    """An Azure ML pipeline job file: its `$schema` line, then `body` (dedented)."""
    return write(path, SCHEMA + textwrap.dedent(body).lstrip())


@pytest.fixture
def notices() -> Iterator[list[str]]:
    said: list[str] = []
    forget()
    stop = listen(said.append)
    yield said
    stop()
    forget()


def test_optional_parts_are_kept_only_with_every_value() -> None:
    command = "train $[[--epochs ${{inputs.epochs}}]] $[[--a ${{inputs.a}} --b ${{inputs.b}}]] end"
    assert (
        optional_parts(command, lambda _name: True)
        == "train --epochs ${{inputs.epochs}} --a ${{inputs.a}} --b ${{inputs.b}} end"
    )
    assert (
        optional_parts(command, lambda name: name != "inputs.b") == "train --epochs ${{inputs.epochs}}  end"
    )
    assert optional_parts("no optional part", lambda _name: False) == "no optional part"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json"}, True),
        ({"type": "pipeline", "jobs": {"a": {"command": "x", "compute": "azureml:c"}}}, True),
        ({"type": "pipeline", "settings": {"default_datastore": "x"}}, True),
        ({"type": "pipeline", "outputs": {"o": {"type": "uri_folder"}}}, True),
        ({"type": "pipeline", "jobs": {"a": {"command": "x", "retries": 1}}}, False),
        ({"type": "pipeline", "outputs": {"o": "${{parent.jobs.a.outputs.b}}"}}, False),
    ],
)
def test_what_is_read_as_azure_ml(data: dict[str, object], expected: bool) -> None:
    assert is_azure(data) is expected


def test_asset_map_lookups(tmp_path: Path) -> None:
    write(
        tmp_path / "azureml.yaml",
        """
        environments:
          azureml:sklearn:2: {conda_file: ./env.yml}
          torch: {image: pytorch/pytorch}
          lightgbm: uv
        computes:
          gpu: {backend: ray, backend_config: {num_gpus: 1}}
          cpu: slurm
        data:
          iris: ./iris.csv
          azureml://datastores/blobs/paths/raw: ./raw
          azureml://datastores/blobs/paths/raw/deep/: ./deeper
        """,
    )
    problems = Problems()
    assets = load_asset_map(tmp_path / "p.yml", None, problems)
    assert not problems
    assert assets.environment("azureml:sklearn:2") == {"conda_file": str(tmp_path / "env.yml")}
    assert assets.environment("sklearn:2") is not None
    assert assets.environment("azureml:torch@latest") == {"image": "pytorch/pytorch"}
    assert assets.environment("azureml:torch:7") == {"image": "pytorch/pytorch"}
    assert assets.environment("azureml://registries/azureml/environments/lightgbm/labels/latest") == {
        "env_manager": "uv"
    }
    assert assets.environment("azureml:other:1") is None
    assert assets.compute("azureml:gpu") == {"backend": "ray", "backend_config": {"num_gpus": 1}}
    assert assets.compute("cpu") == {"backend": "slurm", "backend_config": None}
    assert assets.data_path("azureml:iris:1") == str(tmp_path / "iris.csv")
    assert assets.data_path("azureml:iris@latest") == str(tmp_path / "iris.csv")
    assert assets.data_path("azureml://datastores/blobs/paths/raw/a/b.csv") == str(tmp_path / "raw/a/b.csv")
    assert assets.data_path("azureml://datastores/blobs/paths/raw/deep/x") == str(tmp_path / "deeper/x")
    long_form = "azureml://subscriptions/s/resourcegroups/g/workspaces/w/datastores/blobs/paths/raw/y"
    assert assets.data_path(long_form) == str(tmp_path / "raw/y")
    assert assets.data_path("azureml://datastores/blobs/paths/rawer/y") is None


def test_a_bad_asset_map_reports_each_problem(tmp_path: Path) -> None:
    write(
        tmp_path / "azureml.yaml",
        """
        environments:
          a: {image: 3, colour: red}
        computes:
          c: {backend_config: {}}
        data:
          d: {}
        extra: 1
        """,
    )
    problems = Problems()
    load_asset_map(tmp_path / "p.yml", None, problems)
    messages = [str(problem) for problem in problems.found]
    assert len(messages) == 5, messages
    assert any("azureml.yaml:2: environments.a.image: expected a string" in m for m in messages)
    assert any("environments.a.colour: unknown key" in m for m in messages)
    assert any("computes.c: expected {backend: NAME" in m for m in messages)
    assert any("data.d: expected a local path" in m for m in messages)
    assert any("extra: unknown key" in m for m in messages)


def test_overrides() -> None:
    assert parse_override("jobs.a.inputs.lr=0.1") == (["jobs", "a", "inputs", "lr"], 0.1)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a={type: uri_folder, path: ./d}") == (["a"], {"type": "uri_folder", "path": "./d"})
    assert parse_override('a={"type": "uri_file"}') == (["a"], {"type": "uri_file"})
    assert parse_override("a=") == (["a"], "")
    assert parse_override("a=[unclosed") == (["a"], "[unclosed")
    for text in ("yes", "007", "12:30", "a: b", "x=y"):  # text stays text, as az ml --set keeps it
        assert parse_override(f"a={text}") == (["a"], text)
    for bad in ("novalue", "=1", "a..b=1"):
        with pytest.raises(InputError, match=r"expected KEY\.PATH=VALUE"):
            parse_override(bad)
    data = {"jobs": {"a": {"command": "x"}}}
    assert apply_overrides(data, ["jobs.a.inputs.n=3", "settings.force_rerun=true"], Path("p.yml")) == {
        "jobs": {"a": {"command": "x", "inputs": {"n": 3}}},
        "settings": {"force_rerun": True},
    }
    assert data == {"jobs": {"a": {"command": "x"}}}  # the document read is not changed
    with pytest.raises(InputError, match=r"jobs\.a\.command is a str, not a mapping"):
        apply_overrides(data, ["jobs.a.command.x=1"], Path("p.yml"))


def test_nested_pipeline_components_flatten_and_bind_through_every_level(tmp_path: Path) -> None:
    write(
        tmp_path / "leaf.yml",
        """
        type: command
        inputs: {n: {type: integer}}
        outputs: {out: {type: uri_folder}}
        command: echo ${{inputs.n}} > ${{outputs.out}}/n
        """,
    )
    write(
        tmp_path / "middle.yml",
        """
        type: pipeline
        inputs: {n: {type: integer, default: 4}}
        outputs: {result: {}}
        jobs:
          leaf:
            component: ./leaf.yml
            inputs:
              n: ${{parent.inputs.n}}
            outputs:
              out: ${{parent.outputs.result}}
        """,
    )
    write(
        tmp_path / "outer.yml",
        """
        type: pipeline
        inputs: {count: {type: integer}}
        outputs: {final: {}}
        jobs:
          middle:
            type: pipeline
            component: ./middle.yml
            inputs:
              n: ${{parent.inputs.count}}
            outputs:
              result: ${{parent.outputs.final}}
          check:
            command: cat ${{inputs.r}}/n
            inputs:
              r: ${{parent.jobs.middle.outputs.result}}
        """,
    )
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        inputs: {k: 7}
        outputs: {top: {}}
        jobs:
          a:
            type: pipeline
            component: ./outer.yml
            inputs:
              count: ${{parent.inputs.k}}
            outputs:
              final: ${{parent.outputs.top}}
          after:
            command: echo after
            depends_on: [a]
        """,
    )
    loaded = load_pipeline(pipeline)
    assert list(loaded.steps) == ["a.middle.leaf", "a.check", "after"]
    assert loaded.steps["a.middle.leaf"].inputs == {"n": "${{parent.inputs.k}}"}
    assert loaded.steps["a.check"].inputs == {"r": "${{parent.jobs.a.middle.leaf.outputs.out}}"}
    assert loaded.outputs == {"top": "${{parent.jobs.a.middle.leaf.outputs.out}}"}
    assert set(loaded.steps["after"].depends_on) == {"a.middle.leaf", "a.check"}
    assert loaded.edges() == [("a.middle.leaf", "a.check"), ("a.check", "after"), ("a.middle.leaf", "after")]


def test_component_defaults_optional_inputs_inline_components_and_keys(
    tmp_path: Path, notices: list[str]
) -> None:
    code = tmp_path / "src"
    code.mkdir()
    write(tmp_path / "env.yml", "dependencies: [python=3.11]\n")
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        settings:
          default_environment: {image: python:3.11-slim}
          on_init: nothing
        jobs:
          inline:
            component:
              type: command
              inputs:
                flag: {type: boolean, default: false}
                extra: {type: string, optional: true}
              command: echo ${{inputs.flag}} $[[${{inputs.extra}}]]
            environment: {conda_file: ./env.yml, image: base}
            limits: {timeout: 60}
            retry_settings: {max_retries: 3}
            is_deterministic: false
            identity: {type: managed}
            outputs: {}
          plain:
            code: ./src
            command: echo plain
            outputs:
              o: {type: mlflow_model, path: azureml://datastores/x/paths/y}
        """,
    )
    loaded = load_pipeline(pipeline)
    inline, plain = loaded.steps["inline"], loaded.steps["plain"]
    assert inline.inputs == {"flag": False, "extra": None}
    assert inline.input_types == {"flag": "boolean", "extra": "string"}
    assert inline.environment == {"conda_file": str(tmp_path / "env.yml")}
    assert (inline.timeout, inline.retries, inline.allow_reuse) == (60.0, 3, False)
    assert inline.outputs == {"artifacts": "uri_folder"} and inline.artifacts_output == "artifacts"
    assert plain.environment == {"image": "python:3.11-slim"}
    assert plain.outputs == {"o": "mlflow_model"} and plain.artifacts_output is None and plain.code_copy
    assert loaded.settings == {"on_init": "nothing"}
    assert any("settings.on_init: unknown setting: kept" in n for n in notices)
    assert any("jobs.inline.identity: an Azure ML setting with no meaning here" in n for n in notices)
    assert any("jobs.plain.outputs.o.path: azureml://datastores/x/paths/y" in n for n in notices)


def test_problems_in_components_name_their_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yml",
        """
        type: command
        inputs:
          n: {type: integer, default: x}
        command: echo ${{inputs.n}} ${{inputs.gone}}
        additional: 1
        """,
    )
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          a:
            component: ./c.yml
          b:
            component: azureml:registered_component:3
          c:
            type: parallel
        """,
    )
    with pytest.raises(SpecErrors) as caught:
        load_pipeline(pipeline)
    found = [str(problem) for problem in caught.value.problems]
    component = tmp_path / "c.yml"
    assert sorted(found) == sorted(
        [
            f"{component}:5: additional: unknown key for a command component "
            "(expected one of: code, command, description, display_name, distribution, environment, "
            "environment_variables, inputs, is_deterministic, name, outputs, properties, resources, tags, "
            "type, version)",
            f"{component}:3: inputs.n.default: expected an integer, got 'x'",
            f"{component}:4: command: ${{{{inputs.gone}}}}: this step declares no input 'gone'",
            f"{pipeline}:7: jobs.b.component: azureml:registered_component:3: a registered component "
            "cannot be read here; give its file (component: ./component.yml)",
            f"{pipeline}:8: jobs.c.task: a parallel job needs its task: "
            "{type: run_function, entry_script: ...}",
        ]
    )
    text = str(caught.value).splitlines()
    assert text[0] == f"{pipeline}: 5 problems"
    assert isinstance(caught.value, InputError) and caught.value.exit_code == 2


def test_one_problem_is_reported_as_it_is(tmp_path: Path) -> None:
    pipeline = azure_file(tmp_path / "p.yml", "type: pipeline\njobs:\n  a: {command: echo, colour: 1}\n")
    with pytest.raises(SpecError, match=r"p.yml:4: jobs.a.colour: unknown key for a command step"):
        load_pipeline(pipeline)


def test_an_optional_input_outside_an_optional_part_is_refused(tmp_path: Path) -> None:
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          a:
            command: echo ${{inputs.x}}
            inputs: {x: {type: integer, optional: true}}
        """,
    )
    with pytest.raises(SpecError, match=r"has no value \(optional\): use it inside \$\[\[ \.\.\. \]\]"):
        load_pipeline(pipeline)


def test_the_snapshot_loads_back_to_the_same_pipeline(tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(AZURE, tmp_path / "azure"))
    original = load_pipeline(folder / "pipeline.yml", overrides=["inputs.lr=0.2"])
    snapshot = tmp_path / "elsewhere" / "pipeline.yml"
    snapshot.parent.mkdir()
    snapshot.write_text(original.to_text())
    again = load_pipeline(snapshot, as_file=folder / "pipeline.yml")
    assert again.to_document() == original.to_document()
    assert again.steps == original.steps
    assert again.inputs["lr"].default == 0.2


def test_resources_and_distribution_reach_slurm_and_are_noticed_elsewhere(notices: list[str]) -> None:
    step = Step(
        name="t",
        type="command",
        command="x",
        resources={"instance_count": 2, "instance_type": "Standard_NC6"},
        distribution={"type": "pytorch", "process_count_per_instance": 4},
    )
    assert scaled("slurm", {"sbatch_args": ["--exclusive"]}, step, "jobs.t") == {
        "sbatch_args": ["--exclusive", "--nodes=2", "--ntasks-per-node=4"]
    }
    assert scaled("ray", {"num_cpus": 1}, step, "jobs.t") == {
        "num_cpus": 1
    }  # the compute's configuration wins
    assert scaled("ray", {"address": "x"}, step, "jobs.t") == {
        "address": "x",
        "num_cpus": 8,
    }  # a CPU per process
    assert scaled("local", {}, Step(name="u", type="command", command="x"), "jobs.u") == {}
    assert any("jobs.t.resources: instance_type have no meaning here" in n for n in notices)
    assert not any("ray backend" in n for n in notices)
    assert scaled("local", {}, step, "steps.t") == {}
    assert any(
        "steps.t: resources.instance_count and distribution have no meaning on the local" in n
        for n in notices
    )


def test_azure_input_forms_in_mlproj_s_own_dialect(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pipeline = write(
        tmp_path / "p.yml",
        """
        type: pipeline
        inputs:
          raw: {type: uri_folder, path: ./data}
        jobs:
          a:
            command: ls ${{inputs.d}} ${{inputs.e}}
            inputs:
              d: {type: uri_folder, path: ./data}
              e: ${{parent.inputs.raw}}
        """,
    )
    loaded = load_pipeline(pipeline)
    assert not loaded.azure
    assert loaded.inputs["raw"].default == "./data"  # a value, not silently nothing
    assert loaded.steps["a"].inputs == {"d": str(tmp_path / "data"), "e": "${{parent.inputs.raw}}"}
    assert loaded.steps["a"].input_types == {"d": "uri_folder"}
    assert not loaded.steps["a"].code_copy and loaded.steps["a"].outputs == {}


def test_paths_given_to_a_pipeline_component_are_the_giving_file_s(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "comps" / "data").mkdir(parents=True)
    (tmp_path / "comps" / "sample.csv").write_text("1\n")
    write(
        tmp_path / "comps" / "inner.yml",
        """
        type: pipeline
        inputs:
          folder: {type: uri_folder}
          text: {type: uri_file, default: ./sample.csv}
        jobs:
          use:
            command: ls ${{inputs.f}} ${{inputs.t}}
            inputs:
              f: ${{parent.inputs.folder}}
              t:
                type: uri_file
                path: ${{parent.inputs.text}}
        """,
    )
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          outer:
            type: pipeline
            component: ./comps/inner.yml
            inputs:
              folder: {type: uri_folder, path: ./data}
        """,
    )
    step = load_pipeline(pipeline).steps["outer.use"]
    assert step.inputs == {"f": str(tmp_path / "data"), "t": str(tmp_path / "comps" / "sample.csv")}


def test_an_optional_part_must_close_what_it_opens(tmp_path: Path) -> None:
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          a:
            command: echo $[[ "${{inputs.a}} ]] x $[[ ${{inputs.b}}" ]] done
            inputs:
              a: {type: string, optional: true}
              b: {type: string, optional: true}
        """,
    )
    with pytest.raises(
        SpecError, match=r"jobs\.a\.command: \$\[\[ \"\$\{\{inputs\.a\}\} \]\]: a part that may be left out"
    ):
        load_pipeline(pipeline)


def test_hostile_values_in_pipeline_jobs_are_problems_not_crashes(tmp_path: Path) -> None:
    write(
        tmp_path / "self.yml",
        """
        type: pipeline
        jobs:
          again:
            type: pipeline
            component: ./self.yml
        """,
    )
    write(tmp_path / "inner.yml", "type: pipeline\njobs:\n  x: {command: echo x}\n")
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          loop:
            type: pipeline
            component: ./self.yml
          stage:
            type: pipeline
            component: ./inner.yml
            outputs: 7
            depends_on: [[1]]
            limits: {timeout: 3}
          after:
            command: echo after
            depends_on: [[1]]
            environment_variables: {"A=B": 1, OK: [1], NUL: "a\\0b"}
            resources: {instance_count: abc}
            distribution: {type: horovod, process_count_per_instance: [1]}
        """,
    )
    with pytest.raises(SpecErrors) as caught:
        load_pipeline(pipeline)
    found = "\n".join(str(problem) for problem in caught.value.problems)
    assert f"{tmp_path / 'self.yml'}" in found and "includes itself" in found
    assert "jobs.stage.outputs: expected a mapping of outputs" in found
    assert "jobs.stage.depends_on: expected a list of step names" in found
    assert "jobs.stage.limits: unknown key for a pipeline job" in found
    assert "jobs.after.depends_on: expected a list of step names" in found
    assert "jobs.after.environment_variables.A=B: expected a variable name" in found
    assert "jobs.after.environment_variables.OK: expected a value" in found
    assert "jobs.after.environment_variables.NUL: a NUL character cannot be passed" in found
    assert "jobs.after.resources.instance_count: expected a whole number of at least 1, got 'abc'" in found
    assert "jobs.after.distribution.process_count_per_instance: expected a whole number" in found
    assert "jobs.after.distribution.type: unknown distribution 'horovod'" in found


def test_a_pipeline_job_s_keys_hold_for_its_steps(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write(
        tmp_path / "comps" / "inner.yml",
        """
        type: pipeline
        inputs:
          d: {type: uri_folder}
          rate: {type: number}
        outputs:
          out: {}
        jobs:
          a:
            command: ls ${{inputs.x}} > ${{outputs.o}}/ls
            inputs:
              x:
                type: uri_folder
                path: ${{parent.inputs.d}}
              r: ${{parent.inputs.lr}}
            outputs:
              o: ${{parent.outputs.out}}
          b:
            command: echo b
        """,
    )
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        jobs:
          first:
            command: echo first
          stage:
            type: pipeline
            component: ./comps/inner.yml
            depends_on: [first]
            inputs:
              d: {type: uri_folder, path: ./data}
              rate: 0.1
        """,
    )
    with pytest.raises(SpecError) as caught:
        load_pipeline(pipeline)
    assert "jobs.a.inputs: ${{parent.inputs.lr}}: the pipeline component declares no input 'lr'" in str(
        caught.value
    )
    inner = tmp_path / "comps" / "inner.yml"
    inner.write_text(inner.read_text().replace("r: ${{parent.inputs.lr}}", "r: ${{parent.inputs.rate}}"))
    loaded = load_pipeline(pipeline)
    assert loaded.steps["stage.a"].inputs == {"x": str(tmp_path / "data"), "r": 0.1}
    assert loaded.steps["stage.a"].depends_on == ("first",)
    assert loaded.steps["stage.b"].depends_on == ("first",)


def test_limits_of_inputs_are_checked(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yml",
        """
        type: command
        inputs:
          mode: {type: string, enum: [fast, slow], default: fast}
          lr: {type: number, min: 0, max: 1}
        command: echo ${{inputs.mode}} ${{inputs.lr}}
        """,
    )
    pipeline = azure_file(
        tmp_path / "p.yml",
        """
        type: pipeline
        inputs:
          k: {type: integer, max: 3, default: 9}
          bad: {type: integer, min: low, enum: 3}
        jobs:
          a:
            component: ./c.yml
            inputs: {mode: bogus, lr: 42}
        """,
    )
    with pytest.raises(SpecErrors) as caught:
        load_pipeline(pipeline)
    found = "\n".join(str(problem) for problem in caught.value.problems)
    assert "inputs.k.default: expected at most 3, got 9" in found
    assert "inputs.bad.min: expected a number, got 'low'" in found
    assert "inputs.bad.enum: expected a list of values" in found
    assert "jobs.a.inputs.mode.value: expected one of: fast, slow, got 'bogus'" in found
    assert "jobs.a.inputs.lr.value: expected at most 1, got 42" in found
