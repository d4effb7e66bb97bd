"""Parameter values: type checks, resolution (paths, URIs, extras), shell-safe rendering, `-P` parsing."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.errors import InputError, ParameterError, SpecError
from mlproj.params import (
    Downloader,
    ResolvedParameters,
    parse_assignments,
    render_command,
    resolve_parameters,
)
from mlproj.spec import EntryPoint, Parameter, load_project
from mlproj.values import check as check_value
from mlproj.values import uri_scheme

HOSTILE_VALUES = [
    "; rm -rf ~",
    "$(touch PWNED)",
    "`touch PWNED`",
    "a'b\"c",
    "line1\nline2",
    "*",
    "--flag",
    "",
    "$HOME",
    "'; touch PWNED; '",
    '"; touch PWNED; "',
    "{v} {0} %s",
    "a b\tc",
    "\\",
]

# A command (as a template: braces doubled) that prints the arguments it received as a JSON list.
_PRINT_ARGV_CODE = "import sys, json; print(json.dumps(sys.argv[1:]))"
PRINT_ARGV = f"{shlex.quote(sys.executable)} -c {shlex.quote(_PRINT_ARGV_CODE)}".replace("{", "{{").replace(
    "}", "}}"
)


def entry_point(command: str = "python train.py", **types: str) -> EntryPoint:
    """An entry point `main` whose parameters are `name=type` or `name=type:default`."""
    parameters = {}
    for name, spec in types.items():
        type_name, sep, default = spec.partition(":")
        parameters[name] = Parameter(name=name, type=type_name, default=default if sep else None)
    return EntryPoint(name="main", command=command, parameters=parameters)


def resolve(
    ep: EntryPoint, given: dict[str, str], folder: Path, download: Downloader | None = None
) -> ResolvedParameters:
    """Resolve with `folder` as both the project folder and the caller's folder."""
    return resolve_parameters(ep, given, project_dir=folder, caller_dir=folder, download=download)


def run_shell(command: str, cwd: Path) -> list[str]:
    """Run `command` with bash for real; return the JSON list it printed."""
    result = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, check=True)
    received: list[str] = json.loads(result.stdout)
    return received


# --- check_value ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        *[("float", v) for v in ["0.1", "1e-3", "1E5", "-2", "+3", "3", "-0.5", ".5"]],
        *[("int", v) for v in ["0", "-2", "+3", "42", "007"]],
        *[("bool", v) for v in ["true", "false", "TRUE", "False", "yes", "no", "YES", "1", "0"]],
        *[("uri", v) for v in ["s3://b/k", "S3://b/k", "file:///tmp/x", "https://e.com/a", "git+ssh://h/r"]],
        *[("string", v) for v in ["", "anything", "; rm -rf ~", "1.5"]],
        *[("path", v) for v in ["", "data/x", "/no/such/path", "s3://b/k"]],
    ],
)
def test_check_value_accepts(type_name: str, value: str) -> None:
    assert check_value(type_name, value) is None


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        *[("float", v) for v in ["nan", "NaN", "-nan", "abc", "", " ", "1,5", "0x10", "1.2.3"]],
        *[("int", v) for v in ["1.5", "1e3", "abc", "", "0x10", "1_000", "--1", "3."]],
        *[("bool", v) for v in ["maybe", "", "on", "t", "2", "truthy"]],
        *[("uri", v) for v in ["/data/x", "C:\\x", "c:/x", "data/x", "", "://x", "1s3://b"]],
    ],
)
def test_check_value_rejects(type_name: str, value: str) -> None:
    problem = check_value(type_name, value)

    assert problem is not None
    if value.strip() and "nan" not in value.lower():
        assert repr(value) in problem


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        ("s3://b/k", "s3"),
        ("S3://b/k", "s3"),
        ("file:///tmp/x", "file"),
        ("https://e.com/a", "https"),
        ("git+ssh://h/r", "git+ssh"),
        ("/data/x", None),
        ("data/x", None),
        ("C:\\x", None),
        ("c:/x", None),
        ("", None),
    ],
)
def test_uri_scheme(value: str, scheme: str | None) -> None:
    assert uri_scheme(value) == scheme


# --- required, defaults, types --------------------------------------------------------------------


def test_missing_required_parameters_are_all_named(tmp_path: Path) -> None:
    ep = entry_point(alpha="float", beta="int", gamma="string:x")

    with pytest.raises(ParameterError) as info:
        resolve(ep, {}, tmp_path)
    message = str(info.value)
    assert "'main'" in message
    assert "alpha, beta" in message
    assert "-P alpha=VALUE" in message
    assert "-P beta=VALUE" in message
    assert "gamma" not in message
    assert info.value.exit_code == 2
    assert isinstance(info.value, InputError)


def test_defaults_fill_in_and_given_values_win(tmp_path: Path) -> None:
    ep = entry_point("python train.py --lr {lr} --epochs {epochs}", lr="float:0.1", epochs="int:3")

    resolved = resolve(ep, {"epochs": "10"}, tmp_path)
    assert resolved.values == {"lr": "0.1", "epochs": "10"}
    assert resolved.rendered == {"lr": "0.1", "epochs": "10"}
    assert resolved.extra == ()
    assert render_command(ep, resolved) == "python train.py --lr 0.1 --epochs 10"


@pytest.mark.parametrize(
    ("type_name", "value"),
    [("float", "fast"), ("float", "nan"), ("int", "1.5"), ("bool", "maybe"), ("uri", "/data/x")],
)
def test_ill_typed_given_value_names_the_parameter(tmp_path: Path, type_name: str, value: str) -> None:
    ep = entry_point(x=type_name)

    with pytest.raises(ParameterError, match=rf"parameter 'x' \({type_name}\): "):
        resolve(ep, {"x": value}, tmp_path)


def test_values_are_recorded_as_given(tmp_path: Path) -> None:
    ep = entry_point(lr="float", flag="bool", n="int", u="uri")

    given = {"lr": "1e-3", "flag": "TRUE", "n": "+3", "u": "s3://b/k"}
    resolved = resolve(ep, given, tmp_path)
    assert resolved.values == given
    assert resolved.rendered == given


# --- path parameters ------------------------------------------------------------------------------


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A project folder and a caller folder, each holding its own `data.csv`."""
    project_dir = tmp_path / "project"
    caller_dir = tmp_path / "caller"
    for folder in (project_dir, caller_dir):
        folder.mkdir()
        (folder / "data.csv").write_text(folder.name)
    return project_dir, caller_dir


def test_relative_path_given_by_the_user_is_resolved_against_the_caller_folder(
    dirs: tuple[Path, Path],
) -> None:
    project_dir, caller_dir = dirs
    ep = entry_point(data="path:data.csv")

    resolved = resolve_parameters(ep, {"data": "data.csv"}, project_dir=project_dir, caller_dir=caller_dir)
    rendered = Path(resolved.rendered["data"])
    assert rendered.is_absolute()
    assert rendered.resolve() == (caller_dir / "data.csv").resolve()
    assert resolved.values == {"data": "data.csv"}


def test_relative_default_path_is_resolved_against_the_project_folder(dirs: tuple[Path, Path]) -> None:
    project_dir, caller_dir = dirs
    ep = entry_point(data="path:data.csv")

    resolved = resolve_parameters(ep, {}, project_dir=project_dir, caller_dir=caller_dir)
    rendered = Path(resolved.rendered["data"])
    assert rendered.is_absolute()
    assert rendered.resolve() == (project_dir / "data.csv").resolve()
    assert resolved.values == {"data": "data.csv"}


def test_relative_path_with_dotdot_is_resolved(dirs: tuple[Path, Path]) -> None:
    project_dir, caller_dir = dirs
    ep = entry_point(data="path")

    resolved = resolve_parameters(
        ep, {"data": "../project/data.csv"}, project_dir=project_dir, caller_dir=caller_dir
    )
    assert Path(resolved.rendered["data"]).read_text() == "project"


def test_absolute_path_is_kept(dirs: tuple[Path, Path]) -> None:
    project_dir, caller_dir = dirs
    target = caller_dir / "data.csv"
    ep = entry_point(data="path")

    resolved = resolve_parameters(ep, {"data": str(target)}, project_dir=project_dir, caller_dir=caller_dir)
    assert resolved.rendered == {"data": str(target)}


def test_folder_is_a_valid_path(dirs: tuple[Path, Path]) -> None:
    project_dir, caller_dir = dirs
    (caller_dir / "images").mkdir()
    ep = entry_point(data="path")

    resolved = resolve_parameters(ep, {"data": "images"}, project_dir=project_dir, caller_dir=caller_dir)
    assert Path(resolved.rendered["data"]) == caller_dir / "images"


def test_missing_path_names_the_parameter_and_the_absolute_path(dirs: tuple[Path, Path]) -> None:
    project_dir, caller_dir = dirs
    (project_dir / "only-in-project.csv").write_text("x")
    ep = entry_point(data="path")

    with pytest.raises(ParameterError) as info:
        resolve_parameters(
            ep, {"data": "only-in-project.csv"}, project_dir=project_dir, caller_dir=caller_dir
        )
    message = str(info.value)
    assert "'data'" in message
    assert str(caller_dir / "only-in-project.csv") in message


def test_missing_default_path_names_the_project_path(dirs: tuple[Path, Path]) -> None:
    project_dir, caller_dir = dirs
    ep = entry_point(data="path:missing.csv")

    with pytest.raises(ParameterError) as info:
        resolve_parameters(ep, {}, project_dir=project_dir, caller_dir=caller_dir)
    assert "'data'" in str(info.value)
    assert str(project_dir / "missing.csv") in str(info.value)


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_path_value_is_an_error(dirs: tuple[Path, Path], value: str) -> None:
    # "" is no file: MLflow rejects it (os.path.exists("") is False); it must not become the caller folder.
    project_dir, caller_dir = dirs
    ep = entry_point(data="path")

    with pytest.raises(ParameterError, match="'data'"):
        resolve_parameters(ep, {"data": value}, project_dir=project_dir, caller_dir=caller_dir)


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "x.csv").write_text("x")
    monkeypatch.setenv("HOME", str(home))
    ep = entry_point(data="path")

    resolved = resolve(ep, {"data": "~/datasets/x.csv"}, tmp_path / "elsewhere")
    assert resolved.rendered == {"data": str(home / "datasets" / "x.csv")}
    assert resolved.values == {"data": "~/datasets/x.csv"}


@pytest.mark.parametrize("value", ["ftpx://bucket/key", "svn://b/k", "mongodb://n/p", "X1://bucket/key"])
def test_path_with_an_unfetchable_scheme_is_an_error(tmp_path: Path, value: str) -> None:
    ep = entry_point(data="path")
    calls: list[tuple[str, str]] = []

    def download(name: str, uri: str) -> Path:
        calls.append((name, uri))
        return tmp_path

    for downloader in (None, download):
        with pytest.raises(
            ParameterError, match=r"parameter 'data' \(path\): cannot fetch .* \(supported: file"
        ):
            resolve(ep, {"data": value}, tmp_path, download=downloader)
    assert calls == []


@pytest.mark.parametrize(
    "value", ["s3://bucket/key", "gs://b/k", "hdfs://n/p", "S3://bucket/key", "runs:/abc/m"]
)
def test_an_artifact_uri_goes_to_the_downloader(tmp_path: Path, value: str) -> None:
    """MLflow reads these through its artifact repositories: mlproj hands them to its downloader (which
    reads them through tracking or the mlflow package), and `validate` takes them as they are."""
    ep = entry_point(data="path")
    calls: list[tuple[str, str]] = []

    def download(name: str, uri: str) -> Path:
        calls.append((name, uri))
        return tmp_path / "copy"

    assert resolve(ep, {"data": value}, tmp_path).rendered == {"data": value}
    assert resolve(ep, {"data": value}, tmp_path, download=download).rendered == {
        "data": str(tmp_path / "copy")
    }
    assert calls == [("data", value)]


@pytest.mark.parametrize("value", ["file:///tmp/no/such/file.csv", "https://example.invalid/a/b.csv"])
def test_fetchable_uri_without_a_downloader_is_kept_as_the_uri(tmp_path: Path, value: str) -> None:
    ep = entry_point(data="path")

    resolved = resolve(ep, {"data": value}, tmp_path, download=None)
    assert resolved.values == {"data": value}
    assert resolved.rendered == {"data": value}


@pytest.mark.parametrize("value", ["file:///somewhere/data.csv", "http://h/d.csv", "https://h/d.csv"])
def test_downloader_result_is_what_gets_rendered(tmp_path: Path, value: str) -> None:
    local = tmp_path / "downloads" / "data.csv"
    local.parent.mkdir()
    local.write_text("x")
    calls: list[tuple[str, str]] = []

    def download(name: str, uri: str) -> Path:
        calls.append((name, uri))
        return local

    ep = entry_point("python train.py --data {data}", data="path")
    resolved = resolve(ep, {"data": value}, tmp_path, download=download)
    assert calls == [("data", value)]
    assert resolved.values == {"data": value}
    assert resolved.rendered == {"data": str(local)}
    assert render_command(ep, resolved) == f"python train.py --data {shlex.quote(str(local))}"


def test_downloader_is_used_for_a_uri_default_too(tmp_path: Path) -> None:
    local = tmp_path / "d.csv"
    local.write_text("x")
    ep = entry_point(data="path:https://h/d.csv")

    resolved = resolve(ep, {}, tmp_path, download=lambda _name, _uri: local)
    assert resolved.rendered == {"data": str(local)}
    assert resolved.values == {"data": "https://h/d.csv"}


def test_downloader_is_not_called_for_local_paths(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x")

    def download(name: str, uri: str) -> Path:
        raise AssertionError(f"downloader called for {name}={uri}")

    resolved = resolve(entry_point(data="path"), {"data": "d.csv"}, tmp_path, download=download)
    assert resolved.rendered == {"data": str(tmp_path / "d.csv")}


def test_uri_parameter_is_not_resolved_or_fetched(tmp_path: Path) -> None:
    def download(name: str, uri: str) -> Path:
        raise AssertionError(f"downloader called for {name}={uri}")

    resolved = resolve(entry_point(u="uri"), {"u": "s3://b/k"}, tmp_path, download=download)
    assert resolved.rendered == {"u": "s3://b/k"}


# --- extra parameters -----------------------------------------------------------------------------


def test_extra_parameters_are_appended_in_the_order_given(tmp_path: Path) -> None:
    ep = entry_point("python train.py {lr}", lr="float")

    resolved = resolve(ep, {"zeta": "1", "lr": "0.5", "alpha": "two words", "b.c-d": "x"}, tmp_path)
    assert resolved.extra == ("zeta", "alpha", "b.c-d")
    assert resolved.values == {"lr": "0.5", "zeta": "1", "alpha": "two words", "b.c-d": "x"}
    assert render_command(ep, resolved) == "python train.py 0.5 --zeta 1 --alpha 'two words' --b.c-d x"


def test_extra_parameters_are_not_type_checked_or_resolved(tmp_path: Path) -> None:
    resolved = resolve(entry_point(), {"data": "no/such/file"}, tmp_path)

    assert resolved.rendered == {"data": "no/such/file"}


@pytest.mark.parametrize("name", ["a;b", "-x", "--x", "a b", "1a", "a=b", "$(x)", ""])
def test_invalid_extra_parameter_name_is_an_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ParameterError) as info:
        resolve(entry_point(), {name: "v"}, tmp_path)
    assert repr(name) in str(info.value)


# --- render_command -------------------------------------------------------------------------------


def test_render_command_keeps_literal_braces_and_quotes_values(tmp_path: Path) -> None:
    ep = entry_point("echo {{x}} {x} {{{x}}}", x="string")

    resolved = resolve(ep, {"x": "a b"}, tmp_path)
    assert render_command(ep, resolved) == "echo {x} 'a b' {'a b'}"


def test_render_command_quotes_paths_with_spaces(tmp_path: Path) -> None:
    data = tmp_path / "my data" / "x.csv"
    data.parent.mkdir()
    data.write_text("x")
    ep = entry_point(f"{PRINT_ARGV} {{data}}", data="path")

    resolved = resolve(ep, {"data": "my data/x.csv"}, tmp_path)
    assert run_shell(render_command(ep, resolved), tmp_path) == [str(data)]


def test_render_command_uses_a_placeholder_as_often_as_it_appears(tmp_path: Path) -> None:
    ep = entry_point(f"{PRINT_ARGV} {{v}} {{v}}", v="string")

    assert run_shell(render_command(ep, resolve(ep, {"v": "x y"}, tmp_path)), tmp_path) == ["x y", "x y"]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_values_reach_the_program_literally(tmp_path: Path, value: str) -> None:
    ep = entry_point(f"{PRINT_ARGV} {{v}}", v="string")

    resolved = resolve(ep, {"v": value, "extra": value}, tmp_path)
    received = run_shell(render_command(ep, resolved), tmp_path)
    assert received == [value, "--extra", value]
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_values_through_a_loaded_project(tmp_path: Path, value: str) -> None:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    command = f"{PRINT_ARGV} --msg {{msg}}"
    (project_dir / "MLproject").write_text(
        f"entry_points:\n  main:\n    command: {json.dumps(command)}\n    parameters:\n      msg: string\n"
    )
    ep = load_project(project_dir).entry_point("main")

    resolved = resolve(ep, {"msg": value, "tag": value}, tmp_path)
    received = run_shell(render_command(ep, resolved), tmp_path)
    assert received == ["--msg", value, "--tag", value]
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "template",
    [
        '--msg "{msg}"',  # an MLproject author quoting the placeholder
        "--msg '{msg}'",
        "--msg {msg!r}",  # a conversion that undoes the quoting
    ],
)
def test_template_cannot_undo_the_quoting_of_a_user_value(tmp_path: Path, template: str) -> None:
    # "no user value is ever interpreted by a shell" (params.py): such a template must either be refused
    # when the MLproject is loaded, or render so that the value still reaches the program literally.
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    command = f"{PRINT_ARGV} {template}"
    (project_dir / "MLproject").write_text(
        f"entry_points:\n  main:\n    command: {json.dumps(command)}\n    parameters:\n      msg: string\n"
    )
    try:
        ep = load_project(project_dir).entry_point("main")
    except SpecError:
        return
    value = "$(touch PWNED)"
    rendered = render_command(ep, resolve(ep, {"msg": value}, tmp_path))
    received = run_shell(rendered, tmp_path)
    assert not (tmp_path / "PWNED").exists(), f"the shell ran the value: {rendered}"
    assert received == ["--msg", value]


# --- parse_assignments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["a=b"], {"a": "b"}),
        (["a=b=c"], {"a": "b=c"}),
        (["a="], {"a": ""}),
        (["a= spaced "], {"a": " spaced "}),
        ([" a =1"], {"a": "1"}),
        (["a=1", "b=2"], {"a": "1", "b": "2"}),
        (["a=1", "a=2"], {"a": "2"}),
        (["msg=; rm -rf ~"], {"msg": "; rm -rf ~"}),
        ([], {}),
    ],
)
def test_parse_assignments(pairs: list[str], expected: dict[str, str]) -> None:
    assert parse_assignments(pairs) == expected
    assert parse_assignments(tuple(pairs)) == expected


@pytest.mark.parametrize("pair", ["noequals", "=x", " =x", "="])
def test_parse_assignments_rejects_malformed_pairs(pair: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_assignments(["ok=1", pair])
    assert str(info.value) == f"-P {pair!r}: expected KEY=VALUE"
    assert info.value.exit_code == 2


def test_parse_assignments_names_the_option() -> None:
    with pytest.raises(ParameterError, match=r"^--tag 'x': expected KEY=VALUE$"):
        parse_assignments(["x"], what="--tag")


def test_the_closest_declared_name_is_suggested_only_when_it_is_clear() -> None:
    from mlproj.params import closest, distance

    assert distance("count", "cuont") == 1 and distance("epochs", "epoch") == 1 and distance("ab", "ba") == 1
    assert distance("", "abc") == 3 and distance("kitten", "sitting") == 3
    assert closest("cuont", ["count", "ratio"]) == "count"
    assert closest("Count", ["count"]) == "count"  # case does not count
    assert closest("verbose", ["count", "ratio"]) is None  # nothing within two edits
    assert closest("lr1", ["lr2", "lr3"]) is None  # two as near: no guess
    assert closest("x", []) is None
