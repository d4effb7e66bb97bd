"""Azure ML's control flow nodes read into steps (design.md §9): `if_else`, `do_while` and
`parallel_for`, written as azure-ai-ml writes them:

```yaml
check: {type: if_else, condition: ${{parent.jobs.test.outputs.ok}}, true_block: ${{parent.jobs.a}},
        false_block: ${{parent.jobs.b}}}
loop: {type: do_while, body: ${{parent.jobs.train}}, condition: again,
       mapping: {model_out: model_in}, limits: {max_iteration_count: 5}}
fan: {type: parallel_for, body: ${{parent.jobs.train}}, items: [{lr: 0.1}, {lr: 0.2}],
      max_concurrency: 2}
```

A loop's body is a job of the pipeline that does not run by itself: it becomes a template, run as the
loop's iterations (`loop.0`, `loop.1`, …; mlproj.pipelines.controls)."""

from __future__ import annotations

import json
import re

from mlproj.pipelines.loop_bodies import JOB
from mlproj.pipelines.model import BINDING, CONTROL_TYPES, NAME, Step, bindings, job_output, text_of
from mlproj.structs import replace
from mlproj.values import check

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from mlproj.pipelines.loop_bodies import Body
    from mlproj.pipelines.problems import Job
    from mlproj.pipelines.reader import Reader

KEYS = {
    "if_else": ("type", "condition", "true_block", "false_block"),
    "do_while": ("type", "body", "condition", "mapping", "limits", "pipeline_body"),
    "parallel_for": ("type", "body", "items", "max_concurrency", "outputs", "pipeline_body"),
    "sweep": (
        "type",
        "body",
        "search_space",
        "sampling_algorithm",
        "objective",
        "limits",
        "early_termination",
    ),
}
COMMON = ("display_name", "description", "tags", "properties", "depends_on")
MAX_ITERATIONS = 1000  # Azure ML's own limit of do_while


def control_step(reader: Reader, job: Job, kind: str) -> Step | None:
    """A control node as a step whose `control` holds what it decides with."""
    body = job.body
    problems = reader.problems

    def problem(key: str, message: str) -> None:
        problems.add(job.error(key, message))

    for key in body:
        if key not in KEYS[kind] and key not in COMMON:
            allowed = ", ".join(sorted({*KEYS[kind], *COMMON}))
            problem(str(key), f"unknown key for a {kind} node (expected one of: {allowed})")
    if kind == "if_else":
        control = _if_else(reader, job)
    else:
        given = body.get("body")
        found = JOB.match(given) if isinstance(given, str) else None
        if found is None and kind == "sweep":
            problem("trial", "expected the trial's command component (trial: ./component.yml)")
            return None
        if found is None:
            problem("body", "expected the job it runs: ${{parent.jobs.NAME}}")
            return None
        control = {"body": found.group(1), **LOOPS[kind](reader, job)}
        if body.get("pipeline_body") is not None:
            from mlproj.pipelines.loop_bodies import read_pipeline_body

            control["pipeline_body"] = read_pipeline_body(body["pipeline_body"], problems, job)
    depends = body.get("depends_on") or []
    depends = [depends] if isinstance(depends, str) else depends
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        problem("depends_on", "expected a list of step names")
        depends = []
    return Step(
        name=job.name,
        type=kind,
        control=control,
        depends_on=tuple(depends),
        display_name=reader.optional_str(body, "display_name"),
        description=reader.optional_str(body, "description"),
        tags=reader.strings(body.get("tags"), job.where, "tags"),
        properties=reader.strings(body.get("properties"), job.where, "properties"),
    )


def _if_else(reader: Reader, job: Job) -> dict[str, Any]:
    body = job.body
    control: dict[str, Any] = {"condition": _condition(reader, job, body.get("condition"), allow_name=False)}
    for block in ("true_block", "false_block"):
        control[block] = _jobs(reader, job, block, body.get(block))
    if not control["true_block"] and not control["false_block"]:
        message = "expected ${{parent.jobs.NAME}} (or a list of them) in true_block or false_block"
        reader.problems.add(job.error("true_block", message))
    both = sorted(set(control["true_block"]) & set(control["false_block"]))
    if both:
        reader.problems.add(
            job.error("false_block", f"{both[0]!r} is in true_block too: a job is in one block")
        )
    return control


def _do_while(reader: Reader, job: Job) -> dict[str, Any]:
    body = job.body
    limits = reader.mapping(body.get("limits"), job.where, "limits")
    for key in limits:
        if key != "max_iteration_count":
            reader.problems.add(job.error(f"limits.{key}", "unknown key (expected max_iteration_count)"))
    count = reader.positive_int(limits, "max_iteration_count", job.where.at("limits"))
    if count is None and "max_iteration_count" not in limits:
        reader.problems.add(job.error("limits", "expected {max_iteration_count: N}"))
    elif count is not None and count > MAX_ITERATIONS:
        message = f"expected at most {MAX_ITERATIONS}, got {count}"
        reader.problems.add(job.error("limits.max_iteration_count", message))
    return {
        "condition": _condition(reader, job, body.get("condition"), allow_name=True),
        "mapping": _mapping(reader, job, body.get("mapping")),
        "max_iterations": count or 1,
    }


def _parallel_for(reader: Reader, job: Job) -> dict[str, Any]:
    return {
        "items": _items(reader, job, job.body.get("items")),
        "max_concurrency": reader.positive_int(job.body, "max_concurrency", job.where),
    }


def _sweep(reader: Reader, job: Job) -> dict[str, Any]:
    from mlproj.pipelines.sweep_reader import sweep_control

    return sweep_control(reader, job)


LOOPS = {"do_while": _do_while, "parallel_for": _parallel_for, "sweep": _sweep}


def _condition(reader: Reader, job: Job, value: Any, *, allow_name: bool) -> Any:
    """true/false, a binding to a boolean (an output, or a pipeline input), or (do_while) the name of
    one of the body's outputs."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and BINDING.fullmatch(value.strip()):
        return value.strip()
    if allow_name and isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w-]*", value.strip()):
        return value.strip()
    expected = "the name of a boolean output of the body" if allow_name else "true, false or a binding"
    reader.problems.add(job.error("condition", f"expected {expected}, got {value!r}"))
    return False


def _jobs(reader: Reader, job: Job, key: str, value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        found = JOB.match(item) if isinstance(item, str) else None
        if found is None:
            reader.problems.add(job.error(key, f"expected ${{{{parent.jobs.NAME}}}}, got {item!r}"))
        else:
            names.append(found.group(1))
    return names


def _mapping(reader: Reader, job: Job, value: Any) -> dict[str, list[str]]:
    """do_while's `mapping`: a body output → the body input(s) it feeds in the next iteration."""
    if not isinstance(value, dict) or not value:
        reader.problems.add(job.error("mapping", "expected {BODY_OUTPUT: BODY_INPUT (or a list of them)}"))
        return {}
    mapping = {}
    for out, inputs in value.items():
        names = inputs if isinstance(inputs, list) else [inputs]
        if not all(isinstance(name, str) for name in names):
            reader.problems.add(
                job.error(f"mapping.{out}", "expected a body input's name (or a list of them)")
            )
            continue
        mapping[str(out)] = [_input_name(name) for name in names]
    return mapping


def _input_name(text: str) -> str:
    """`lr` or `${{parent.jobs.body.inputs.lr}}` → `lr`."""
    found = BINDING.fullmatch(text.strip())
    return found.group(1).split(".")[-1].strip() if found else text.strip()


def _items(reader: Reader, job: Job, value: Any) -> Any:
    """parallel_for's `items`: a list of {input: value}, a mapping of such (named iterations), JSON
    text of either, or a binding that gives JSON text when the loop starts."""
    if isinstance(value, str) and BINDING.search(value):
        return value.strip()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            reader.problems.add(job.error("items", "expected a list of {input: value}, as YAML or JSON"))
            return []
    problem = items_problem(value)
    if problem:
        reader.problems.add(job.error("items", problem))
        return []
    return value


def items_problem(value: Any) -> str | None:
    """Why `value` is not a parallel_for's items, or None."""
    entries = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(entries, list) or not entries:
        return "expected a non-empty list of {input: value} (or a mapping of them)"
    if isinstance(value, dict):  # the keys name the iterations' folders in the gathered outputs
        bad = [key for key in value if not isinstance(key, str) or not NAME.fullmatch(key)]
        if bad:
            return (
                f"item key {bad[0]!r}: a key is letters, digits, '_' and '-', starting with a letter or '_'"
            )
    if not all(isinstance(entry, dict) and all(isinstance(k, str) for k in entry) for entry in entries):
        return "expected each item to be a mapping of the body's inputs to values"
    return None


def link_controls(reader: Reader, steps: dict[str, Step], jobs: dict[str, Job]) -> dict[str, Step]:
    """Loop bodies taken out of the steps (the templates, returned), each loop given its body's
    outputs and what its body reads; if_else blocks made to wait for their node."""
    from mlproj.pipelines.loop_bodies import body_of

    templates: dict[str, Step] = {}
    owners: dict[str, str] = {}
    for name, step in list(steps.items()):
        if not step.is_control or step.control is None:
            continue
        job = jobs[name]
        body = step.control.get("body")
        if body is not None:
            members = _members(step.control, steps)
            if not members:
                inner = any(n.startswith(f"{body}.") for n in steps)
                what = "a control node" if body in steps or inner else "no such job"
                expected = "a command job or a pipeline job without control nodes"
                reader.problems.add(job.error("body", f"{body!r}: {what}; the body is {expected}"))
                continue
            if body in owners:
                reader.problems.add(job.error("body", f"{body!r} is the body of {owners[body]!r} already"))
                continue
            owners[body] = name
            body_steps = {member: steps[member] for member in members}
            templates.update(body_steps)
            loop_body = body_of(step.control, body_steps)
            _check_loop(reader, step, loop_body, job)
            outside = sorted(set().union(*(t.upstream() for t in body_steps.values())) - set(body_steps))
            depends = tuple(dict.fromkeys((*step.depends_on, *outside)))
            outputs = dict(loop_body.output_types)
            if step.type == "parallel_for":  # each output gathers its iterations' in a folder
                outputs = dict.fromkeys(outputs, "uri_folder")
            steps[name] = replace(step, outputs=outputs, depends_on=depends)
        _link_blocks(reader, name, steps, job)
    for body, owner in owners.items():
        inside = set(_members(steps[owner].control or {}, steps))
        for member in inside:
            del steps[member]
        for other, found_step in list(steps.items()):
            step = found_step
            values = [
                *step.inputs.values(),
                *step.parameters.values(),
                step.command,
                *(step.control or {}).values(),
            ]
            used = {found[0] for value in values for ref in bindings(value) if (found := job_output(ref))}
            if inside & set(step.depends_on):  # waiting for the body is waiting for its loop
                moved = (owner if up in inside else up for up in step.depends_on if up != other)
                steps[other] = step = replace(step, depends_on=tuple(dict.fromkeys(moved)))
            if used & (inside | {body}):
                message = (
                    f"{body!r} is the body of the loop {owner!r}: use ${{{{parent.jobs.{owner}.outputs...}}}}"
                )
                reader.problems.add(jobs[other].error("", message))
    return templates


def _mapping_types(output: str | None, input_type: str | None) -> str | None:
    """Why a do_while cannot feed a body output of type `output` to an input of `input_type`, or None."""
    from mlproj.pipelines.model import PRIMITIVE_OUTPUTS, URI_TYPES

    if output is None or input_type is None:
        return None
    if output in PRIMITIVE_OUTPUTS and input_type in URI_TYPES:
        return f"the output is a value ({output}), the input takes a path ({input_type})"
    if output not in PRIMITIVE_OUTPUTS and input_type in PRIMITIVE_OUTPUTS:
        return f"the output is a path ({output}), the input takes a value ({input_type})"
    return None


def _link_blocks(reader: Reader, name: str, steps: dict[str, Step], job: Job) -> None:
    """An if_else node's blocks made to wait for it."""
    control = steps[name].control or {}
    for block in ("true_block", "false_block"):
        for target in control.get(block, []):
            members = [n for n in steps if n == target or n.startswith(f"{target}.")]
            if not members:
                reader.problems.add(job.error(block, f"unknown job {target!r}"))
            for member in members:
                depends = tuple(dict.fromkeys((*steps[member].depends_on, name)))
                steps[member] = replace(steps[member], depends_on=depends)


def _members(control: Mapping[str, Any], steps: dict[str, Step]) -> list[str]:
    """The steps a loop's body is: itself (a command job), or its pipeline's jobs `body.job`."""
    body = control.get("body")
    if control.get("pipeline_body") is None:
        step = steps.get(body or "")
        return [] if step is None or step.is_control else [str(body)]
    members = [name for name in steps if name.startswith(f"{body}.")]
    return [] if any(steps[name].is_control for name in members) else members


def _check_loop(reader: Reader, step: Step, body: Body, job: Job) -> None:
    control = step.control or {}

    def settable(key: str, name: str, what: str) -> bool:
        where = f"{what}: " if what else ""
        if name in body.fixed:
            message = (
                f"{where}the body {body.name!r} passes its input {name!r} on to a nested pipeline or "
                "inside a text; a loop sets only inputs its jobs take as they are"
            )
            reader.problems.add(job.error(key, message))
            return False
        if name not in body.inputs:
            reader.problems.add(job.error(key, f"{where}the body {body.name!r} has no input {name!r}"))
            return False
        return True

    if step.type == "do_while":
        _check_do_while(reader, control, body, job, settable)
    items = control.get("items")
    if step.type == "parallel_for" and isinstance(items, (list, dict)):
        entries = list(items.values()) if isinstance(items, dict) else items
        for index, entry in enumerate(entries):
            for key, value in entry.items():
                if not settable("items", key, f"item {index}"):
                    continue
                kind = body.input_types.get(key)
                wrong = isinstance(value, (dict, list)) or (
                    kind in ("string", "integer", "number", "boolean") and check(kind, text_of(value))
                )
                if wrong:
                    message = f"item {index}: {key}={value!r} is not a value for the body's {kind or 'input'}"
                    reader.problems.add(job.error("items", message))


def _check_do_while(
    reader: Reader,
    control: Mapping[str, Any],
    body: Body,
    job: Job,
    settable: Callable[[str, str, str], bool],
) -> None:
    """The condition names an output of the body; each input is fed by one output, of a kind it takes."""
    condition = control.get("condition")
    if isinstance(condition, str) and not BINDING.search(condition) and condition not in body.outputs:
        reader.problems.add(job.error("condition", f"the body {body.name!r} has no output {condition!r}"))
    fed: dict[str, str] = {}  # a body input → the output mapped to it
    for out, inputs in control.get("mapping", {}).items():
        key = f"mapping.{out}"
        if out not in body.outputs:
            reader.problems.add(job.error(key, f"the body {body.name!r} has no output {out!r}"))
        for name in inputs:
            if not settable(key, name, ""):
                continue
            if name in fed:
                message = f"the input {name!r} is mapped from {fed[name]!r} already: one output each"
                reader.problems.add(job.error(key, message))
            fed[name] = out
            problem = _mapping_types(body.output_types.get(out), body.input_types.get(name))
            if problem:
                reader.problems.add(job.error(key, f"{out} → {name}: {problem}"))


__all__ = ["CONTROL_TYPES", "control_step", "items_problem", "link_controls"]
