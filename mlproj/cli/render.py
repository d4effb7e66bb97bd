"""How runs are shown to people: the summary line, `status`, the `runs` table, a pipeline's steps."""

from __future__ import annotations

from mlproj.runs.record import RunRecord, iso_utc
from mlproj.runs.status import RunStatus
from mlproj.ui.console import STATUS_STYLES, Text, format_duration, printable

PREPARATION_SHOWN = 0.5  # seconds from submission to start from which the summary says them apart


def summary_line(out: Text, record: RunRecord) -> str:
    """`Run 3f2a… Finished in 0.12 s` (and `, after 3.3 s of preparation` when getting it started took
    that long: its environment, its image, a cluster's queue) with the error, if any: the last line of
    a foreground run."""
    text = f"Run {record.run_id} {out.status(record.status)} in {format_duration(record.duration_s)}"
    if record.started_at is not None and record.created_at is not None:
        preparation = record.started_at - record.created_at
        if preparation >= PREPARATION_SHOWN:
            text += f", after {format_duration(preparation)} of preparation"
    if record.error:
        text += f": {printable(record.error)}"
    return text


def status_lines(out: Text, record: RunRecord, mlflow: tuple[str, str] | None = None) -> list[str]:
    """Key/value lines describing one run, for `mlproj status`; `mlflow`: its MLflow run and metrics."""
    status = out.status(record.status)
    if record.exit_code is not None:
        status += f" (exit code {record.exit_code})"
    rows: list[tuple[str, str | None]] = [
        ("run", record.run_id),
        ("error", record.error),
        ("name", record.run_name),
        ("experiment", record.experiment),
        ("uri", record.uri + (f" @ {record.version}" if record.version else "") if record.uri else None),
        ("commit", record.commit),
        ("entry point", record.entry_point),
        ("parameters", " ".join(f"{k}={v}" for k, v in record.parameters.items()) or None),
        ("env manager", record.env_manager),
        ("backend", record.backend),
        ("tags", " ".join(f"{k}={v}" for k, v in record.tags.items()) or None),
        ("created", iso_utc(record.created_at)),
        ("started", iso_utc(record.started_at)),
        ("ended", iso_utc(record.ended_at)),
        ("duration", format_duration(record.duration_s) if record.started_at else None),
        ("outputs", " ".join(f"{k}={v}" for k, v in record.outputs.items()) or None),
        ("reused from", record.reused_from),
        ("why", record.reason if not record.reused_from else None),
        ("log", record.log_path),
        ("folder", record.run_dir),
        ("mlflow", mlflow[0] if mlflow else None),
        ("metrics", mlflow[1] if mlflow else None),
    ]
    rows = [(key, printable(value)) for key, value in rows if value not in (None, "")]
    rows.insert(1, ("status", status))
    width = max(len(key) for key, _ in rows)
    return [f"{out.style(key.ljust(width), '2')}  {value}" for key, value in rows]


def table_lines(
    out: Text, headers: list[str], rows: list[list[str]], styles: list[str] | None = None
) -> list[str]:
    """Columns padded to their widest cell; the last column is not padded. `styles` holds an ANSI code
    per row for the second column (the status), or "" for none."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str], status_style: str = "") -> str:
        parts = []
        for i, cell in enumerate(cells):
            padded = cell if i == len(cells) - 1 else cell.ljust(widths[i])
            parts.append(out.style(padded, status_style) if i == 1 and status_style else padded)
        return "  ".join(parts).rstrip()

    lines = [out.style(line(headers), "1")]
    for index, row in enumerate(rows):
        lines.append(line(row, styles[index] if styles else ""))
    return lines


def runs_lines(out: Text, records: list[RunRecord], extra: dict[str, list[str]] | None = None) -> list[str]:
    """The `mlproj runs` table; `extra`: more columns (`--columns`), one value per run, before URI."""
    extra = extra or {}
    headers = [
        "RUN ID",
        "STATUS",
        "NAME",
        "KIND",
        "EXPERIMENT",
        "ENTRY",
        "CREATED",
        "DURATION",
        *extra,
        "URI",
    ]
    rows = [
        [
            r.run_id[:12],
            r.status.value,
            r.run_name or "",
            r.kind.value,
            r.experiment,
            r.entry_point or "",
            local_time(r.created_at),
            format_duration(r.duration_s),
            *(values[index] for values in extra.values()),
            shown_uri(r),
        ]
        for index, r in enumerate(records)
    ]
    return table_lines(out, headers, rows, [STATUS_STYLES[r.status.value] for r in records])


def local_time(timestamp: float | None) -> str:
    """A time as people read it here: the machine's local time with its zone (2026-12-02 14:03:11 CET)."""
    if timestamp is None:
        return "-"
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))


def shown_uri(record: RunRecord) -> str:
    """The URI as it was typed (a Git `#subdirectory` included) and, for Git, the version asked or
    the commit run: `https://host/repo#sub (main)`."""
    asked = getattr(record.request, "asked", None) or {}
    uri = str(asked.get("uri") or record.uri or "")
    from mlproj.sources import is_git_uri

    if record.version:
        return f"{uri} ({record.version})"
    if record.commit and is_git_uri(uri):
        return f"{uri} ({record.commit[:8]})"
    return uri


def steps_lines(out: Text, steps: list[RunRecord]) -> list[str]:
    """A pipeline's steps table for `mlproj status`: every attempt, in the order they were made (a
    loop's iterations after the loop)."""
    headers = ["STEP", "STATUS", "DURATION", "RUN ID", "REUSED / WHY"]
    from mlproj.pipelines.model import display_order, loop_of

    names = {step.step for step in steps if step.step}
    first_seen = {
        name: index for index, name in enumerate(display_order([step.step or "" for step in steps]))
    }
    steps = sorted(steps, key=lambda s: (first_seen[s.step or ""], s.attempt or 1))  # attempts together
    rows = []
    for step in steps:
        name = step.step or ""
        if loop_of(name, names):  # a loop's iterations and a sweep's trials, under it
            name = f"  {name}"
        if step.attempt and step.attempt > 1:
            name += f" (attempt {step.attempt})"
        if step.reused_from:
            why = f"reused from {step.reused_from}"
        elif step.status in (RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.CANCELED) and step.error:
            why = step.error
        else:
            why = (step.reason or "").removeprefix("ran: ")
        rows.append([name, step.status.value, format_duration(step.duration_s), step.run_id, why])
    return table_lines(out, headers, rows, [STATUS_STYLES[s.status.value] for s in steps])


def size_text(size: int) -> str:
    """Bytes as people read them: 512 B, 3.4 KB, 12.0 MB (envs, artifacts, gc)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
