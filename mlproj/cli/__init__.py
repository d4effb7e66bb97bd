"""The `mlproj` command line. `main` is the console script: it notes a Ctrl-C from its first line on
and imports the commands inside its own error boundary, so that a Ctrl-C pressed while mlproj is still
starting ends quietly (exit 130), never with a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    # The C module: `signal` imports enum and functools first, and a Ctrl-C could land in between.
    import _signal  # type: ignore[import-not-found]  # no stub: it is signal.py's C half

    pressed: list[int] = []

    def interrupted(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler's
        pressed.append(signum)
        raise KeyboardInterrupt

    _signal.signal(_signal.SIGINT, interrupted)
    try:
        from mlproj.cli.main import run_cli

        code = run_cli()
    except BaseException:
        if not pressed:
            raise
        # Interrupted while modules were being imported (which can also surface as another error).
        sys.stderr.write("Interrupted.\n")
        code = 130
    leave(code)


def leave(code: int) -> None:
    """Exit with `code`, skipping the interpreter's teardown of every module (about 10 ms, a fifth of
    `mlproj run`'s start-up budget) when nothing needs it: the output is flushed, the exit handlers
    (atexit, weakref finalizers) are run, and no other thread is left to wait for. Otherwise, and when
    the output cannot be flushed (a closed pipe), the normal exit."""
    import os

    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    os._exit(code)
