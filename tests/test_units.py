"""Unit rules without processes or clusters: the backends' configuration checks and their registry, a
pipeline's graph in every format, and the one value checker that projects and pipelines share."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mlproj.backends
from mlproj.backends import available_backends, get_backend, load_backend_config
from mlproj.backends.base import (
    Backend,
    mapping,
    matching,
    positive_int,
    positive_number,
    string_list,
    text,
)
from mlproj.backends.kubernetes import KubernetesBackend
from mlproj.backends.local import LocalBackend
from mlproj.backends.ray import RayBackend
from mlproj.backends.slurm import SlurmBackend
from mlproj.envs import get_manager
from mlproj.errors import InputError, ParameterError, SpecError
from mlproj.home import Home
from mlproj.params import resolve_parameters
from mlproj.pipelines.graph import render
from mlproj.pipelines.inputs import resolve_inputs
from mlproj.pipelines.loader import load_pipeline
from mlproj.pipelines.model import Pipeline, Step, bindings
from mlproj.spec import load_project
from mlproj.values import check, check_timeout, kind_of, uri_scheme

SLURM_KEYS = "account, cpus_per_task, gpus, job_name, mem, partition, qos, sbatch_args, time"
RAY_KEYS = "address, memory, num_cpus, num_gpus, resources, runtime_env"

# --- the configuration validators ----------------------------------------------------------------------

ACCEPTED: list[tuple[Callable[[str, Any], Any], Any, Any]] = [
    (text, "  debug  ", "debug"),
    (text, 7, "7"),
    *[(positive_int, given, 16) for given in (16, " 16 ", "16")],
    *[(positive_number, given, 100.0) for given in (100, "100", " 1e2 ", 100.0)],
    (positive_number, "0.5", 0.5),
    (string_list, "--exclusive --comment 'two words'", ["--exclusive", "--comment", "two words"]),
    (string_list, ["-x", 1, 2.5], ["-x", "1", "2.5"]),
    (string_list, [], []),
    (mapping, {1: "a", "GPU": 2}, {"1": "a", "GPU": 2}),
]
REFUSED: list[tuple[Callable[[str, Any], Any], tuple[Any, ...], str]] = [
    (text, ("", "   ", True, None, 1.5, ["a"]), "expected a non-empty string"),
    (positive_int, (0, "-3", "1.5", 2.0, True, None, "many"), "expected a whole number of at least 1"),
    (positive_number, (0, "-0.1", "nan", False, "two", None), "expected a positive number"),
    (string_list, (5, {"a": 1}, ["a", None], [["nested"]]), "expected a list of strings"),
    (mapping, ([], "GPU=1", None), "expected a mapping"),
]


@pytest.mark.parametrize(("validator", "given", "expected"), ACCEPTED)
def test_validators_normalize_the_values_they_accept(
    validator: Callable[[str, Any], Any], given: Any, expected: Any
) -> None:
    result = validator("key", given)
    assert (result, type(result)) == (expected, type(expected))


@pytest.mark.parametrize(("validator", "values", "message"), REFUSED)
def test_validators_say_what_they_expected(
    validator: Callable[[str, Any], Any], values: tuple[Any, ...], message: str
) -> None:
    for value in values:
        with pytest.raises(ValueError) as caught:
            validator("key", value)
        assert str(caught.value) == message


def test_matching_takes_the_whole_trimmed_text_and_refuses_booleans() -> None:
    memory = matching(r"\d+[KMGTkmgt]?", "memory such as 512M")
    assert (memory("mem", " 512M "), memory("mem", 4096)) == ("512M", "4096")
    for bad in ("512MB", "M512", "", True, False, None):
        with pytest.raises(ValueError, match=r"^expected memory such as 512M$"):
            memory("mem", bad)


# --- Backend.validate_config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "config"),
    [
        (SlurmBackend(), {"mem": "\u0661\u0662G"}),  # Arabic-Indic digits: sbatch reads ASCII ones
        (SlurmBackend(), {"time": "\u0661:\u0660\u0660"}),
        (SlurmBackend(), {"gpus": "a100:\u0662"}),
        (SlurmBackend(), {"cpus_per_task": "\u0661\u0662"}),
        (SlurmBackend(), {"cpus_per_task": "1_000"}),  # as mlproj.values refuses it for numbers
        (RayBackend(), {"num_cpus": "inf"}),
        (RayBackend(), {"num_cpus": "1e999"}),  # infinite once read
        (RayBackend(), {"num_cpus": "nan"}),
        (RayBackend(), {"num_gpus": "\u0661"}),
    ],
)
def test_numbers_are_ascii_and_finite_as_everywhere_else(backend: Backend, config: dict[str, str]) -> None:
    with pytest.raises(InputError, match=f"backend {backend.name}: backend_config {next(iter(config))}="):
        backend.validate_config(config)


def test_full_configurations_are_checked_and_normalized() -> None:
    slurm = {"partition": " debug ", "time": "1-12", "cpus_per_task": "8", "mem": "16G", "gpus": "a100:2"}
    slurm |= {"account": "ml", "qos": "high", "job_name": "train", "sbatch_args": "--exclusive -J 'a b'"}
    checked = SlurmBackend().validate_config(slurm)
    assert checked == {
        **slurm,
        "partition": "debug",
        "cpus_per_task": 8,
        "sbatch_args": ["--exclusive", "-J", "a b"],
    }
    ray = {"address": "http://127.0.0.1:8265", "num_cpus": "0.5", "num_gpus": 1, "memory": "1024"}
    ray |= {"resources": {"TPU": 1}, "runtime_env": {"pip": ["numpy"]}}
    checked = RayBackend().validate_config(ray)
    assert checked == {**ray, "num_cpus": 0.5, "num_gpus": 1.0, "memory": 1024}
    assert type(checked["num_gpus"]) is float


@pytest.mark.parametrize("backend", [SlurmBackend(), RayBackend(), LocalBackend()])
def test_no_configuration_is_an_empty_one(backend: Backend) -> None:
    assert backend.validate_config(None) == backend.validate_config({}) == {}


@pytest.mark.parametrize("limit", ["30", "10:30", "2:00:00", "1-12", "1-12:30:00", "UNLIMITED", "INFINITE"])
def test_slurm_time_limits_sbatch_understands(limit: str) -> None:
    assert SlurmBackend().validate_config({"time": limit}) == {"time": limit}


@pytest.mark.parametrize(
    ("backend", "known"), [(SlurmBackend(), SLURM_KEYS), (RayBackend(), RAY_KEYS), (LocalBackend(), "none")]
)
def test_an_unknown_key_lists_the_known_ones(backend: Backend, known: str) -> None:
    with pytest.raises(InputError) as caught:
        backend.validate_config({"partiton": "gpu"})
    message = str(caught.value)
    assert message == f"backend {backend.name}: unknown backend_config key 'partiton' (known: {known})"


TIME_LIMIT = "a time limit such as 30, 2:00:00 or 1-12"
BAD_VALUES: list[tuple[Backend, str, Any, str]] = [
    (SlurmBackend(), "cpus_per_task", 0, "a whole number of at least 1"),
    (SlurmBackend(), "mem", "lots", "an amount of memory such as 4096, 512M or 16G"),
    (SlurmBackend(), "gpus", "two", "a number of GPUs, or TYPE:COUNT"),
    (SlurmBackend(), "sbatch_args", {"a": 1}, "a list of strings"),
    *[(SlurmBackend(), "time", limit, TIME_LIMIT) for limit in ("2h", "1-", "-1", "1:2:3:4", "30:123")],
    (RayBackend(), "num_cpus", "-1", "a positive number"),
    (RayBackend(), "resources", "GPU=1", "a mapping"),
    (RayBackend(), "address", "", "a non-empty string"),
]


@pytest.mark.parametrize(("backend", "key", "value", "expected"), BAD_VALUES)
def test_a_bad_value_names_the_backend_the_key_the_value_and_what_was_expected(
    backend: Backend, key: str, value: Any, expected: str
) -> None:
    with pytest.raises(InputError) as caught:
        backend.validate_config({"partition" if backend.name == "slurm" else "address": "x", key: value})
    assert str(caught.value) == f"backend {backend.name}: backend_config {key}={value!r}: expected {expected}"


@pytest.mark.parametrize(
    ("backend", "key"),
    [*[(SlurmBackend(), key) for key in ("cpus_per_task", "mem", "gpus", "time")]]
    + [(RayBackend(), key) for key in ("num_cpus", "num_gpus", "memory")],
)
@pytest.mark.parametrize("flag", [True, False])
def test_booleans_are_refused_where_numbers_are_expected(backend: Backend, key: str, flag: bool) -> None:
    with pytest.raises(InputError) as caught:
        backend.validate_config({key: flag})
    assert str(caught.value).startswith(f"backend {backend.name}: backend_config {key}={flag}: expected ")


# --- Backend.accept -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [SlurmBackend(), RayBackend()])
def test_a_backend_without_containers_refuses_an_environment_that_is_an_image(backend: Backend) -> None:
    with pytest.raises(InputError) as caught:
        backend.accept(get_manager("docker"))
    assert str(caught.value) == (
        f"backend {backend.name}: the docker environment runs in a container, which this backend cannot "
        "start; run it with the local backend"
    )


@pytest.mark.parametrize("backend", [SlurmBackend(), RayBackend(), LocalBackend()])
@pytest.mark.parametrize("manager", ["local", "virtualenv", "uv", "conda"])
def test_every_backend_accepts_environments_that_are_not_images(backend: Backend, manager: str) -> None:
    backend.accept(get_manager(manager))


def test_a_backend_that_runs_containers_accepts_an_image() -> None:
    LocalBackend().accept(get_manager("docker"))


# --- the registry and -c/--backend-config ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("local", LocalBackend),
        ("slurm", SlurmBackend),
        ("ray", RayBackend),
        ("kubernetes", KubernetesBackend),
    ],
)
def test_built_in_backends_are_found_by_name(name: str, kind: type[Backend]) -> None:
    backend = get_backend(name)
    assert (type(backend), backend.name) == (kind, name)


def test_an_unknown_backend_lists_the_available_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlproj.backends, "_plugins", dict)
    with pytest.raises(InputError) as caught:
        get_backend("nomad")
    assert str(caught.value) == "unknown backend 'nomad' (available: local, slurm, ray, kubernetes)"
    assert available_backends() == ["local", "slurm", "ray", "kubernetes"]


def test_backend_config_as_json_text_or_none() -> None:
    assert load_backend_config(' {"partition": "debug", "cpus_per_task": 4} ') == {
        "partition": "debug",
        "cpus_per_task": 4,
    }
    assert load_backend_config(None) is load_backend_config("") is load_backend_config("  \n") is None


MALFORMED = "--backend-config: malformed JSON: "


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"a": 1,}', MALFORMED + "Expecting property name enclosed in double quotes (column 9)"),
        ("{partition: debug}", MALFORMED + "Expecting property name enclosed in double quotes (column 2)"),
        ('{"a": 1} trailing', MALFORMED + "Extra data (column 10)"),
        ("[1, 2]", "--backend-config: expected a mapping of settings, got list"),
    ],
)
def test_bad_backend_config_text(value: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_backend_config(value)
    assert str(caught.value) == message


SETTINGS = {"partition": "debug", "sbatch_args": ["--exclusive"]}
NOT_A_MAPPING = "--backend-config: expected a mapping of settings, got "


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        *[(name, json.dumps(SETTINGS), SETTINGS) for name in ("c.json", "c.conf", "c.yaml", "C.YML")],
        ("c.yaml", "partition: debug\nsbatch_args: [--exclusive]\n", SETTINGS),
        ("list.yaml", "- a\n- b\n", NOT_A_MAPPING + "list"),
        ("text.yml", "just words\n", NOT_A_MAPPING + "str"),
        ("n.json", "42", NOT_A_MAPPING + "int"),
    ],
)
def test_backend_config_from_a_file(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch, name: str, content: str, expected: Any
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / name).write_text(content)
    for given in (str(tmp_path / name), f"~/{name}"):
        if isinstance(expected, dict):
            assert load_backend_config(given) == expected
        else:
            with pytest.raises(InputError) as caught:
                load_backend_config(given)
            assert str(caught.value) == expected


def test_a_missing_or_malformed_backend_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(InputError) as caught:
        load_backend_config(str(missing))
    assert (
        str(caught.value)
        == f"--backend-config {missing}: no such file (expected JSON text or a .json/.yaml file)"
    )
    (tmp_path / "bad.json").write_text('{"a": }')
    with pytest.raises(InputError) as caught:
        load_backend_config(str(tmp_path / "bad.json"))
    assert str(caught.value).startswith(
        f"--backend-config {tmp_path / 'bad.json'}: malformed JSON: Expecting value"
    )


# --- pipelines: the graph ------------------------------------------------------------------------------

SHAPES = """
    type: pipeline
    name: shapes
    inputs:
      n: {type: integer, default: 3}
    jobs:
      report:
        command: cat ${{inputs.model}}
        inputs:
          model: ${{parent.jobs.train.outputs.model}}
      train:
        command: echo ${{inputs.n}} > ${{outputs.model}}
        inputs:
          n: ${{parent.inputs.n}}
          data: ${{parent.jobs.prep.outputs.data}}
        outputs:
          model: {type: uri_file}
      prep:
        command: echo hi > ${{outputs.data}}/x.txt
        outputs:
          data: {type: uri_folder}
      lint:
        command: echo lint
      publish:
        type: mlflow_project
        uri: ./publisher
        parameters:
          model: ${{parent.jobs.train.outputs.model}}
        depends_on: lint
"""


def pipeline_file(folder: Path, body: str, name: str = "pipeline.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


@pytest.fixture
def shapes(tmp_path: Path, home: Home) -> Pipeline:
    return load_pipeline(pipeline_file(tmp_path, SHAPES))


def test_order_puts_each_step_after_its_upstream_and_keeps_file_order_otherwise(shapes: Pipeline) -> None:
    assert list(shapes.steps) == ["report", "train", "prep", "lint", "publish"]
    assert shapes.order() == ["prep", "train", "report", "lint", "publish"]


def test_edges_come_from_bindings_parameters_and_depends_on_in_step_order(shapes: Pipeline) -> None:
    assert shapes.edges() == [
        ("train", "report"),
        ("prep", "train"),
        ("lint", "publish"),
        ("train", "publish"),
    ]
    assert {name: step.upstream() for name, step in shapes.steps.items()} == {
        "report": {"train"},
        "train": {"prep"},  # a pipeline input is no step
        "prep": set(),
        "lint": set(),
        "publish": {"lint", "train"},
    }


RENDERED = {
    "text": """\
prep
train    <- prep
report   <- train
lint
publish  <- lint, train""",
    "mermaid": """\
graph TD
  s_prep["prep"]
  s_train["train"]
  s_report["report"]
  s_lint["lint"]
  s_publish["publish"]
  s_train --> s_report
  s_prep --> s_train
  s_lint --> s_publish
  s_train --> s_publish""",
    "dot": """\
digraph "shapes" {
  rankdir=LR;
  "prep";
  "train";
  "report";
  "lint";
  "publish";
  "train" -> "report";
  "prep" -> "train";
  "lint" -> "publish";
  "train" -> "publish";
}""",
}


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_render(shapes: Pipeline, fmt: str) -> None:
    assert render(shapes, fmt) == RENDERED[fmt]


def test_render_json(shapes: Pipeline) -> None:
    document = {
        "nodes": ["prep", "train", "report", "lint", "publish"],
        "edges": [["train", "report"], ["prep", "train"], ["lint", "publish"], ["train", "publish"]],
    }
    assert render(shapes, "json") == json.dumps(document, indent=2)


def test_one_step_in_every_format(tmp_path: Path, home: Home) -> None:
    body = """
        type: pipeline
        name: 'say "hi"'
        steps:
          only-step:
            command: echo hi
    """
    pipeline = load_pipeline(pipeline_file(tmp_path, body))
    assert pipeline.jobs_key == "steps"
    assert render(pipeline, "text") == "only-step"
    assert render(pipeline, "mermaid") == 'graph TD\n  s_only_step["only-step"]'
    assert render(pipeline, "dot") == 'digraph "say \\"hi\\"" {\n  rankdir=LR;\n  "only-step";\n}'
    assert json.loads(render(pipeline, "json")) == {"nodes": ["only-step"], "edges": []}


def test_upstream_reads_every_place_a_step_can_name_another() -> None:
    step = Step(
        name="s",
        type="command",
        command="cat ${{ parent.jobs.a.outputs.o }} ${{parent.inputs.x}}",
        depends_on=("b",),
        inputs={"x": "${{parent.jobs.c.outputs.y}}", "literal": 3, "input": "${{parent.inputs.z}}"},
    )
    assert step.upstream() == {"a", "b", "c"}
    project = Step(name="p", type="mlflow_project", uri=".", parameters={"m": "${{parent.jobs.d.outputs.m}}"})
    assert project.upstream() == {"d"}


def test_bindings_are_the_parts_of_each_reference() -> None:
    assert bindings("${{ a.b }} and ${{c . d.e}}") == [("a", "b"), ("c", "d", "e")]
    assert bindings("no reference, ${not one}") == bindings(42) == bindings(None) == []


CYCLE = """
    type: pipeline
    jobs:
      a: {command: echo a, depends_on: [c]}
      b: {command: echo b, depends_on: [a]}
      c: {command: echo c, depends_on: [b]}
      outside: {command: echo outside the cycle}
"""


def test_a_cycle_is_refused_by_the_loader_naming_it(tmp_path: Path, home: Home) -> None:
    path = pipeline_file(tmp_path, CYCLE)
    with pytest.raises(SpecError) as caught:
        load_pipeline(path)
    assert (caught.value.key, caught.value.line) == ("jobs.a", 3)
    assert str(caught.value) == f"{path.absolute()}:3: jobs.a: cycle: a -> b -> c -> a"


def test_a_step_that_depends_on_itself_is_refused(tmp_path: Path, home: Home) -> None:
    with pytest.raises(SpecError) as caught:
        load_pipeline(
            pipeline_file(tmp_path, "type: pipeline\njobs:\n  a: {command: echo a, depends_on: a}\n")
        )
    assert (caught.value.key, caught.value.line) == ("jobs.a.depends_on", 3)
    assert str(caught.value).endswith("jobs.a.depends_on: a step cannot depend on itself")


# --- the one value checker -----------------------------------------------------------------------------

# type → (values it takes, values it refuses), with the names both vocabularies give it
VALUES = {
    "number": (
        ["0", "1.5", "-2", "+3", ".5", "5.", "1e3", "1E-3", " 2.5 ", "-0", "42"],
        [
            *("", " ", "abc", "e", "--1", "1.2.3", "1,5", "0x10"),  # not numbers at all
            *("nan", "NaN", "inf", "-inf", "Infinity", "1e999"),  # not finite (1e999 overflows to inf)
            *("1_000", "١٢", "\uff11\uff12", "½"),  # underscores, other scripts' digits: float() takes most
        ],
    ),
    "integer": (
        ["0", "42", "-7", "+7", " 12 ", "007"],
        ["", "+", "-", "1.0", "1e3", "1_000", "١٢", "²", "0x1f", "12a", "- 1", "nan"],
    ),
    "boolean": (["true", "False", "YES", "no", "1", "0", " TRUE "], ["y", "on", "off", "2", "", "truee"]),
}
NAMES = {
    "number": ("number", "float", "double"),
    "integer": ("integer", "int"),
    "boolean": ("boolean", "bool"),
}
EXPECTED = {
    "number": "expected a number",
    "integer": "expected an integer",
    "boolean": "expected true or false",
}


@pytest.mark.parametrize(
    ("kind", "value", "accepted"),
    [(kind, value, True) for kind, (good, _) in VALUES.items() for value in good]
    + [(kind, value, False) for kind, (_, bad) in VALUES.items() for value in bad],
)
def test_values_are_read_strictly_in_both_vocabularies(kind: str, value: str, accepted: bool) -> None:
    expected = None if accepted else f"{EXPECTED[kind]}, got {value!r}"
    for name in NAMES[kind]:
        assert check(name, value) == expected
    if accepted and kind != "boolean":
        assert math.isfinite(float(value))  # what MLflow's float() and int() take too


def test_strings_and_paths_take_anything_and_uri_inputs_need_something() -> None:
    for value in ("", "  ", "nan", "١٢", "a\nb"):
        assert check("string", value) is check("str", value) is check("path", value) is None
    for kind in ("uri_file", "uri_folder"):
        assert check(kind, "./data") is check(kind, "s3://bucket/key") is None
        assert check(kind, "") == check(kind, "   ") == "expected a path or URI"


def test_a_uri_needs_a_scheme() -> None:
    assert check("uri", "s3://bucket/key") is None
    assert check("uri", "file:///tmp/x") is None
    for value in ("/tmp/x", "C:\\data", "relative/path", ""):
        assert check("uri", value) == (
            f"expected a URI with a scheme (such as file:// or s3://), got {value!r}"
        )


def test_type_names_of_both_vocabularies() -> None:
    aliases = ("float", "double", "int", "bool", "str", "Float", "list")
    assert [kind_of(name) for name in aliases] == [
        "number",
        "number",
        "integer",
        "boolean",
        "string",
        None,
        None,
    ]
    for name in ("string", "number", "integer", "boolean", "path", "uri", "uri_file", "uri_folder"):
        assert kind_of(name) == name


def test_uri_scheme() -> None:
    schemes = {
        "S3://bucket": "s3",
        "git+https://h/r": "git+https",
        "file:relative": "file",
        "hdfs://n:80/x": "hdfs",
    }
    assert {value: uri_scheme(value) for value in schemes} == schemes
    for plain in (
        "c:\\data",
        "C:/data",
        "1a://x",
        "ab cd://x",
        "_x://y",
        "no colon",
        "/a/path:with:colons",
        "",
    ):
        assert uri_scheme(plain) is None, plain


def test_timeouts_that_are_fine() -> None:
    for timeout in (None, 0.001, 1.0, 86400.0):
        check_timeout(timeout)


@pytest.mark.parametrize(
    ("timeout", "shown"),
    [(0.0, "0"), (-1.0, "-1"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")],
)
def test_timeouts_that_are_refused(timeout: float, shown: str) -> None:
    with pytest.raises(InputError) as caught:
        check_timeout(timeout)
    assert str(caught.value) == f"--timeout {shown}: expected a positive number of seconds"
    with pytest.raises(InputError) as caught:
        check_timeout(timeout, "jobs.train.timeout")
    assert str(caught.value) == f"jobs.train.timeout {shown}: expected a positive number of seconds"


# --- projects and pipelines agree -----------------------------------------------------------------------

AGREEMENT = [
    *[("float", "number", value, True) for value in ("1.5", "1e3", "-2", " 7 ")],
    *[("float", "number", value, False) for value in ("nan", "inf", "1_000", "١٢", "", "1,5")],
    *[("int", "integer", value, True) for value in ("3", "+3", "-0")],
    *[("int", "integer", value, False) for value in ("3.0", "1_000", "١٢", "0x1", "1e3")],
    *[("bool", "boolean", value, True) for value in ("yes", "TRUE", "0")],
    *[("bool", "boolean", value, False) for value in ("on", "y", "2")],
]


def project_outcomes(folder: Path, project_type: str, value: str) -> tuple[bool, bool]:
    """Whether a project takes `value` for a parameter of `project_type`: as its MLproject default, and
    given with -P."""
    with_default = folder / "default"
    with_default.mkdir(parents=True)
    (with_default / "MLproject").write_text(
        "entry_points:\n"
        "  main:\n"
        f"    parameters: {{x: {{type: {project_type}, default: {json.dumps(value)}}}}}\n"
        "    command: echo {x}\n"
    )
    try:
        load_project(with_default).entry_point("main")
        as_default = True
    except SpecError as exc:
        assert exc.key == "entry_points.main.parameters.x.default"
        as_default = False
    given = folder / "given"
    given.mkdir()
    (given / "MLproject").write_text(
        f"entry_points:\n  main:\n    parameters: {{x: {project_type}}}\n    command: echo {{x}}\n"
    )
    entry_point = load_project(given).entry_point("main")
    try:
        resolve_parameters(entry_point, {"x": value}, project_dir=given, caller_dir=given)
        as_given = True
    except ParameterError as exc:
        assert str(exc) == f"parameter 'x' ({project_type}): {check(project_type, value)}"
        as_given = False
    return as_default, as_given


def pipeline_outcomes(folder: Path, pipeline_type: str, value: str) -> tuple[bool, bool]:
    """Whether a pipeline takes `value` for an input of `pipeline_type`: as its default, and with -P."""
    folder.mkdir()
    steps = "jobs:\n  a:\n    command: echo a\n"
    with_default = pipeline_file(
        folder,
        f"type: pipeline\ninputs:\n  x: {{type: {pipeline_type}, default: {json.dumps(value)}}}\n{steps}",
        "default.yaml",
    )
    try:
        load_pipeline(with_default)
        as_default = True
    except SpecError as exc:
        assert exc.key == "inputs.x.default"
        as_default = False
    given = pipeline_file(
        folder, f"type: pipeline\ninputs:\n  x: {{type: {pipeline_type}}}\n{steps}", "given.yaml"
    )
    pipeline = load_pipeline(given)
    try:
        resolve_inputs(pipeline, {"x": value}, folder)
        as_given = True
    except InputError as exc:
        assert str(exc) == f"-P x ({pipeline_type}): {check(pipeline_type, value)}"
        as_given = False
    return as_default, as_given


@pytest.mark.parametrize(("project_type", "pipeline_type", "value", "accepted"), AGREEMENT)
def test_projects_and_pipelines_take_and_refuse_the_same_values(
    tmp_path: Path, home: Home, project_type: str, pipeline_type: str, value: str, accepted: bool
) -> None:
    assert (check(project_type, value) is None) is accepted
    assert (check(pipeline_type, value) is None) is accepted
    assert project_outcomes(tmp_path / "project", project_type, value) == (accepted, accepted)
    assert pipeline_outcomes(tmp_path / "pipeline", pipeline_type, value) == (accepted, accepted)


def test_mermaid_keeps_apart_steps_whose_names_read_the_same_as_ids(tmp_path: Path, home: Home) -> None:
    body = """
        type: pipeline
        jobs:
          prep-data:
            command: echo a
          prep_data:
            command: echo b
            depends_on: [prep-data]
    """
    pipeline = load_pipeline(pipeline_file(tmp_path, body))
    lines = render(pipeline, "mermaid").splitlines()
    assert lines == [
        "graph TD",
        '  s_prep_data["prep-data"]',
        '  s_prep_data_2["prep_data"]',
        "  s_prep_data --> s_prep_data_2",
    ]
