"""The click commands, built from the table of `mlproj.cli.table`: help, completion, and the errors of a
command line that `mlproj.cli.parse` leaves to click. Both call the same command functions with the same
values, converted by the same `table.convert`."""

from __future__ import annotations

import click

from mlproj import __version__
from mlproj.cli.table import COMMANDS, Arg, Command, Opt, call, convert

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

TYPE_CHECKING = False
if TYPE_CHECKING:  # generic from click 8.2 on; subscripting it at run time would fail before that
    _ParamType = click.ParamType[Any]
else:
    _ParamType = click.ParamType


class TableType(_ParamType):
    """An option's type of the table: its conversion, and its own one-line error."""

    def __init__(self, opt: Opt) -> None:
        self.opt = opt
        self.name = opt.kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):  # a default, already converted
            return value
        try:
            return convert(self.opt, value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _option(opt: Opt) -> click.Option:
    shown_default = opt.default not in (None, False, ())
    if opt.kind == "flag":
        return click.Option([*opt.names, opt.dest], is_flag=True, help=opt.help)
    if opt.kind == "toggle":
        names = "/".join(opt.names)
        return click.Option([names, opt.dest], default=opt.default, show_default=True, help=opt.help)
    extra: dict[str, Any] = {}
    if opt.dest == "entry_point":
        extra["shell_complete"] = complete_entry_points
    elif opt.choices or opt.dest in NAMED_VALUES:
        extra["shell_complete"] = lambda _ctx, _param, incomplete: [
            value for value in (opt.choices or NAMED_VALUES[opt.dest]()) if value.startswith(incomplete)
        ]
    return click.Option(
        [*opt.names, opt.dest],
        **extra,
        type=TableType(opt),
        multiple=opt.multiple,
        default=opt.default,
        show_default=shown_default,
        metavar=opt.metavar or ("[" + "|".join(opt.choices) + "]" if opt.choices else None),
        help=opt.help,
    )


# The arguments that name runs: completed from the store.
RUN_ARGS = ("run_id", "run_ids", "uri_or_run_id")


def _backends() -> list[str]:
    from mlproj.backends import available_backends

    return available_backends()


def _managers() -> list[str]:
    from mlproj.envs import KNOWN_MANAGERS

    return list(KNOWN_MANAGERS)


def _statuses() -> list[str]:
    from mlproj.runs.status import RunStatus

    return [status.value for status in RunStatus]


# The options whose values a shell completes from a list mlproj knows.
NAMED_VALUES = {"backend": _backends, "env_manager": _managers, "status_name": _statuses}


def _argument(arg: Arg) -> click.Argument:
    complete = complete_runs if arg.dest in RUN_ARGS else None
    if arg.many:
        return click.Argument(
            [arg.dest], metavar=arg.metavar, nargs=-1, required=True, shell_complete=complete
        )
    return click.Argument(
        [arg.dest],
        metavar=arg.metavar if arg.required else f"[{arg.metavar}]",
        required=arg.required,
        shell_complete=complete,
    )


def complete_runs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:  # noqa: ARG001 - click's
    """Run IDs, names and `last` for a shell's completion: the newest runs first."""
    from click.shell_completion import CompletionItem

    from mlproj.cli.completions import runs_for

    return [CompletionItem(value, help=help_text) for value, help_text in runs_for(incomplete)]


def complete_entry_points(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:  # noqa: ARG001 - click's
    """The entry points of the project the command line names (a local folder)."""
    from click.shell_completion import CompletionItem

    from mlproj.cli.completions import entry_points_of

    # The option's value is being typed, so click has not taken the URI before it as an argument yet.
    uri = ctx.params.get("uri") or next(iter(ctx.args), "")
    return [CompletionItem(name) for name in entry_points_of(str(uri)) if name.startswith(incomplete)]


def _command(command: Command) -> click.Command:
    if command.subcommands:
        group = click.Group(command.name, help=command.help, short_help=command.summary)
        for sub in command.subcommands:
            group.add_command(_command(sub))
        return group

    def callback(**values: Any) -> int:
        return call(command, values)

    params: list[click.Parameter] = [_argument(arg) for arg in command.args]
    params += [_option(opt) for opt in command.opts]
    return click.Command(
        command.name, callback=callback, params=params, help=command.help, short_help=command.summary
    )


class TableGroup(click.Group):
    """`mlproj`: its commands are built when they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's
        return [command.name for command in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002 - click's
        command = next((c for c in COMMANDS if c.name == cmd_name), None)
        return None if command is None else _command(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:  # noqa: ARG002 - click's
        with formatter.section("Commands"):
            formatter.write_dl([(command.name, command.summary) for command in COMMANDS])


@click.group(cls=TableGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlproj")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def cli(debug: bool) -> None:  # noqa: FBT001 - click's flag
    """Run MLflow projects and pipelines, and follow their runs from any shell."""


def completion_script(shell: str) -> str:
    """The script that makes `shell` complete mlproj's command lines (click's, for this program)."""
    from click.shell_completion import get_completion_class

    found = get_completion_class(shell)
    if found is None:
        from mlproj.errors import InputError

        raise InputError(f"completion {shell!r}: expected bash, zsh or fish")
    return str(found(cli, {}, "mlproj", "_MLPROJ_COMPLETE").source())


def main(args: list[str]) -> int:
    """Run the command line through click; click's own exceptions go to the caller's boundary."""
    result: Any = cli.main(args=args, prog_name="mlproj", standalone_mode=False)
    return int(result or 0)
