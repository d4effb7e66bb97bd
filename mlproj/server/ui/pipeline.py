"""A pipeline run on its page (design.md §11): the DAG, the steps grouped as what they are (a loop's
iterations, a sweep's trials with the best one marked, an if_else's branch taken), and the panel a click
on a step opens (its status, why it ran, its outputs, the end of its log), each refreshed while it runs."""

from __future__ import annotations

from mlproj.pipelines.model import loop_of
from mlproj.server.runs import find
from mlproj.server.ui.frame import PageCall, log_tail
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from markupsafe import Markup
    from starlette.responses import Response

    from mlproj.pipelines.model import Pipeline
    from mlproj.runs.record import RunRecord

PANEL_LINES = 60  # lines of a step's log its panel shows
CONTROL_KINDS = ("parallel_for", "do_while", "sweep", "if_else")


@dataclass
class Group:
    """A step of the pipeline and, for a loop or a sweep, its iterations or trials."""

    record: RunRecord
    kind: str = "command"
    members: list[RunRecord] = field(default_factory=list)
    earlier: list[RunRecord] = field(default_factory=list)  # its earlier attempts
    best: str | None = None  # a sweep's best trial
    branches: list[tuple[str, str, str]] = field(default_factory=list)  # an if_else's: block, steps, state
    counts: str = ""  # the members' latest attempts by status: "3 Finished, 1 Running"
    iterations: int = 0  # distinct iterations (or trials) among the members
    current: set[str] = field(default_factory=set)  # run IDs of each member's latest attempt

    @property
    def open(self) -> bool:
        """Shown unfolded: while it runs, or when one of its members' latest attempts did not end well."""
        return not self.record.is_final or any(
            m.status.value in ("Failed", "Canceled") for m in self.members if m.run_id in self.current
        )

    @property
    def member_steps(self) -> int:
        """Members counted once each (more than the iterations when the body is a pipeline)."""
        return len(self.current)

    def member_name(self, record: RunRecord) -> str:
        return (record.step or "").removeprefix(f"{self.record.step}.")


def groups(pipeline: Pipeline | None, steps: list[RunRecord]) -> list[Group]:
    """The steps in display order, each loop's iterations and each sweep's trials under it (every
    attempt, in the order they were made)."""
    names = [step.step or "" for step in steps]
    kinds = {name: step.type for name, step in pipeline.steps.items()} if pipeline is not None else {}
    blocks = {
        name: step.control or {} for name, step in (pipeline.steps.items() if pipeline is not None else ())
    }
    controls = {name for name, kind in kinds.items() if kind in CONTROL_KINDS} or set(names)
    top: dict[str, Group] = {}
    for record in steps:
        name = record.step or ""
        found = loop_of(name, controls)
        if found is None:
            group = top.get(name)
            if group is None:
                top[name] = Group(record, kinds.get(name, "command"))
            else:  # a later attempt of the step
                group.earlier.append(group.record)
                group.record = record
            continue
        owner = top.get(found[0])
        if owner is not None:
            owner.members.append(record)
    for group in top.values():
        group.members.sort(key=lambda r: (_index(r, group), r.step or "", r.attempt or 1))
        latest = {member.step: member for member in group.members}  # sorted: the last attempt wins
        group.current = {member.run_id for member in latest.values()}
        group.iterations = len({_index(member, group) for member in group.members})
        counts: dict[str, int] = {}
        for member in latest.values():
            counts[member.status.value] = counts.get(member.status.value, 0) + 1
        group.counts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        if group.members and group.kind == "command":  # its pipeline's copy is gone: named by its steps
            group.kind = "loop"
        reason = group.record.reason or ""
        if group.kind == "sweep" and reason.startswith("best trial "):
            group.best = reason.removeprefix("best trial ").split(":", 1)[0]
        if group.kind == "if_else":  # its reason, once decided: "… ran the true_block"
            for block in ("true_block", "false_block"):
                state = (
                    ""
                    if "ran the " not in reason
                    else ("taken" if f"ran the {block}" in reason else "not taken")
                )
                steps_of = ", ".join(blocks.get(group.record.step or "", {}).get(block) or [])
                if steps_of:
                    group.branches.append((block, steps_of, state))
    return list(top.values())


def _index(record: RunRecord, group: Group) -> int:
    found = loop_of(record.step or "", {group.record.step or ""})
    return found[1] if found else 0


def dag(record: RunRecord, steps: list[RunRecord]) -> tuple[Pipeline | None, Markup | None]:
    """A pipeline run's pipeline (None when its copy is gone) and its DAG as SVG (escaped where it is
    made); (None, None) for other runs."""
    if record.kind.value != "pipeline":
        return None, None
    from markupsafe import Markup

    from mlproj.errors import MlprojError
    from mlproj.pipelines.records import load_recorded
    from mlproj.server.ui.dag import render

    try:
        pipeline = load_recorded(record)
    except (MlprojError, OSError):  # its copy of the pipeline is gone: the steps table says the rest
        return None, None
    return pipeline, Markup(render(pipeline, steps))  # noqa: S704 - every value in it is escaped by render


def pipeline_values(record: RunRecord, steps: list[RunRecord]) -> dict[str, Any]:
    """What pipeline.html shows of a pipeline run."""
    pipeline, svg = dag(record, steps)
    return {"dag": svg, "groups": groups(pipeline, steps)}


def pipeline_part(call: PageCall) -> Response:
    """The DAG and the steps as they are now (htmx replaces them every 2 s; once the run has ended the
    answer is 286, which stops htmx asking)."""
    record = find(call.store, call.path["run_id"])
    steps = call.store.steps_of(record.run_id)
    return call.render("pipeline.html", 286 if record.is_final else 200, **pipeline_values(record, steps))


def step_panel(call: PageCall) -> Response:
    """A step's panel, opened by a click on its node or its row: its status, why it ran, its outputs
    and the end of its log; asked again every 2 s while the step runs (286 once it has ended)."""
    record = find(call.store, call.path["run_id"])
    lines, _offset = log_tail(record)
    return call.render(
        "step.html",
        286 if record.is_final else 200,
        run=record,
        lines=lines[-PANEL_LINES:],
        cut=len(lines) > PANEL_LINES,
    )
