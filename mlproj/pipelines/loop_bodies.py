"""A loop's body (design.md §9): a command job, or a pipeline component (`type: pipeline`), whose
jobs run as one iteration together (`loop.0.train`, `loop.0.score`, …).

A pipeline component is flattened when it is read (mlproj.pipelines.components): its inputs are
given their values inside its jobs, and its outputs are outputs of its jobs. For a loop to give each
iteration other inputs and read each iteration's outputs, the loop node keeps what the flattening
knew, as `pipeline_body` (written in a run's copy of the pipeline so that it loads back the same):

```yaml
pipeline_body:
  inputs: {lr: [[train, rate]]}     # the body's input → the jobs' inputs that are it
  outputs: {model: [train, model]}  # the body's output → the job output that is it
  fixed: [seed]                     # inputs passed on whole to a nested pipeline, or inside a text
```"""

from __future__ import annotations

import re

from mlproj.pipelines.model import BINDING, job_output
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Protocol

    from mlproj.pipelines.model import Step
    from mlproj.pipelines.problems import Job, Problems

    class Flattened(Protocol):
        """What the reading of components (mlproj.pipelines.components.Expander) knew."""

        pipeline_jobs: set[str]
        pipeline_inputs: dict[str, list[str]]  # a pipeline job → its component's inputs
        input_uses: dict[str, list[tuple[str, str, str, bool]]]  # → parent_input_uses of its jobs
        aliases: dict[tuple[str, str], str]  # (pipeline job, its output) → the binding it is

        def resolve(self, value: Any) -> Any: ...


JOB = re.compile(r"^\s*\$\{\{\s*parent\s*\.\s*jobs\s*\.\s*([A-Za-z_][\w.-]*?)\s*\}\}\s*$")
PARENT_INPUT = re.compile(r"\$\{\{\s*parent\s*\.\s*inputs\s*\.\s*([\w-]+)\s*\}\}")
VALUE_KEYS = ("path", "value", "default")
LOOP_TYPES = ("do_while", "parallel_for")


def parent_input_uses(body: dict[str, Any], flat: str) -> list[tuple[str, str, str, bool]]:
    """(job, its input, the pipeline component's input it is, whether it is that input whole) for each
    `${{parent.inputs.x}}` in a job's inputs and parameters, before they are given their values."""
    uses = []
    for section in ("inputs", "parameters"):
        values = body.get(section)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            inner = value
            if isinstance(value, dict):
                inner = next((value[k] for k in VALUE_KEYS if isinstance(value.get(k), str)), None)
            whole = PARENT_INPUT.fullmatch(inner.strip()) if isinstance(inner, str) else None
            if whole is not None:
                uses.append((flat, str(key), whole.group(1), True))
                continue
            uses += [(flat, str(key), found.group(1), False) for found in PARENT_INPUT.finditer(str(value))]
    return uses


def describe(jobs: list[Job], expander: Flattened) -> None:
    """Each loop whose body is a flattened pipeline job given that body's `pipeline_body`."""
    pipeline_jobs, declared, uses = expander.pipeline_jobs, expander.pipeline_inputs, expander.input_uses

    steps = {job.name for job in jobs}
    for job in jobs:
        given = job.body.get("body")
        found = JOB.match(given) if isinstance(given, str) else None
        if job.body.get("type") not in LOOP_TYPES or found is None or "pipeline_body" in job.body:
            continue
        body = found.group(1)
        if body not in pipeline_jobs:
            continue
        prefix = f"{body}."
        inputs: dict[str, list[list[str]]] = {name: [] for name in declared.get(body, [])}
        fixed: set[str] = set()
        for flat, key, name, whole in uses.get(body, []):
            if whole and flat in steps:
                inputs.setdefault(name, []).append([flat[len(prefix) :], key])
            else:  # a nested pipeline's input, or a part of a text: the loop cannot give it
                fixed.add(name)
        outputs = {}
        for (owner, out), binding in expander.aliases.items():
            if owner != body:
                continue
            bound = BINDING.fullmatch(expander.resolve(binding).strip())
            produced = job_output(tuple(p.strip() for p in bound.group(1).split("."))) if bound else None
            if produced is not None and produced[0].startswith(prefix):
                outputs[out] = [produced[0][len(prefix) :], produced[1]]
        job.body["pipeline_body"] = {
            "inputs": {name: sets for name, sets in inputs.items() if name not in fixed},
            "outputs": outputs,
            "fixed": sorted(fixed),
        }


def read_pipeline_body(value: Any, problems: Problems, job: Job) -> dict[str, Any] | None:
    """A loop node's `pipeline_body`, checked (a run's copy writes it; a file may not mean it)."""
    if value is None:
        return None
    message = "expected {inputs: {INPUT: [[JOB, JOB_INPUT], ...]}, outputs: {OUTPUT: [JOB, JOB_OUTPUT]}}"
    if not isinstance(value, dict) or set(value) - {"inputs", "outputs", "fixed"}:
        problems.add(job.error("pipeline_body", message))
        return None
    inputs, outputs, fixed = value.get("inputs") or {}, value.get("outputs") or {}, value.get("fixed") or []

    def pair(item: Any) -> bool:
        return isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)

    good = (
        isinstance(inputs, dict)
        and all(isinstance(sets, list) and all(pair(item) for item in sets) for sets in inputs.values())
        and isinstance(outputs, dict)
        and all(pair(item) for item in outputs.values())
        and isinstance(fixed, list)
        and all(isinstance(name, str) for name in fixed)
    )
    if not good:
        problems.add(job.error("pipeline_body", message))
        return None
    return {
        "inputs": {str(name): [list(item) for item in sets] for name, sets in inputs.items()},
        "outputs": {str(name): list(item) for name, item in outputs.items()},
        "fixed": list(fixed),
    }


@dataclass(frozen=True)
class Body:
    """What a loop runs as each iteration, in the terms of its templates (the body's steps)."""

    name: str
    members: tuple[str, ...]  # the templates: the body itself, or its pipeline's jobs `body.job`
    inputs: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # → (template, input)
    input_types: Mapping[str, str | None] = field(default_factory=dict)
    outputs: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # → (template, output)
    output_types: Mapping[str, str] = field(default_factory=dict)
    fixed: frozenset[str] = frozenset()

    @property
    def is_pipeline(self) -> bool:
        return self.members != (self.name,)

    def step_names(self, iteration: str) -> dict[str, str]:
        """Each template's step in `iteration` (`loop.3`; `loop.3.train` for a pipeline's job)."""
        if not self.is_pipeline:
            return {self.name: iteration}
        return {member: iteration + member[len(self.name) :] for member in self.members}


def body_of(control: Mapping[str, Any], templates: Mapping[str, Step]) -> Body:
    """The body a loop node's `control` names, from the pipeline's templates."""
    name = control["body"]
    described = control.get("pipeline_body")
    if described is None:
        template = templates[name]
        return Body(
            name=name,
            members=(name,),
            inputs={key: ((name, key),) for key in template.inputs},
            input_types={key: template.input_types.get(key) for key in template.inputs},
            outputs={out: (name, out) for out in template.outputs},
            output_types=dict(template.outputs),
        )
    prefix = f"{name}."
    members = tuple(member for member in templates if member.startswith(prefix))
    inputs = {
        key: tuple((prefix + job, job_input) for job, job_input in sets)
        for key, sets in described["inputs"].items()
    }
    outputs = {key: (prefix + job, out) for key, (job, out) in described["outputs"].items()}
    return Body(
        name=name,
        members=members,
        inputs=inputs,
        input_types={
            key: next(
                (templates[job].input_types.get(i) for job, i in sets if job in templates),
                None,
            )
            for key, sets in inputs.items()
        },
        outputs=outputs,
        output_types={
            key: templates[job].outputs.get(out, "uri_folder")
            for key, (job, out) in outputs.items()
            if job in templates
        },
        fixed=frozenset(described.get("fixed") or ()),
    )


__all__ = ["Body", "body_of", "describe", "parent_input_uses", "read_pipeline_body"]
