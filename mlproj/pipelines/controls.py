"""Control flow while a pipeline runs (design.md §9): the scheduler decides `if_else`, `do_while` and
`parallel_for` nodes itself, in its own thread; only their iterations are runs of their own.

- `if_else`: its condition (true/false, a pipeline input, or a boolean output) is read when it is
  ready; the steps of the block not taken end `Skipped`, and so does whatever only they lead to. The
  pipeline counts them as done.
- `do_while`: iteration `loop.0` runs the body; while the condition output says `true` and fewer than
  `max_iteration_count` have run, the next iteration runs with the outputs `mapping` names as inputs.
  The node's outputs are its last iteration's.
- `parallel_for`: one iteration per item (`loop.0`, `loop.1`, …), at most `max_concurrency` at once;
  the node's outputs gather every iteration's, each in a folder named by its index (or its key).

A boolean output is what mldesigner writes: a file (or the one file in an output folder) whose text is
`true` or `false`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from mlproj.errors import MlprojError
from mlproj.pipelines.control_reader import items_problem
from mlproj.pipelines.loop_bodies import Body, body_of
from mlproj.pipelines.model import BINDING, PRIMITIVE_OUTPUTS, URI_TYPES, Step, job_output, text_of
from mlproj.pipelines.plan import PipelinePlan, check_step_values, step_dir
from mlproj.pipelines.trials import SweepWatch
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunStatus
from mlproj.structs import dataclass, field, replace

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any, Protocol

    from mlproj.runs.store import Store

    class ControlOwner(Protocol):
        """What the control nodes need of their pipeline's supervisor."""

        store: Store
        run_id: str
        latest: dict[str, RunRecord]

        def log_event(self, line: str) -> None: ...

        def _skip(self, name: str, why: str) -> None: ...

        def stop_step(self, name: str, reason: str) -> None: ...


ITEMS_LIMIT = 16 << 20  # characters of JSON a parallel_for's items may take


class ControlError(MlprojError):
    """A control node that cannot decide (its condition or its items are not what they must be)."""


@dataclass
class Loop:
    node: str
    kind: str
    body: Body
    iterations: list[str] = field(default_factory=list)  # `loop.0`, … in order (a command body's steps)
    keys: list[str] = field(default_factory=list)  # parallel_for: each iteration's name in the outputs
    steps: dict[str, list[str]] = field(default_factory=dict)  # iteration → its steps

    def outputs(self, iteration: str, latest: dict[str, RunRecord]) -> dict[str, str]:
        """An iteration's outputs, as the body names them."""
        names = self.body.step_names(iteration)
        found = {}
        for out, (template, produced) in self.body.outputs.items():
            path = latest[names[template]].outputs.get(produced)
            if path is not None:
                found[out] = path
        return found


class Controls:
    def __init__(self, owner: ControlOwner, plan: PipelinePlan) -> None:
        self.owner = owner
        self.plan = plan
        self.loops: dict[str, Loop] = {}  # the loops running
        self.member: dict[str, str] = {}  # an iteration's step → its loop
        self.iteration: dict[str, str] = {}  # an iteration's step → its iteration (`loop.0`)
        self.not_taken: set[str] = set()  # steps of if_else blocks not taken, and what only they lead to
        self.trials: set[str] = set()  # a sweep's trials: their ends are the sweep's to judge
        self._sweeps = SweepWatch(self)

    def is_control(self, name: str) -> bool:
        return self.plan.pipeline.steps[name].is_control

    def active(self) -> list[str]:
        return list(self.loops)

    def at_limit(self, name: str, running: dict[str, Any]) -> bool:
        """Whether starting `name` would run more iterations of its loop than `max_concurrency`."""
        node = self.member.get(name)
        if node is None:
            return False
        limit = (self.plan.pipeline.steps[node].control or {}).get("max_concurrency")
        if not limit:
            return False
        active = {self.iteration[other] for other in running if self.member.get(other) == node}
        return self.iteration[name] not in active and len(active) >= int(limit)

    # --- a node becomes ready --------------------------------------------------------------------------

    def begin(self, name: str) -> list[str]:
        """Decide or start the control node `name`; the steps it adds (to run)."""
        step = self.plan.pipeline.steps[name]
        record = self.owner.latest[name]
        self.owner.store.transition(record.run_id, RunStatus.RUNNING, started_at=time.time())
        self.owner.latest[name] = self.owner.store.get(record.run_id)
        try:
            if step.type == "if_else":
                self._branch(step)
                return []
            body = body_of(step.control or {}, self.plan.pipeline.templates)
            loop = self.loops[name] = Loop(name, step.type, body)
            if step.type == "do_while":
                return self._iteration(loop, {})
            if step.type == "sweep":
                points = self._sweeps.points(step)
                with self.owner.store.immediate():  # one transaction for all of them
                    names = [added for point in points for added in self._iteration(loop, point)]
                self.trials.update(names)
                return names
            items = self._items(step, loop.body)
            with self.owner.store.immediate():
                return [added for key, item in items for added in self._iteration(loop, item, key)]
        except (MlprojError, ArithmeticError, ValueError) as exc:  # a point the search space cannot give
            self.loops.pop(name, None)
            self._end(
                name, RunStatus.FAILED, error=str(exc) if isinstance(exc, MlprojError) else f"{name}: {exc}"
            )
            return []

    def _branch(self, step: Step) -> None:
        control = step.control or {}
        taken = self._boolean(control.get("condition"), f"{step.name}.condition")
        chosen, other = ("true_block", "false_block") if taken else ("false_block", "true_block")
        for target in control.get(other, []):
            for member in self.plan.pipeline.order():
                if member == target or member.startswith(f"{target}."):
                    self.not_taken.add(member)
                    self.owner._skip(member, f"not run: {step.name} took its {chosen}")
        self._end(
            step.name, RunStatus.FINISHED, reason=f"the condition is {text_of(taken)}: ran the {chosen}"
        )

    def _items(self, step: Step, body: Body) -> list[tuple[str, dict[str, Any]]]:
        control = step.control or {}
        items = control.get("items")
        if isinstance(items, str):  # a binding: JSON text, from a pipeline input or an output's file
            text = self._value(items, f"{step.name}.items", limit=ITEMS_LIMIT)
            try:
                items = json.loads(text)
            except ValueError:
                raise ControlError(f"{step.name}.items: expected a JSON list, got {text[:80]!r}") from None
            problem = items_problem(items)
            if problem:
                raise ControlError(f"{step.name}.items: {problem}")
        pairs = list(items.items()) if isinstance(items, dict) else list(enumerate(items or []))
        for key, item in pairs:
            unknown = sorted(set(item) - set(body.inputs))
            if unknown:
                raise ControlError(f"{step.name}.items: item {key}: the body has no input {unknown[0]!r}")
        return [(str(key), item) for key, item in pairs]

    def _iteration(self, loop: Loop, overrides: dict[str, Any], key: str | None = None) -> list[str]:
        """Add the next iteration of `loop` (its body with `overrides` as inputs): its steps, to run."""
        from mlproj.pipelines.records import new_step_record

        plan = self.plan
        index = len(loop.iterations)
        iteration = f"{loop.node}.{index}"
        names = loop.body.step_names(iteration)
        given: dict[str, dict[str, Any]] = {}
        for input_name, value in overrides.items():
            for template, template_input in loop.body.inputs.get(input_name, ()):
                given.setdefault(template, {})[template_input] = value
        parent = self.owner.store.get(self.owner.run_id)
        added = []
        for template_name, name in names.items():
            step = _renamed(plan.pipeline.templates[template_name], names, name, given.get(template_name, {}))
            # A running loop adds its iterations to the plan: the worker and the outputs find them there.
            plan.pipeline.steps[name] = step  # type: ignore[index]
            plan.steps[name] = replace(  # type: ignore[index]
                plan.templates[template_name],
                name=name,
                step=step,
                key=f"{plan.pipeline.jobs_key}.{loop.node}[{index}]{name[len(iteration) :]}",
            )
            check_step_values(plan, name)
            self.owner.latest[name] = self.owner.store.insert(new_step_record(plan, parent, name, 1))
            self.member[name] = loop.node
            self.iteration[name] = iteration
            added.append(name)
        loop.iterations.append(iteration)
        loop.steps[iteration] = added
        loop.keys.append(key if key is not None else str(index))
        return added

    # --- a step ended ----------------------------------------------------------------------------

    def after(self, name: str) -> list[str]:
        """An iteration's step ended (for good: not retried): the next iteration, or the loop's end."""
        node = self.member.get(name)
        loop = self.loops.get(node or "")
        if loop is None or not self.owner.latest[name].is_final:
            return []
        if self.owner.latest[loop.node].is_final:  # canceled with the pipeline
            del self.loops[loop.node]
            return []
        if loop.kind == "sweep":  # the first trial ended without the primary metric: stop the others
            self._sweeps.stop_if_hopeless(loop, self.owner.latest[name])
        ended = [self.owner.latest[step] for steps in loop.steps.values() for step in steps]
        if not all(record.is_final for record in ended):
            return []
        if loop.kind == "sweep":
            del self.loops[loop.node]
            self._sweeps.finish(loop, ended)
            return []
        bad = [record for record in ended if record.status is not RunStatus.FINISHED]
        if bad:
            del self.loops[loop.node]
            first = bad[0]
            error = f"iteration {first.step} {first.status.value}" + (
                f": {first.error}" if first.error else ""
            )
            self._end(loop.node, RunStatus.FAILED, error=error)
            return []
        try:
            if loop.kind == "do_while":
                return self._next(loop)
            self._gather(loop)
        except MlprojError as exc:
            self.loops.pop(loop.node, None)
            self._end(loop.node, RunStatus.FAILED, error=str(exc))
        return []

    def _next(self, loop: Loop) -> list[str]:
        control = self.plan.pipeline.steps[loop.node].control or {}
        last = loop.iterations[-1]
        outputs = loop.outputs(last, self.owner.latest)
        condition = control.get("condition")
        if isinstance(condition, str) and not BINDING.search(condition):
            again = read_boolean(outputs.get(condition), f"{loop.node}.condition ({last}.{condition})")
        else:
            again = self._boolean(condition, f"{loop.node}.condition")
        count = len(loop.iterations)
        if again and count < int(control.get("max_iterations") or 1):
            overrides = {
                # A primitive output (is_control) is a file holding its value: the value is passed.
                target: read_text(outputs[out], f"{loop.node}.mapping.{out}").strip()
                if loop.body.output_types.get(out) in PRIMITIVE_OUTPUTS
                else outputs[out]
                for out, targets in (control.get("mapping") or {}).items()
                for target in targets
                if out in outputs
            }
            return self._iteration(loop, overrides)
        del self.loops[loop.node]
        why = "the condition is false" if not again else f"max_iteration_count ({count}) reached"
        self._end(loop.node, RunStatus.FINISHED, reason=f"{count} iterations: {why}", outputs=outputs)
        return []

    def _gather(self, loop: Loop) -> None:
        """parallel_for's outputs: each iteration's, in a folder named by its index (or key)."""
        del self.loops[loop.node]
        step = self.plan.pipeline.steps[loop.node]
        outputs = {}
        for out in step.outputs:
            target = step_dir(self.plan.run_dir, loop.node) / "outputs" / out
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for iteration, key in zip(loop.iterations, loop.keys, strict=True):
                if (target / key).resolve().parent != target.resolve():  # checked when read; never elsewhere
                    raise ControlError(f"{loop.node}: item key {key!r} cannot name a folder")
                produced = loop.outputs(iteration, self.owner.latest).get(out)
                if produced is None:
                    raise ControlError(f"{iteration}: the output {out!r} was not written")
                source = Path(produced)
                if source.is_dir():
                    shutil.copytree(source, target / key, copy_function=_link)
                else:
                    (target / key).mkdir()
                    _link(str(source), str(target / key / source.name))
            outputs[out] = str(target)
        count = len(loop.iterations)
        self._end(loop.node, RunStatus.FINISHED, reason=f"{count} iterations", outputs=outputs)

    # --- sweeps ----------------------------------------------------------------------------------

    def poll(self, running: dict[str, Any]) -> None:
        """Each turn of the scheduler: the running sweeps' early termination and timeouts."""
        if any(loop.kind == "sweep" for loop in self.loops.values()):
            self._sweeps.poll([loop for loop in self.loops.values() if loop.kind == "sweep"], running)

    def check(self, record: RunRecord, store: Store) -> str | None:
        """Why a step that exited well did not do what it must (a trial without its metric), or None."""
        return self._sweeps.check(record, store) if record.step in self.trials else None

    def env(self, name: str) -> dict[str, str]:
        """Variables for a step beyond its own (a trial's local MLflow store, when nothing tracks it)."""
        return self._sweeps.env(name) if name in self.trials else {}

    # --- values ----------------------------------------------------------------------------------

    def _value(self, binding: str, what: str, limit: int = 4096) -> str:
        """The text a binding stands for now: a pipeline input's value, or an output file's content."""
        found = BINDING.fullmatch(binding.strip())
        ref = tuple(part.strip() for part in found.group(1).split(".")) if found else ()
        if ref[:2] == ("parent", "inputs") and len(ref) == 3:
            if ref[2] not in self.plan.inputs:
                raise ControlError(f"{what}: the pipeline input {ref[2]!r} has no value")
            declared = self.plan.pipeline.inputs.get(ref[2])
            if declared is not None and declared.type in URI_TYPES:  # a file: what it holds
                return read_text(self.plan.inputs[ref[2]], what, limit)
            return self.plan.inputs[ref[2]]
        produced = job_output(ref)
        if produced is None:
            raise ControlError(f"{what}: {binding} is not a pipeline input or a step output")
        producer = self.owner.latest.get(produced[0])
        if producer is None or produced[1] not in producer.outputs:
            raise ControlError(f"{what}: {binding} has no value")
        return read_text(producer.outputs[produced[1]], what, limit)

    def _boolean(self, value: Any, what: str) -> bool:
        if isinstance(value, bool):
            return value
        return parse_boolean(self._value(str(value), what), what)

    def _end(
        self,
        name: str,
        status: RunStatus,
        *,
        error: str | None = None,
        reason: str | None = None,
        outputs: dict[str, str] | None = None,
    ) -> None:
        record = self.owner.latest[name]
        if outputs is not None:
            self.owner.store.update(record.run_id, outputs=outputs)
        self.owner.store.transition(record.run_id, status, error=error, reason=reason, ended_at=time.time())
        self.owner.latest[name] = self.owner.store.get(record.run_id)
        self.owner.log_event(f"{name}: {status.value}" + (f": {error or reason}" if error or reason else ""))


def _renamed(template: Step, names: dict[str, str], name: str, given: dict[str, Any]) -> Step:
    """A body's step as the step `name` of one iteration: its bindings to the body's other steps and
    its `depends_on` renamed to that iteration's (`names`), the inputs the iteration sets `given`."""

    def rename(value: Any) -> Any:
        if not isinstance(value, str) or not names or "parent" not in value:
            return value

        def one(match: Any) -> str:
            ref = tuple(part.strip() for part in match.group(1).split("."))
            produced = job_output(ref)
            if produced is None or produced[0] not in names:
                return str(match.group(0))
            return "${{parent.jobs." + names[produced[0]] + ".outputs." + produced[1] + "}}"

        return BINDING.sub(one, value)

    return replace(
        template,
        name=name,
        inputs={key: rename(value) for key, value in {**template.inputs, **given}.items()},
        parameters={key: rename(value) for key, value in template.parameters.items()},
        command=rename(template.command),
        depends_on=tuple(names.get(up, up) for up in template.depends_on),
    )


def read_text(path: str | None, what: str, limit: int = 4096) -> str:
    """The text of an output: its file, or the one file in its folder."""
    if not path:
        raise ControlError(f"{what}: the output was not written")
    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.is_file())
        if len(files) != 1:
            raise ControlError(f"{what}: expected one file in {target}, found {len(files)}")
        target = files[0]
    try:
        with target.open(encoding="utf-8", errors="replace") as handle:
            text = handle.read(limit + 1)
    except OSError as exc:
        raise ControlError(f"{what}: cannot read {target}: {exc.strerror}") from None
    if len(text) > limit:
        raise ControlError(f"{what}: {target} holds more than {limit} characters")
    return text


def read_boolean(path: str | None, what: str) -> bool:
    return parse_boolean(read_text(path, what), what)


def parse_boolean(text: str, what: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ControlError(f"{what}: expected true or false, got {text.strip()[:40]!r}")
    return value == "true"


def _link(source: str, target: str) -> str:
    """A file gathered without copying its bytes where the file system allows (a hard link)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target
