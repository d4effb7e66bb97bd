"""The command line without click (mlproj.cli.parse) against click (mlproj.cli.clickapp): for every
command line the small parser accepts, click must give the command the very same values; what it does
not accept, click judges. In-process: nothing here needs a subprocess."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlproj import __version__
from mlproj.cli import clickapp, table
from mlproj.cli.parse import parse, parse_command
from mlproj.cli.table import BY_NAME, COMMANDS, Command, Opt
from tests.helpers import assert_input_error, invoke

LEAVES = [sub for command in COMMANDS for sub in (command.subcommands or (command,))]
VALUES = {
    "int": st.integers(min_value=1, max_value=50).map(str),
    "seconds": st.sampled_from(["1", "0.5", "30", "1e2"]),
    "seconds0": st.sampled_from(["0", "1", "2.5"]),
    "days": st.sampled_from(["0", "7", "0.5"]),
    "text": st.text(alphabet="abc=-_./ 1é", min_size=0, max_size=8),
}


def click_values(command: Command, args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What click gives the command's function for `args`."""
    seen: dict[str, Any] = {}

    def capture(command: Command, values: dict[str, Any]) -> int:
        seen.update(values)
        return 0

    monkeypatch.setattr(clickapp, "call", capture)
    path = [c.name for c in COMMANDS if command in c.subcommands] + [command.name]
    clickapp.cli.main(args=[*path, *args], prog_name="mlproj", standalone_mode=False)
    return seen


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[Command, list[str]]:
    """A well-formed command line of one command: its arguments and options in any order, in any of
    the forms click accepts."""
    command = draw(st.sampled_from(LEAVES))
    word = st.text(alphabet="abc/._1", min_size=1, max_size=6)
    words: list[list[str]] = [
        draw(st.lists(word, min_size=1, max_size=3)) if arg.many else [draw(word)] for arg in command.args
    ]
    chosen = draw(st.lists(st.sampled_from(command.opts), max_size=6)) if command.opts else []
    words.extend(option_words(draw, opt) for opt in chosen)
    order = draw(st.permutations(range(len(words))))
    return command, [word for index in order for word in words[index]]


def option_words(draw: st.DrawFn, opt: Opt) -> list[str]:
    name = draw(st.sampled_from(opt.names))
    if not opt.takes_value:
        return [name]
    value = draw(st.sampled_from(opt.choices)) if opt.kind == "choice" else draw(VALUES[opt.kind])
    if name.startswith("--") and draw(st.booleans()):
        return [f"{name}={value}"]
    if not name.startswith("--") and value and not value.startswith("-") and draw(st.booleans()):
        return [name + value]
    return [name, value]


@settings(max_examples=300, deadline=None)
@given(command_lines())
def test_the_small_parser_agrees_with_click(line: tuple[Command, list[str]]) -> None:
    command, args = line
    ours = parse_command(command, args)
    with pytest.MonkeyPatch.context() as monkeypatch:
        theirs = click_values(command, args, monkeypatch)
    assert ours is not None, args  # every form generated here is one the small parser reads
    assert ours == theirs


def test_it_reads_the_common_forms() -> None:
    values = parse_command(
        BY_NAME["run"],
        ["-P", "a=1", "proj", "--param=b=2", "-Pc=3", "-e", "train", "--timeout=5", "-d", "--", "-x"][:-2],
    )
    assert values is not None
    assert values["uri"] == "proj"
    assert values["params"] == ("a=1", "b=2", "c=3")
    assert values["entry_point"] == "train"
    assert values["timeout"] == 5.0
    assert values["detach"] is True
    assert values["backend"] is None and values["max_parallel"] is None  # not given: the settings decide
    assert values["max_parallel"] is None


def test_an_argument_that_takes_the_rest() -> None:
    compare = BY_NAME["compare"]
    assert parse_command(compare, ["a1b2", "--all", "c3d4", "e5"]) == {
        "run_ids": ("a1b2", "c3d4", "e5"),
        "show_all": True,
        "as_json": False,
    }
    assert parse_command(compare, ["--json"]) is None  # none given: click says what is missing
    assert_input_error(invoke("compare"), "Missing argument 'RUN_ID...'")


def test_double_dash_ends_the_options() -> None:
    values = parse_command(BY_NAME["status"], ["--", "--json"])
    assert values == {"run_id": "--json", "as_json": False, "watch": False}


def test_toggles_and_repeats() -> None:
    wait = BY_NAME["wait"]
    assert parse_command(wait, ["r", "--no-show-output"]) == {
        "run_id": "r",
        "timeout": None,
        "show_output": False,
        "as_json": False,
    }
    assert parse_command(wait, ["r", "--no-show-output", "--show-output"])["show_output"] is True  # type: ignore[index]
    assert parse_command(BY_NAME["cancel"], ["r", "--grace", "1", "--grace", "2"]) == {
        "run_id": "r",
        "grace": 2.0,
        "as_json": False,
    }


@pytest.mark.parametrize(
    "args",
    [
        [],  # no command
        ["--help"],
        ["--version"],
        ["status"],  # a missing argument
        ["status", "a", "b"],  # an extra one
        ["status", "a", "--bogus"],
        ["status", "a", "-h"],
        ["status", "a", "--json=yes"],  # a flag given a value
        ["run", "p", "-dP", "a=1"],  # short flags run together: click's to read
        ["run", "p", "--timeout"],  # no value
        ["run", "p", "--timeout", "nan"],  # a value that does not convert: click says so
        ["runs", "--limit", "0"],
        ["graph", "x", "--format", "svg"],
        ["envs"],
        ["envs", "bogus"],
        ["bogus"],
    ],
)
def test_what_it_leaves_to_click(args: list[str]) -> None:
    assert parse(args) is None


def test_debug_and_subcommands() -> None:
    parsed = parse(["--debug", "envs", "prune", "--older-than", "3"])
    assert parsed is not None
    assert parsed.debug
    assert parsed.command.target == "mlproj.cli.envs:prune_envs"
    assert parsed.values == {"older_than": 3.0}


def test_every_option_of_the_table_reaches_click() -> None:
    """The click commands are built from the same table (their defaults: compared above)."""
    for command in LEAVES:
        built = clickapp._command(command)
        names = {name for param in built.params for name in [*param.opts, *param.secondary_opts]}
        for opt in command.opts:
            assert set(opt.names) <= names, (command.name, opt.names)


def test_every_command_target_exists() -> None:
    import importlib

    for command in LEAVES:
        module, _, function = command.target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), command.target


def test_call_gives_the_console_the_json_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake(app: Any, **values: Any) -> int:
        seen.update(values, as_json=app.as_json)
        return 3

    monkeypatch.setattr("mlproj.cli.status.status", fake)
    assert table.call(BY_NAME["status"], {"run_id": "r", "as_json": True, "watch": False}) == 3
    assert seen == {"run_id": "r", "watch": False, "as_json": True}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "p", "--timeout", "nan"], "--timeout nan: expected a positive number of seconds"),
        (["runs", "--limit", "0"], "--limit 0: expected a whole number of at least 1"),
        (["graph", "x", "--format", "svg"], "--format svg: expected one of text, mermaid, dot, json"),
        (["status"], "Missing argument 'RUN_ID'"),
        (["status", "a", "--bogus"], "No such option '--bogus'"),
        (["bogus"], "No such command 'bogus'"),
        (["status", "a", "--json=yes"], "Option '--json' does not take a value"),
    ],
)
def test_a_command_line_click_judges_is_one_line_exit_2(args: list[str], fragment: str) -> None:
    assert_input_error(invoke(*args), fragment)


def test_help_and_version_go_to_stdout_and_exit_0() -> None:
    helped = invoke("run", "--help")
    assert (helped.returncode, helped.stderr) == (0, "")
    assert "Usage: mlproj run [OPTIONS] URI" in helped.stdout
    assert "-P, --param KEY=VALUE" in helped.stdout
    version = invoke("--version")
    assert (version.returncode, version.stdout, version.stderr) == (0, f"mlproj, version {__version__}\n", "")
    with pytest.MonkeyPatch.context() as monkeypatch:  # the same words as click's own version option
        from mlproj.cli import clickapp

        monkeypatch.setattr("mlproj.cli.main._run", clickapp.main)
        assert invoke("--version").stdout == version.stdout


def test_a_group_without_its_command_shows_what_it_takes() -> None:
    done = invoke("envs")
    assert done.returncode == 2
    assert done.stderr.startswith("Usage: mlproj envs [OPTIONS] COMMAND")
    assert "prune" in done.stderr and "mlproj: error" not in done.stderr
