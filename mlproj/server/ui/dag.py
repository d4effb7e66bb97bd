"""A pipeline run's DAG as SVG (design.md §11): steps in layers (each after everything it depends on),
each node coloured by its status and saying it in words, a reused step marked with the run it reused,
a loop or a sweep drawn as one node that counts its iterations by status, an if_else's blocks joined to
it by dashed edges named true and false (the one not taken faded), each node a link to its step run
(which the page opens in a panel: its log, its outputs). Server-side, escaped, no script: htmx
replaces it while the run runs."""

from __future__ import annotations

import html

from mlproj.pipelines.model import loop_of

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from mlproj.pipelines.model import Pipeline
    from mlproj.runs.record import RunRecord

WIDTH, HEIGHT, GAP_X, GAP_Y, MARGIN = 240, 58, 56, 18, 10
LABEL = "The pipeline's steps and what each waits for"
CONTROLS = ("do_while", "parallel_for", "sweep", "if_else")
ICONS = {
    "Finished": "✓",
    "Failed": "✗",
    "Canceled": "⊘",
    "CancelRequested": "⊘",
    "Running": "▶",
    "Skipped": "↷",
}


def layers(pipeline: Pipeline) -> dict[str, int]:
    """Each step's layer: one more than the deepest step it depends on (0 for the first)."""
    depth: dict[str, int] = {}
    for name in pipeline.order():
        ups = [up for up in pipeline.steps[name].upstream() if up in depth]
        depth[name] = 1 + max((depth[up] for up in ups), default=-1)
    return depth


def render(pipeline: Pipeline, steps: list[RunRecord]) -> str:
    latest: dict[str, RunRecord] = {}
    for record in steps:  # each step's last attempt
        latest[record.step or ""] = record
    loops = {name for name, step in pipeline.steps.items() if step.is_control}
    members: dict[str, list[RunRecord]] = {}
    for name, record in latest.items():
        found = loop_of(name, loops)
        if found:
            members.setdefault(found[0], []).append(record)
    depth = layers(pipeline)
    columns: dict[int, list[str]] = {}
    for name in pipeline.order():
        columns.setdefault(depth[name], []).append(name)
    place = {}
    for column, names in columns.items():
        for row, name in enumerate(names):
            place[name] = (MARGIN + column * (WIDTH + GAP_X), MARGIN + row * (HEIGHT + GAP_Y))
    width = MARGIN * 2 + (max(columns, default=0) + 1) * (WIDTH + GAP_X) - GAP_X
    height = (
        MARGIN * 2 + max((len(names) for names in columns.values()), default=1) * (HEIGHT + GAP_Y) - GAP_Y
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{LABEL}">'
    ]
    branches = _branches(pipeline, latest)
    for up, down in pipeline.edges():
        if up in place and down in place:
            (x1, y1), (x2, y2) = place[up], place[down]
            start, end = (x1 + WIDTH, y1 + HEIGHT / 2), (x2, y2 + HEIGHT / 2)
            middle = (start[0] + end[0]) / 2
            branch, state = branches.get((up, down), ("", ""))
            kind = f"edge branch {state}".rstrip() if branch else "edge"
            parts.append(
                f'<path class="{kind}" d="M{start[0]},{start[1]} C{middle},{start[1]} {middle},{end[1]} '
                f'{end[0]},{end[1]}"/>'
            )
            if branch:  # which block it is, by the step it leads to
                parts.append(
                    f'<text class="branch-label {state}" x="{end[0] - 36}" y="{end[1] - 6}">{branch}</text>'
                )
    for name, (x, y) in place.items():
        parts.append(_node(name, x, y, latest.get(name), members.get(name, []), pipeline.steps[name].type))
    parts.append("</svg>")
    return "".join(parts)


def _branches(pipeline: Pipeline, latest: dict[str, RunRecord]) -> dict[tuple[str, str], tuple[str, str]]:
    """(if_else, a step of its blocks) → (true or false, its state: taken, not-taken, or "" undecided),
    as the if_else's reason says once decided ("ran the true_block")."""
    found = {}
    for name, step in pipeline.steps.items():
        if step.type != "if_else":
            continue
        record = latest.get(name)
        reason = (record.reason or "") if record is not None else ""
        for block in ("true_block", "false_block"):
            state = (
                "" if "ran the " not in reason else ("taken" if f"ran the {block}" in reason else "not-taken")
            )
            for target in (step.control or {}).get(block) or []:
                found[(name, target)] = (block.removesuffix("_block"), state)
    return found


def _node(
    name: str, x: float, y: float, record: RunRecord | None, members: list[RunRecord], kind: str
) -> str:
    status = record.status.value if record is not None else "NotStarted"
    label = html.escape(name if len(name) <= 30 else name[:29] + "…")
    detail = f"{ICONS.get(status, '…')} {status}"
    if record is not None and record.reused_from:
        detail = f"♻ reused ({record.reused_from[:8]})"
    if members:  # a loop, a sweep: its iterations by status
        counts: dict[str, int] = {}
        for member in members:
            counts[member.status.value] = counts.get(member.status.value, 0) + 1
        detail = f"{kind} · " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    reused = f", reused from {record.reused_from}" if record is not None and record.reused_from else ""
    title = html.escape(f"{name}: {status}{reused}")
    control = " control" if members or kind in CONTROLS else ""
    box = (
        f'<g class="node node-{status}{control}">'
        f"<title>{title}</title>"
        f'<rect x="{x}" y="{y}" width="{WIDTH}" height="{HEIGHT}" rx="6"/>'
        f'<text x="{x + 10}" y="{y + 22}" class="name">{label}</text>'
        f'<text x="{x + 10}" y="{y + 42}" class="detail">{html.escape(detail[:42])}</text></g>'
    )
    if record is None:
        return box
    run_id = html.escape(record.run_id)
    return f'<a href="/runs/{run_id}" data-panel="/ui/step/{run_id}" aria-label="{title}">{box}</a>'
