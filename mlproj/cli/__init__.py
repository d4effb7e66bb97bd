"""The `mlproj` command line. `main` is the console script: it notes a Ctrl-C from its first line on
and imports the commands inside its own error boundary, so that a Ctrl-C pressed while mlproj is still
starting ends quietly (exit 130), never with a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    # The C module: `signal` imports enum and functools first, and a Ctrl-C could land in between.
    import _signal  # type: ignore[import-not-found]  # no stub: it is signal.py's C half

    pressed: list[int] = []

    def interrupted(signum: int, frame: object) -> None:
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
    sys.exit(code)
