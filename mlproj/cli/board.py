"""What a person sees while a pipeline runs in the foreground.

On a terminal: a rich live board under a header (the pipeline's name, run ID and elapsed time), one
row per step (status, duration, reused or why it ran, the last line of its log). Step names, statuses
and durations are never cut short: the last two columns get what width is left. Elsewhere (a pipe, a
CI log, `--json`): one plain line per event. rich is imported only for the board.
"""

from __future__ import annotations

from pathlib import Path

from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.ui.console import STATUS_STYLES, PlainView, Text, format_duration, printable

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any, TextIO

MAX_ROWS = 40  # a bigger pipeline shows its unfinished steps and counts the finished ones
TAIL_BYTES = 2048


def make_view(stream: TextIO, *, plain: bool, title: str = "", run_id: str = "") -> Any:
    """The board on a terminal (unless `plain`), plain lines otherwise."""
    import sys

    out = Text(stream)
    if plain or not out.color:
        return PlainView(out)
    return BoardView(stderr=stream is sys.stderr, title=title, run_id=run_id)


class BoardView:
    redraws = True  # its table is redrawn while the pipeline runs

    def __init__(self, *, stderr: bool, title: str = "", run_id: str = "", console: Any = None) -> None:
        import time

        from rich.live import Live

        from mlproj.ui.console import rich_console as the_console

        self.title = title
        self.run_id = run_id
        self.started = time.monotonic()
        self.console = console or the_console(stderr=stderr)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self.live.start()

    def event(self, line: str) -> None:
        # Failures are worth keeping above the board; everything else is on the board itself.
        if ": Failed" in line or "Skipped:" in line or line.startswith("pipeline "):
            self.live.console.print(printable(line), markup=False, highlight=False)

    def refresh(self, steps: list[RunRecord]) -> None:
        self.live.update(self._table(steps), refresh=True)

    def close(self) -> None:
        self.live.stop()

    def _table(self, steps: list[RunRecord]) -> Any:
        import time

        from rich.console import Group
        from rich.table import Table
        from rich.text import Text as RichText

        shown = steps
        hidden = 0
        if len(steps) > MAX_ROWS:
            shown = [s for s in steps if s.status is not RunStatus.FINISHED][:MAX_ROWS]
            hidden = len(steps) - len(shown)
        from mlproj.pipelines.model import loop_of

        names = {step.step for step in steps if step.step}

        def shown_name(step: RunRecord) -> str:  # a loop's iterations and a sweep's trials, indented
            name = step.step or step.run_id[:8]
            return f"  {name}" if loop_of(name, names) else name

        rows = [(printable(shown_name(step)), step, format_duration(step.duration_s)) for step in shown]
        more = [f"… {hidden} more"] if hidden else []
        whys = [printable(_why(step)) for _n, step, _d in rows]
        lasts = [printable(last_line(step, width=TAIL_BYTES)) for _n, step, _d in rows]
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        # The first three columns keep their full width; the last two share what is left.
        fixed = [
            max([len(header), *(len(cell) for cell in cells)])
            for header, cells in (
                ("STEP", [name for name, _s, _d in rows] + more),
                ("STATUS", [step.status.value for _n, step, _d in rows]),
                ("DURATION", [duration for _n, _s, duration in rows]),
            )
        ]
        left = self.console.width - sum(fixed) - 2 * 4  # two spaces between columns
        why_width = min(max([len("REUSED / WHY"), *map(len, whys)]), max(12, left // 3))
        widths = [*fixed, why_width, max(9, left - why_width)]
        for header, width in zip(
            ("STEP", "STATUS", "DURATION", "REUSED / WHY", "LAST LINE"), widths, strict=True
        ):
            table.add_column(header, no_wrap=True, width=width, overflow="ellipsis")
        for (name, step, duration), why, last in zip(rows, whys, lasts, strict=True):
            style = "bold " + _rich_color(STATUS_STYLES[step.status.value])
            # rich Text, not markup: a name or an output may hold "[...]"
            table.add_row(
                RichText(name),
                RichText(step.status.value, style=style),
                duration,
                RichText(why),
                RichText(last),
            )
        if hidden:
            table.add_row(more[0], "", "", "", "")
        elapsed = format_duration(time.monotonic() - self.started)
        heading = RichText.assemble(
            (printable(self.title) or "pipeline", "bold"), f"  run {self.run_id}  ", (elapsed, "dim")
        )
        return Group(heading, table)


def _why(step: RunRecord) -> str:
    if step.reused_from:
        return f"reused from {step.reused_from[:8]}"
    reason = step.reason or ""
    return reason.removeprefix("ran: ")


def last_line(step: RunRecord, width: int = 60) -> str:
    """The last non-empty line of a step's log (of the run it reused, for a reused step: none)."""
    if step.reused_from or not step.log_path or step.status is RunStatus.NOT_STARTED:
        return ""
    progress = _progress(step)
    if progress:
        return progress
    try:
        with Path(step.log_path).open("rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - TAIL_BYTES))
            tail = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _progress(step: RunRecord) -> str:
    """A running parallel job's mini-batches (its runner's progress.json), or ""."""
    if step.status is not RunStatus.RUNNING or not step.run_dir:
        return ""
    try:
        import json

        data = json.loads((Path(step.run_dir) / "progress.json").read_text())
        text = f"mini-batches {int(data['done'])}/{int(data['total'])} done"
        return text + (f", {int(data['failed'])} failed" if data.get("failed") else "")
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _rich_color(code: str) -> str:
    return {"32": "green", "31": "red", "33": "yellow", "2": "dim", "34": "blue", "36": "cyan"}.get(code, "")
