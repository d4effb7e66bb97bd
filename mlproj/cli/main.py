"""The `mlproj` command: a click group whose commands are imported only when they are called.

This is the one boundary where errors become exit codes: an `MlprojError` prints one line (a traceback
only with `--debug`) and exits with its code (design.md §4).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from mlproj import __version__

COMMANDS = {
    "run": ("mlproj.cli.run", "run_command"),
    "status": ("mlproj.cli.status", "status_command"),
    "logs": ("mlproj.cli.logs", "logs_command"),
    "wait": ("mlproj.cli.wait", "wait_command"),
    "cancel": ("mlproj.cli.cancel", "cancel_command"),
    "runs": ("mlproj.cli.runs", "runs_command"),
    "validate": ("mlproj.cli.validate", "validate_command"),
    "graph": ("mlproj.cli.graph", "graph_command"),
    "resume": ("mlproj.cli.resume", "resume_command"),
    "envs": ("mlproj.cli.envs", "envs_command"),
}
HELP = {
    "run": "Run a project or a pipeline from a folder, a file or a Git URI.",
    "status": "Show one run.",
    "logs": "Print a run's output.",
    "wait": "Wait for a run to end; exit with its code.",
    "cancel": "Cancel a run and every process it started.",
    "runs": "List runs, newest first.",
    "validate": "Show what would run, resolved, without running it.",
    "graph": "Print a pipeline's steps and what they depend on.",
    "resume": "Run a pipeline again, reusing the steps it finished.",
    "envs": "List or prune cached environments.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, HELP[name]) for name in COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlproj")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run MLflow projects and pipelines, and follow their runs from any shell."""
    ctx.obj = {"debug": debug}


def _os_error(exc: OSError) -> str:
    import errno

    reason = exc.strerror or str(exc)
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"{where}{reason}: the disk is full; free some space and try again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}{reason}: mlproj cannot write there"
    return f"{where}{reason}"


class Terminated(BaseException):
    """SIGTERM or SIGHUP reached mlproj outside a supervisor (which handles them itself): raised so that
    what is under way (a download, a clone) is cleaned up on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def run_cli(argv: list[str] | None = None) -> int:
    import signal
    import threading

    args = sys.argv[1:] if argv is None else argv
    previous = {}
    try:
        if threading.current_thread() is threading.main_thread():
            previous = {
                signum: signal.signal(signum, _terminated) for signum in (signal.SIGTERM, signal.SIGHUP)
            }
        return _run(args)
    except Terminated as exc:
        click.echo(f"mlproj: stopped by {signal.Signals(exc.signum).name}", err=True)
        return 128 + exc.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args: list[str]) -> int:
    debug = "--debug" in args
    try:
        result: Any = cli.main(args=args, prog_name="mlproj", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        return _click_error(exc)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # the one boundary: every error becomes one line and an exit code
        return _error(exc, debug)
    return int(result or 0)


def _click_error(exc: click.ClickException) -> int:
    """Bad flags and values: one line, exit 2, as for every input error."""
    if isinstance(exc, click.BadParameter):  # `--timeout nan`: the flag, the value, what was expected
        hint = exc.param.opts[0] if exc.param is not None and exc.param.opts else exc.param_hint
        click.echo(f"mlproj: error: {hint} {exc.message}", err=True)
        return 2
    if isinstance(exc, click.UsageError):
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"mlproj: error: {exc.format_message()}{where}", err=True)
        return 2
    exc.show()
    return int(exc.exit_code)


def _error(exc: Exception, debug: bool) -> int:
    """mlproj's own errors carry their exit code; a file-system failure names the file; anything else
    is an internal error (its traceback with --debug)."""
    from mlproj.errors import MlprojError

    if debug:
        import traceback

        traceback.print_exc()
    if isinstance(exc, MlprojError):
        click.echo(f"mlproj: error: {exc}", err=True)
        return exc.exit_code
    if isinstance(exc, OSError):  # the file system failed us (full, read-only, gone): say where
        click.echo(f"mlproj: error: {_os_error(exc)}", err=True)
        return 1
    hint = "" if debug else " (run with --debug for details)"
    click.echo(f"mlproj: internal error: {type(exc).__name__}: {exc}{hint}", err=True)
    return 1
