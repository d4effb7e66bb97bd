"""MLproject loading: file discovery, entry points, parameters, command templates and load-time errors."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from mlproj.errors import InputError, SpecError
from mlproj.spec import EntryPoint, Parameter, Project, command_placeholders, find_spec_file, load_project


def write_spec(directory: Path, text: str, name: str = "MLproject") -> Path:
    """Write an MLproject file (dedented) into `directory` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str) -> Project:
    write_spec(tmp_path, text)
    return load_project(tmp_path)


def load_error(tmp_path: Path, text: str) -> SpecError:
    """Load a spec that must fail when its (first broken) entry point is run; return the `SpecError`."""
    write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        project = load_project(tmp_path)
        for name in project.broken:
            project.entry_point(name)
    return info.value


def main_with_params(params: str, command: str = "python train.py") -> str:
    """An MLproject text with one `main` entry point, `params` indented under `parameters:`."""
    indented = textwrap.indent(textwrap.dedent(params), " " * 6)
    return f"entry_points:\n  main:\n    command: {command!r}\n    parameters:\n{indented}"


# --- finding the MLproject file -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MLproject", "mlproject", "MLPROJECT", "MlProJeCt"])
def test_spec_file_name_is_matched_case_insensitively(tmp_path: Path, name: str) -> None:
    spec = write_spec(tmp_path, "name: demo\nentry_points:\n  main:\n    command: echo hi\n", name=name)

    assert find_spec_file(tmp_path) == spec
    project = load_project(tmp_path)
    assert project.spec_file == spec
    assert project.name == "demo"
    assert project.entry_point("main").command == "echo hi"


def test_two_spec_files_differing_in_case_are_an_input_error(tmp_path: Path) -> None:
    write_spec(tmp_path, "name: a\n", name="MLproject")
    write_spec(tmp_path, "name: b\n", name="mlproject")

    with pytest.raises(InputError) as info:
        load_project(tmp_path)
    message = str(info.value)
    assert "MLproject" in message
    assert "mlproject" in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", ["MLproject.yaml", "MLproject.yml", "my_MLproject"])
def test_similar_names_are_not_spec_files(tmp_path: Path, name: str) -> None:
    write_spec(tmp_path, "entry_points: {main: {command: echo}}\n", name=name)

    assert find_spec_file(tmp_path) is None
    assert load_project(tmp_path).entry_points == {}


def test_a_folder_named_mlproject_is_not_a_spec_file(tmp_path: Path) -> None:
    (tmp_path / "MLproject").mkdir()

    assert find_spec_file(tmp_path) is None


def test_missing_project_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such project folder"):
        load_project(tmp_path / "nowhere")


def test_project_path_that_is_a_file_is_an_input_error(tmp_path: Path) -> None:
    file = tmp_path / "file.txt"
    file.write_text("x")

    with pytest.raises(InputError, match="not a folder"):
        load_project(file)


def test_empty_spec_file_is_a_project_without_entry_points(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "")

    project = load_project(tmp_path)
    assert project.spec_file == spec
    assert project.entry_points == {}


def test_project_directory_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path)

    project = load_project(Path("proj"))
    assert project.directory.is_absolute()
    assert project.directory == tmp_path / "proj"


# --- bare projects and scripts as entry points ----------------------------------------------------


@pytest.fixture
def bare(tmp_path: Path) -> Project:
    """A folder without MLproject, holding a few scripts."""
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "run.sh").write_text("echo hi\n")
    (tmp_path / "fit.R").write_text("print(1)\n")
    (tmp_path / "my script.py").write_text("print('hi')\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "eval.py").write_text("print('hi')\n")
    return load_project(tmp_path)


def test_folder_without_spec_is_a_bare_project(bare: Project, tmp_path: Path) -> None:
    assert bare.spec_file is None
    assert bare.entry_points == {}
    assert bare.directory == tmp_path
    assert bare.python_env is None
    assert bare.conda_env is None
    assert bare.docker_env is None


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("train.py", "python train.py"),
        ("run.sh", "/bin/zsh run.sh"),
        ("fit.R", "Rscript fit.R"),
        ("my script.py", "python 'my script.py'"),
        ("sub/eval.py", "python sub/eval.py"),
    ],
)
def test_script_entry_point_runs_with_its_runner(
    bare: Project, name: str, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELL", "/bin/zsh")  # MLflow runs a .sh script with the user's shell
    entry_point = bare.entry_point(name)

    assert entry_point == EntryPoint(name=name, command=command, parameters={})


def test_a_shell_script_falls_back_to_bash(bare: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHELL", raising=False)
    assert bare.entry_point("run.sh").command == "bash run.sh"
    monkeypatch.setenv("SHELL", "/opt/my shell/sh")
    assert bare.entry_point("run.sh").command == "'/opt/my shell/sh' run.sh"


def test_missing_script_is_an_input_error(bare: Project) -> None:
    with pytest.raises(InputError, match=r"'missing\.py': no such script"):
        bare.entry_point("missing.py")


def test_folder_named_like_a_script_is_not_a_script(bare: Project, tmp_path: Path) -> None:
    (tmp_path / "pkg.py").mkdir()

    with pytest.raises(InputError, match="no such script"):
        bare.entry_point("pkg.py")


@pytest.mark.parametrize("name", ["../x.py", "sub/../../x.py", "../outside.sh"])
def test_script_outside_the_project_is_an_input_error(tmp_path: Path, name: str) -> None:
    project_dir = tmp_path / "proj"
    (project_dir / "sub").mkdir(parents=True)
    (tmp_path / "x.py").write_text("print('escaped')\n")
    (tmp_path / "outside.sh").write_text("echo escaped\n")

    with pytest.raises(InputError, match="outside the project"):
        load_project(project_dir).entry_point(name)


def test_absolute_script_path_outside_the_project_is_an_input_error(tmp_path: Path) -> None:
    project_dir = tmp_path / "proj"
    project_dir.mkdir()
    outside = tmp_path / "x.py"
    outside.write_text("print('escaped')\n")

    with pytest.raises(InputError, match="outside the project"):
        load_project(project_dir).entry_point(str(outside))


def test_symlink_to_a_script_outside_the_project_is_an_input_error(tmp_path: Path) -> None:
    project_dir = tmp_path / "proj"
    project_dir.mkdir()
    (tmp_path / "x.py").write_text("print('escaped')\n")
    (project_dir / "link.py").symlink_to(tmp_path / "x.py")

    with pytest.raises(InputError, match="outside the project"):
        load_project(project_dir).entry_point("link.py")


def test_an_entry_point_of_a_folder_without_mlproject_says_there_is_none(bare: Project) -> None:
    with pytest.raises(InputError) as caught:
        bare.entry_point("main")
    assert str(caught.value) == (
        f"{bare.directory} has no MLproject file, so it has no entry point 'main': give one of its "
        ".py/.sh/.R files as the entry point (-e fit.R), or add an MLproject"
    )


@pytest.mark.parametrize("name", ["train.txt", "train", "TRAIN.PY"])
def test_other_file_kinds_are_not_script_entry_points(bare: Project, tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("x\n")

    with pytest.raises(InputError, match="has no MLproject file, so it has no entry point"):
        bare.entry_point(name)


def test_unknown_entry_point_lists_the_declared_ones(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        entry_points:
          train: {command: python train.py}
          main: {command: python main.py}
        """,
    )

    with pytest.raises(InputError) as info:
        project.entry_point("evaluate")
    message = str(info.value)
    assert str(project.spec_file) in message
    assert "'evaluate'" in message
    assert "declared: main, train" in message
    assert info.value.exit_code == 2


def test_declared_project_still_runs_undeclared_scripts(tmp_path: Path) -> None:
    (tmp_path / "other.py").write_text("print('hi')\n")
    project = load(tmp_path, "entry_points:\n  main: {command: python main.py}\n")

    assert project.entry_point("other.py").command == "python other.py"


def test_declared_entry_point_wins_over_a_script_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    project = load(tmp_path, "entry_points:\n  train.py: {command: python train.py --fast}\n")

    assert project.entry_point("train.py").command == "python train.py --fast"


# --- the project's own fields ---------------------------------------------------------------------


def test_full_project_is_loaded(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        """
        name: demo
        python_env: python_env.yaml
        entry_points:
          main:
            command: "python train.py --lr {lr} --epochs {epochs}"
            parameters:
              lr: {type: float, default: 0.1}
              epochs: int
          validate:
            command: python validate.py
        """,
    )

    project = load_project(tmp_path)
    assert project == Project(
        directory=tmp_path,
        spec_file=spec,
        name="demo",
        entry_points={
            "main": EntryPoint(
                name="main",
                command="python train.py --lr {lr} --epochs {epochs}",
                parameters={
                    "lr": Parameter(name="lr", type="float", default="0.1"),
                    "epochs": Parameter(name="epochs", type="int", default=None),
                },
            ),
            "validate": EntryPoint(name="validate", command="python validate.py", parameters={}),
        },
        python_env="python_env.yaml",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("python_env: env.yaml\n", ("env.yaml", None, None)),
        ("conda_env: conda.yaml\n", (None, "conda.yaml", None)),
        (
            "docker_env: {image: python:3.11}\n",
            (None, None, {"image": "python:3.11", "volumes": [], "environment": []}),
        ),
    ],
)
def test_one_environment_is_loaded(
    tmp_path: Path, text: str, expected: tuple[str | None, str | None, dict[str, object] | None]
) -> None:
    project = load(tmp_path, text)

    assert (project.python_env, project.conda_env, project.docker_env) == expected


def test_numeric_project_name_becomes_a_string(tmp_path: Path) -> None:
    assert load(tmp_path, "name: 42\n").name == "42"


# --- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("x: float", Parameter("x", "float")),
        ("x: {type: float, default: 0.1}", Parameter("x", "float", "0.1")),
        ("x: {type: int, default: 3}", Parameter("x", "int", "3")),
        ("x: {type: float, default: 3}", Parameter("x", "float", "3")),
        ("x: {type: float, default: 1e-3}", Parameter("x", "float", "1e-3")),
        ("x: {type: string, default: hello}", Parameter("x", "string", "hello")),
        ("x: {type: string, default: ''}", Parameter("x", "string", "")),
        ("x: {type: bool, default: true}", Parameter("x", "bool", "True")),
        ("x: {type: path, default: data/train.csv}", Parameter("x", "path", "data/train.csv")),
        ("x: {type: uri, default: 's3://bucket/key'}", Parameter("x", "uri", "s3://bucket/key")),
        ("x: {type: float}", Parameter("x", "float")),
        ("x: {default: abc}", Parameter("x", "string", "abc")),
        ("x: {}", Parameter("x", "string")),
        ("x:", Parameter("x", "string")),
        ("x: {type: float, default: 0.5, description: learning rate}", Parameter("x", "float", "0.5")),
        ("x: {type: float, default: null}", Parameter("x", "float")),
    ],
)
def test_parameter_forms(tmp_path: Path, body: str, expected: Parameter) -> None:
    project = load(tmp_path, main_with_params(body))

    assert project.entry_point("main").parameters == {"x": expected}


def test_parameter_without_default_is_required(tmp_path: Path) -> None:
    project = load(tmp_path, main_with_params("a: float\nb: {type: float, default: 1.0}"))

    parameters = project.entry_point("main").parameters
    assert parameters["a"].required
    assert not parameters["b"].required


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("str", "string"),
        ("integer", "int"),
        ("double", "float"),
        ("number", "float"),
        ("boolean", "bool"),
        ("string", "string"),
        ("float", "float"),
        ("int", "int"),
        ("bool", "bool"),
        ("path", "path"),
        ("uri", "uri"),
    ],
)
def test_parameter_type_aliases(tmp_path: Path, alias: str, canonical: str) -> None:
    project = load(tmp_path, main_with_params(f"a: {alias}\nb: {{type: {alias}}}"))

    parameters = project.entry_point("main").parameters
    assert parameters["a"].type == canonical
    assert parameters["b"].type == canonical


@pytest.mark.parametrize("body", ["x: tensor", "x: {type: tensor}", "x: {type: Float}", "x: {type: [float]}"])
def test_unknown_parameter_type_is_a_spec_error(tmp_path: Path, body: str) -> None:
    error = load_error(tmp_path, main_with_params(body))

    assert error.key == "entry_points.main.parameters.x.type"
    message = str(error)
    assert message.startswith(f"{tmp_path / 'MLproject'}: entry_points.main.parameters.x.type: ")
    assert "unknown type" in message
    assert "string, float, int, bool, path, uri" in message
    assert error.exit_code == 2


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ("x: {type: int, default: abc}", "abc"),
        ("x: {type: int, default: 1.5}", "1.5"),
        ("x: {type: float, default: abc}", "abc"),
        ("x: {type: float, default: .nan}", None),
        ("x: {type: bool, default: maybe}", "maybe"),
        ("x: {type: uri, default: /data/x}", "/data/x"),
    ],
)
def test_ill_typed_default_is_a_spec_error(tmp_path: Path, body: str, value: str | None) -> None:
    error = load_error(tmp_path, main_with_params(body))

    assert error.key == "entry_points.main.parameters.x.default"
    assert str(error).startswith(f"{tmp_path / 'MLproject'}: entry_points.main.parameters.x.default: ")
    if value is not None:
        assert repr(value) in str(error)


@pytest.mark.parametrize("default", ["[1, 2]", "{a: 1}"])
def test_default_that_is_not_a_single_value_is_a_spec_error(tmp_path: Path, default: str) -> None:
    error = load_error(tmp_path, main_with_params(f"x: {{type: string, default: {default}}}"))

    assert error.key == "entry_points.main.parameters.x.default"


def test_unknown_key_in_a_parameter_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """MLflow ignores it (a real project has `{type: float, default:0.1}`: a key `default:0.1`)."""
    write_spec(tmp_path, main_with_params("x: {type: float, defualt: 0.1}\ny: {type: float, default:0.1}"))
    parameters = load_project(tmp_path).entry_point("main").parameters
    assert parameters["x"].required and parameters["y"].required  # no default was given
    warned = capsys.readouterr().err.splitlines()
    assert warned == [
        f"mlproj: warning: {tmp_path / 'MLproject'}: entry_points.main.parameters.x.defualt: unknown key, "
        "ignored (expected type, default)",
        f"mlproj: warning: {tmp_path / 'MLproject'}: entry_points.main.parameters.y.default:0.1: unknown "
        "key, ignored (expected type, default)",
    ]


def test_a_broken_entry_point_that_is_not_run_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_spec(
        tmp_path,
        "name: t\nunknown_top: 1\nkubernetes_env: k8s.yaml\nentry_points:\n"
        "  main:\n    command: echo hi\n"
        "  other:\n    parameters:\n      n: {type: int, default: 10.5}\n    command: echo {n}\n"
        "  worse:\n    command: echo {nothing}\n",
    )
    project = load_project(tmp_path)
    assert project.entry_point("main").command == "echo hi"
    warned = capsys.readouterr().err.splitlines()
    spec = tmp_path / "MLproject"
    assert warned[0].startswith(f"mlproj: warning: {spec}: unknown_top: unknown key, ignored")
    assert warned[1].startswith(f"mlproj: warning: {spec}: entry_points.other.parameters.n.default: ")
    assert warned[1].endswith("(entry point 'other' is not run, so this is not an error)")
    assert warned[2].startswith(
        f"mlproj: warning: {spec}: entry_points.worse.command: placeholder {{nothing}}"
    )
    assert len(warned) == 3  # kubernetes_env is MLflow's: no warning
    with pytest.raises(SpecError, match=r"entry_points\.other\.parameters\.n\.default"):
        project.entry_point("other")  # run: an error


@pytest.mark.parametrize("body", ["x: 3", "x: [float]", "x: true"])
def test_parameter_body_of_the_wrong_kind_is_a_spec_error(tmp_path: Path, body: str) -> None:
    error = load_error(tmp_path, main_with_params(body))

    assert error.key == "entry_points.main.parameters.x"


@pytest.mark.parametrize("name", ["'learning rate'", "'a;b'", "'-x'", "1"])
def test_bad_parameter_name_is_a_spec_error(tmp_path: Path, name: str) -> None:
    error = load_error(tmp_path, main_with_params(f"{name}: float"))

    assert error.key is not None
    assert error.key.startswith("entry_points.main.parameters.")


def test_parameters_not_a_mapping_is_a_spec_error(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        entry_points:
          main:
            command: python train.py
            parameters: [a, b]
        """,
    )

    assert error.key == "entry_points.main.parameters"


# --- command templates ----------------------------------------------------------------------------


def test_placeholder_naming_no_parameter_is_a_spec_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, main_with_params("alpha: float", command="python train.py {alhpa}"))

    assert error.key == "entry_points.main.command"
    message = str(error)
    assert message.startswith(f"{tmp_path / 'MLproject'}: entry_points.main.command: ")
    assert "{alhpa}" in message
    assert "declared: alpha" in message


def test_placeholder_in_an_entry_point_without_parameters_is_a_spec_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, "entry_points:\n  main:\n    command: python train.py {lr}\n")

    assert error.key == "entry_points.main.command"
    assert "{lr}" in str(error)
    assert "declared: none" in str(error)


def test_double_braces_are_literal_braces(tmp_path: Path) -> None:
    command = "python -c 'print({{1: 2}})' {x} {{literal}}"
    project = load(tmp_path, main_with_params("x: string", command=command))

    assert project.entry_point("main").command == command
    assert command_placeholders(tmp_path, "k", command) == ["x"]


@pytest.mark.parametrize(
    "command",
    ["python train.py {x", "python train.py x}", "python train.py {x} }", "echo {"],
)
def test_unbalanced_brace_is_a_spec_error(tmp_path: Path, command: str) -> None:
    error = load_error(tmp_path, main_with_params("x: string", command=command))

    assert error.key == "entry_points.main.command"
    assert "malformed template" in str(error)


@pytest.mark.parametrize("command", ["python train.py {}", "python train.py {0}", "echo {x} {1}"])
def test_positional_placeholder_is_a_spec_error(tmp_path: Path, command: str) -> None:
    error = load_error(tmp_path, main_with_params("x: string", command=command))

    assert error.key == "entry_points.main.command"
    assert "positional placeholder" in str(error)


@pytest.mark.parametrize("command", ["echo {x.real}", "echo {x[0]}", "echo {x.__class__}"])
def test_attribute_or_index_access_is_a_spec_error(tmp_path: Path, command: str) -> None:
    error = load_error(tmp_path, main_with_params("x: string", command=command))

    assert error.key == "entry_points.main.command"
    assert "only plain {name} placeholders are allowed" in str(error)


@pytest.mark.parametrize("command", ["echo {x:{y}}", "echo {x:>{y}}"])
def test_placeholder_nested_in_a_format_spec_must_name_a_parameter(tmp_path: Path, command: str) -> None:
    # {y} names no parameter; left undetected, render_command fails later with a raw KeyError.
    error = load_error(tmp_path, main_with_params("x: string", command=command))

    assert error.key == "entry_points.main.command"
    assert "{y}" in str(error)


@pytest.mark.parametrize(
    "command",
    [
        "echo {x:d}",  # no string accepts this format code: render_command fails with a raw ValueError
        "echo {x!r}",  # repr() of the quoted value undoes the shell quoting (see test_params.py)
        "echo {x!a}",
    ],
)
def test_placeholder_with_a_conversion_or_format_code_is_a_spec_error(tmp_path: Path, command: str) -> None:
    error = load_error(tmp_path, main_with_params("x: string", command=command))

    assert error.key == "entry_points.main.command"


def test_command_placeholders_lists_names_in_order(tmp_path: Path) -> None:
    names = command_placeholders(tmp_path / "MLproject", "k", "run {b} {a} {{c}} {b}")

    assert names == ["b", "a", "b"]


def test_command_placeholders_error_names_file_and_key(tmp_path: Path) -> None:
    spec = tmp_path / "MLproject"
    with pytest.raises(SpecError) as info:
        command_placeholders(spec, "entry_points.train.command", "run {")

    assert info.value.file == spec
    assert info.value.key == "entry_points.train.command"
    assert str(info.value).startswith(f"{spec}: entry_points.train.command: malformed template")


# --- malformed files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: demo\nentry_points:\n  main:\n    command: [unclosed\n", None),
        ("name: demo\nentry_points:\n  main: {command: x\n", None),
        ("name: demo\n\tbad: tab\n", 2),
        ("a: 1\nb: 2\n  c: 3\n", 3),
    ],
)
def test_malformed_yaml_is_a_spec_error_with_file_and_line(
    tmp_path: Path, text: str, line: int | None
) -> None:
    spec = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_project(tmp_path)

    message = str(info.value)
    assert message.startswith(str(spec))
    assert "malformed YAML" in message
    assert info.value.line is not None
    assert re.match(rf"{re.escape(str(spec))}:{info.value.line}: ", message)
    if line is not None:
        assert info.value.line == line
    assert info.value.exit_code == 2


def test_spec_file_that_is_not_utf8_is_a_spec_error(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_bytes(b"name: \xff\xfe\n")

    with pytest.raises(SpecError, match="not UTF-8"):
        load_project(tmp_path)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("just text\n", "a string")])
def test_top_level_not_a_mapping_is_a_spec_error(tmp_path: Path, text: str, kind: str) -> None:
    error = load_error(tmp_path, text)

    assert error.key is None
    assert str(error) == f"{tmp_path / 'MLproject'}: expected a mapping at the top level, got {kind}"


@pytest.mark.parametrize("value", ["[main]", "python train.py", "3"])
def test_entry_points_not_a_mapping_is_a_spec_error(tmp_path: Path, value: str) -> None:
    error = load_error(tmp_path, f"entry_points: {value}\n")

    assert error.key == "entry_points"
    assert str(error).startswith(f"{tmp_path / 'MLproject'}: entry_points: expected a mapping")


@pytest.mark.parametrize(
    "body",
    ["{parameters: {x: float}}", "{command: ''}", "{command: '   '}", "{command: [python, x.py]}", "{}"],
)
def test_entry_point_without_a_command_is_a_spec_error(tmp_path: Path, body: str) -> None:
    error = load_error(tmp_path, f"entry_points:\n  main: {body}\n")

    assert error.key == "entry_points.main.command"
    assert "command" in str(error)


@pytest.mark.parametrize("body", ["python train.py", "~", "[a, b]"])
def test_entry_point_that_is_not_a_mapping_is_a_spec_error(tmp_path: Path, body: str) -> None:
    error = load_error(tmp_path, f"entry_points:\n  main: {body}\n")

    assert error.key == "entry_points.main"


@pytest.mark.parametrize(
    "envs",
    [
        "python_env: a.yaml\nconda_env: b.yaml\n",
        "python_env: a.yaml\ndocker_env: {image: x}\n",
        "conda_env: b.yaml\ndocker_env: {image: x}\n",
    ],
)
def test_more_than_one_environment_is_a_spec_error(tmp_path: Path, envs: str) -> None:
    error = load_error(tmp_path, envs)

    assert error.key is None
    assert "at most one environment" in str(error)
    assert str(error).startswith(f"{tmp_path / 'MLproject'}: ")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("python_env: [a]\n", "python_env"),
        ("conda_env: {a: 1}\n", "conda_env"),
        ("docker_env: python:3.11\n", "docker_env"),
        ("name: [a]\n", "name"),
    ],
)
def test_ill_typed_project_field_is_a_spec_error(tmp_path: Path, text: str, key: str) -> None:
    error = load_error(tmp_path, text)

    assert error.key == key
    assert str(error).startswith(f"{tmp_path / 'MLproject'}: {key}: expected")


# --- the SpecError message format -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "line", "expected"),
    [
        ("entry_points.main.command", None, "/p/MLproject: entry_points.main.command: bad"),
        ("entry_points", 7, "/p/MLproject:7: entry_points: bad"),
        (None, 3, "/p/MLproject:3: bad"),
        (None, None, "/p/MLproject: bad"),
    ],
)
def test_spec_error_message_format(key: str | None, line: int | None, expected: str) -> None:
    error = SpecError(Path("/p/MLproject"), key, "bad", line=line)

    assert str(error) == expected
    assert error.key == key
    assert error.line == line
    assert error.exit_code == 2
    assert isinstance(error, InputError)


def test_an_entry_point_defined_twice_is_refused_with_the_line_of_the_second(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "MLproject").write_text(
        "name: t\nentry_points:\n  main:\n    command: echo one\n  main:\n    command: echo two\n"
    )
    with pytest.raises(
        SpecError, match=r"MLproject:5: entry_points\.main: duplicate key 'main' \(first given on line 3\)"
    ):
        load_project(folder)


def test_a_parameter_declared_twice_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters:\n      lr: float\n      lr: int\n    command: echo {lr}\n"
    )
    with pytest.raises(SpecError, match=r"MLproject:5: entry_points\.main\.parameters\.lr: duplicate key"):
        load_project(folder)
