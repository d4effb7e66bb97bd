"""The pieces the command table is written with (`mlproj.cli.table`): options, arguments, commands,
the conversion of an option's text, and the options several commands share. No dataclasses here
either: this is on the way to every command."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, not imported on the way to a command: it costs start-up time
if TYPE_CHECKING:
    from typing import Any


class Opt:
    """An option. `kind`: text, flag, toggle (`--x/--no-x`), int (at least `minimum`), seconds (> 0),
    seconds0 (>= 0), days (>= 0), or choice (one of `choices`)."""

    __slots__ = ("choices", "default", "dest", "help", "kind", "metavar", "minimum", "multiple", "names")

    def __init__(
        self,
        names: tuple[str, ...],
        dest: str,
        help: str,
        kind: str = "text",
        *,
        multiple: bool = False,
        default: Any = None,
        metavar: str | None = None,
        choices: tuple[str, ...] = (),
        minimum: int = 1,
    ) -> None:
        self.names, self.dest, self.help, self.kind = names, dest, help, kind
        self.multiple, self.metavar, self.choices, self.minimum = multiple, metavar, choices, minimum
        self.default = () if multiple and default is None else default
        if kind == "flag" and default is None:
            self.default = False

    @property
    def takes_value(self) -> bool:
        return self.kind not in ("flag", "toggle")


class Arg:
    """A positional argument; `many`: the last one, taking one or more words (a tuple); `required`:
    False for a last one that may be left out (None then)."""

    __slots__ = ("dest", "many", "metavar", "required")

    def __init__(self, dest: str, metavar: str, *, many: bool = False, required: bool = True) -> None:
        self.dest, self.metavar, self.many, self.required = dest, metavar, many, required


class Command:
    """A command: what it takes, and where it is implemented (`module:function`, called with the
    console and the values)."""

    __slots__ = ("args", "help", "name", "opts", "subcommands", "summary", "target")

    def __init__(
        self,
        name: str,
        target: str,
        summary: str,
        help: str,
        args: tuple[Arg, ...] = (),
        opts: tuple[Opt, ...] = (),
        subcommands: tuple[Command, ...] = (),
    ) -> None:
        self.name, self.target, self.summary, self.help = name, target, summary, help
        self.args, self.opts, self.subcommands = args, opts, subcommands


def convert(opt: Opt, text: str) -> Any:
    """An option's value from its text; ValueError says what was expected."""
    kind = opt.kind
    if kind == "int":
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError(f"{text}: expected a whole number") from None
        if number < opt.minimum:
            raise ValueError(f"{text}: expected a whole number of at least {opt.minimum}")
        return number
    if kind in ("seconds", "seconds0", "days"):
        import math

        try:
            value = float(text)
        except ValueError:
            value = math.nan
        zero_ok = kind != "seconds"
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            unit = "days" if kind == "days" else "seconds"
            expected = f"a number of {unit}, 0 or more" if zero_ok else f"a positive number of {unit}"
            raise ValueError(f"{text}: expected {expected}")
        return value
    if kind == "choice" and text not in opt.choices:
        raise ValueError(f"{text}: expected one of {', '.join(opt.choices)}")
    return text


RUN_ID = Arg("run_id", "RUN_ID")
JSON = Opt(("--json",), "as_json", "Print JSON on stdout (everything for people goes to stderr).", "flag")
DETACH = Opt(("-d", "--detach"), "detach", "Start in the background and print the run ID.", "flag")
ENTRY_POINT = Opt(("-e", "--entry-point"), "entry_point", "Entry point to run.", default="main")
VERSION = Opt(("-v", "--version"), "version", "Git branch, tag or commit.")
PARAM = Opt(("-P", "--param"), "params", "A parameter (repeatable).", multiple=True, metavar="KEY=VALUE")
ENV_MANAGER = Opt(("--env-manager",), "env_manager", "local, virtualenv, uv, conda or docker.")
SET = Opt(
    ("--set",),
    "overrides",
    "Pipelines: set any key of the file, e.g. jobs.train.inputs.lr=0.1 (repeatable).",
    multiple=True,
    metavar="KEY.PATH=VALUE",
)
ASSET_MAP = Opt(
    ("--asset-map",),
    "asset_map",
    "Azure ML pipelines: what azureml: names stand for here (default: azureml.yaml beside the file).",
    metavar="FILE",
)
