"""A small parser for well-formed command lines, so that a command starts without importing click.

It reads the table of `mlproj.cli.table` the way click would: options anywhere among the arguments,
`--name value` and `--name=value`, `-x value` and `-xvalue`, `--` ending the options, the last of an
option given twice, a repeatable option collected in order. Whatever it is not sure of (help, the
version, an unknown option, a missing or extra argument, a value that does not convert) it leaves to
click, by returning None: click then gives the help or the one-line error, so both ways agree.
"""

from __future__ import annotations

from mlproj.cli.table import BY_NAME, Command, Opt, convert

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from typing import Any


class Parsed:
    """A command and its values (keyword arguments of its function), and whether `--debug` was given."""

    __slots__ = ("command", "debug", "values")

    def __init__(self, command: Command, values: dict[str, Any], *, debug: bool) -> None:
        self.command, self.values, self.debug = command, values, debug


def parse(args: list[str]) -> Parsed | None:
    """`mlproj [--debug] COMMAND [SUBCOMMAND] ...` → what to call, or None to let click decide."""
    debug = False
    position = 0
    while position < len(args) and args[position] == "--debug":
        debug, position = True, position + 1
    if position >= len(args):
        return None
    command = BY_NAME.get(args[position])
    position += 1
    if command is not None and command.subcommands:
        if position >= len(args):
            return None
        command = next((sub for sub in command.subcommands if sub.name == args[position]), None)
        position += 1
    if command is None:
        return None
    values = parse_command(command, args[position:])
    return None if values is None else Parsed(command, values, debug=debug)


def parse_command(command: Command, args: list[str]) -> dict[str, Any] | None:
    """The values of one command's arguments and options, or None."""
    by_name = {name: opt for opt in command.opts for name in opt.names}
    given: dict[str, Any] = {}
    positional: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--":
            positional.extend(words)
            break
        if len(word) < 2 or not word.startswith("-"):
            positional.append(word)
            continue
        name, equals, inline = word.partition("=") if word.startswith("--") else (word[:2], "", word[2:])
        opt = by_name.get(name)
        if opt is None:
            return None
        if not opt.takes_value:
            if equals or inline:
                return None  # `--flag=x`, or short flags run together (`-df`): click's to judge
            given[opt.dest] = name != _negative(opt)  # a toggle's `--no-x` is False
            continue
        text = inline if (equals or inline) else next(words, None)
        if text is None:
            return None
        value = _convert(opt, text)
        if value is _INVALID:
            return None
        if opt.multiple:
            given.setdefault(opt.dest, []).append(value)
        else:
            given[opt.dest] = value
    values = _arguments(command, positional)
    if values is None:
        return None
    for opt in command.opts:
        value = given.get(opt.dest, opt.default)
        values[opt.dest] = tuple(value) if opt.multiple else value
    return values


_INVALID = object()


def _arguments(command: Command, positional: list[str]) -> dict[str, Any] | None:
    """The positional arguments' values (the last may take the rest), or None when they do not fit."""
    args = command.args
    if args and args[-1].many:
        if len(positional) < len(args):
            return None
        fixed = len(args) - 1
        return {
            **dict(zip((a.dest for a in args[:fixed]), positional, strict=False)),
            args[-1].dest: tuple(positional[fixed:]),
        }
    given: list[str | None] = list(positional)
    if args and not args[-1].required and len(given) == len(args) - 1:
        given.append(None)  # the optional last one, left out
    if len(given) != len(args):
        return None
    return {arg.dest: text for arg, text in zip(args, given, strict=True)}


def _convert(opt: Opt, text: str) -> Any:
    try:
        return convert(opt, text)
    except ValueError:
        return _INVALID


def _negative(opt: Opt) -> str | None:
    """The `--no-x` name of a toggle (`--x/--no-x`), if it has one."""
    return opt.names[1] if opt.kind == "toggle" and len(opt.names) > 1 else None
