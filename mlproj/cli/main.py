"""The `mlproj` command line, and the one boundary where errors become exit codes: an `MlprojError`
prints one line (a traceback only with `--debug`) and exits with its code (design.md §4).

A well-formed command line is read by `mlproj.cli.parse` and its command called straight away; click
(which costs more start-up than `mlproj status` may take) is imported only for help, completion and
the errors of a command line (`mlproj.cli.clickapp`).
"""

from __future__ import annotations

import sys

from mlproj.cli.parse import parse
from mlproj.cli.table import call

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    import click


class Terminated(BaseException):
    """SIGTERM or SIGHUP reached mlproj outside a supervisor (which handles them itself): raised so that
    what is under way (a download, a clone) is cleaned up on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminated(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler's
    raise Terminated(signum)


def run_cli(argv: list[str] | None = None) -> int:
    import _signal  # type: ignore[import-not-found]  # signal.py's C half: signal.py imports enum

    args = sys.argv[1:] if argv is None else argv
    previous = {}
    try:
        for signum in (_signal.SIGTERM, _signal.SIGHUP):
            previous[signum] = _signal.signal(signum, _terminated)
    except ValueError:  # not the main thread (mlproj called from a program's thread): leave them be
        pass
    try:
        return _run(args)
    except Terminated as exc:
        name = {_signal.SIGTERM: "SIGTERM", _signal.SIGHUP: "SIGHUP"}.get(exc.signum, str(exc.signum))
        _say(f"mlproj: stopped by {name}")
        return 128 + exc.signum
    finally:
        for signum, handler in previous.items():
            _signal.signal(signum, handler)


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _run(args: list[str]) -> int:
    if args == ["--version"]:  # as click's version option prints it, without importing click
        from mlproj import __version__

        _out(f"mlproj, version {__version__}")
        return 0
    parsed = parse(args)
    debug = parsed.debug if parsed is not None else "--debug" in args
    try:
        if parsed is not None:
            return call(parsed.command, parsed.values)
        return _run_click(args)
    except KeyboardInterrupt:
        _say("Interrupted.")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - the one boundary: every error becomes one line and an exit code
        return _error(exc, debug)


def _run_click(args: list[str]) -> int:
    import click

    from mlproj.cli import clickapp

    try:
        return clickapp.main(args)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        return _click_error(exc, args)
    except click.exceptions.Abort:
        _say("Aborted.")
        return 130


def _click_error(exc: click.ClickException, args: list[str]) -> int:
    """Bad flags and values: one line, exit 2, as for every input error."""
    import click

    if isinstance(exc, click.exceptions.NoArgsIsHelpError):  # `mlproj envs`: what it takes
        _say(exc.format_message())
        return 2
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter):
        # `--timeout nan`: the flag, the value, what was expected
        hint = exc.param.opts[0] if exc.param is not None and exc.param.opts else exc.param_hint
        _say(f"mlproj: error: {hint} {exc.message}")
        return 2
    extras = _extra_assignments(exc)
    if extras:  # `mlproj run P epochs=50`: a parameter given without its -P
        shown = _with_p(args, extras)
        _say(f"mlproj: error: unexpected argument {extras[0]!r}: give parameters with -P: {shown}")
        return 2
    if isinstance(exc, click.UsageError):
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _say(f"mlproj: error: {exc.format_message()}{where}")
        return 2
    exc.show()
    return int(exc.exit_code)


def _extra_assignments(exc: click.ClickException) -> list[str]:
    """The `NAME=VALUE` words click found as extra arguments, if that is what it refused."""
    import re

    found = re.fullmatch(r"Got unexpected extra arguments? \((.+)\)", exc.format_message())
    if found is None:
        return []
    extras: list[str] = []
    for piece in found.group(1).split(" "):  # click joined them with spaces: a value may hold some
        if "=" in piece or not extras:
            extras.append(piece)
        else:
            extras[-1] += f" {piece}"
    return extras if all(re.fullmatch(r"[A-Za-z_][\w.-]*=.*", word, re.S) for word in extras) else []


def _with_p(args: list[str], extras: list[str]) -> str:
    """The command line again, each extra `NAME=VALUE` after -P."""
    import shlex

    left = list(extras)
    words = []
    for word in args:
        if word in left:
            left.remove(word)
            words += ["-P", word]
        else:
            words.append(word)
    return "mlproj " + " ".join(shlex.quote(word) for word in words)


def _os_error(exc: OSError) -> str:
    import errno

    reason = exc.strerror or str(exc)
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"{where}{reason}: the disk is full; free some space and try again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}{reason}: mlproj cannot write there"
    return f"{where}{reason}"


def _error(exc: Exception, debug: bool) -> int:  # noqa: FBT001 - internal
    """mlproj's own errors carry their exit code; a file-system failure names the file; anything else
    is an internal error (its traceback with --debug)."""
    from mlproj.errors import MlprojError

    if debug:
        import traceback

        traceback.print_exc()
    if isinstance(exc, MlprojError):
        _say(f"mlproj: error: {exc}")
        return exc.exit_code
    if isinstance(exc, OSError):  # the file system failed us (full, read-only, gone): say where
        _say(f"mlproj: error: {_os_error(exc)}")
        return 1
    hint = "" if debug else " (run with --debug for details)"
    _say(f"mlproj: internal error: {type(exc).__name__}: {exc}{hint}")
    return 1
