"""The `${{...}}` bindings of one step checked against its pipeline: each names something that exists,
and each stands in its command where a value can be quoted (see mlproj.quoting)."""

from __future__ import annotations

from mlproj.errors import SpecError
from mlproj.pipelines.model import (
    BINDING,
    OPTIONAL_PART,
    URI_TYPES,
    Pipeline,
    Step,
    bindings,
    command_template,
    job_output,
    optional_parts,
)
from mlproj.quoting import TemplateError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.pipelines.problems import Job
    from mlproj.pipelines.reader import Reader


def check_step_references(reader: Reader, pipeline: Pipeline, step: Step, job: Job, names: set[str]) -> None:
    """Add a problem for every binding of `step` that names nothing, or cannot be quoted where it stands."""
    for dep in step.depends_on:
        if dep not in names:
            reader.problems.add(job.error("depends_on", f"unknown step {dep!r}"))
        elif dep == step.name:
            reader.problems.add(job.error("depends_on", "a step cannot depend on itself"))
    for key in ("condition", "items"):  # a control node's bindings
        value = (step.control or {}).get(key)
        if isinstance(value, str) and BINDING.search(value):
            _check(reader, pipeline, step, job, names, key, value, inside_step=False)
            _check_condition_type(reader, pipeline, job, key, value)
    for section, values in (("inputs", step.inputs), ("parameters", step.parameters)):
        for item, value in values.items():
            _check(
                reader,
                pipeline,
                step,
                job,
                names,
                f"{section}.{item}",
                value,
                inside_step=section == "parameters",
            )
    if step.command is not None:
        _check(reader, pipeline, step, job, names, "command", step.command, inside_step=True)
        _check_command(reader, pipeline, step, job)


def _check_condition_type(reader: Reader, pipeline: Pipeline, job: Job, key: str, value: str) -> None:
    """A condition bound to a pipeline input or a step output of another type than boolean (a file
    input, whose text is read, may hold it)."""
    if key != "condition":
        return
    refs = bindings(value)
    if len(refs) != 1:
        return
    ref, kind = refs[0], None
    produced = job_output(ref)
    if ref[:2] == ("parent", "inputs") and len(ref) == 3 and ref[2] in pipeline.inputs:
        kind = pipeline.inputs[ref[2]].type
    elif produced is not None and produced[0] in pipeline.steps:
        kind = pipeline.steps[produced[0]].outputs.get(produced[1])
    if kind is not None and kind not in ("boolean", *URI_TYPES):
        reader.problems.add(job.error(key, f"{value.strip()} is a {kind}: a condition is a boolean"))


def _check(
    reader: Reader,
    pipeline: Pipeline,
    step: Step,
    job: Job,
    names: set[str],
    key: str,
    value: Any,
    *,
    inside_step: bool,
) -> None:
    def problem(message: str) -> None:
        reader.problems.add(job.error(key, message))

    for ref in bindings(value):
        text = "${{" + ".".join(ref) + "}}"
        produced = job_output(ref)
        if ref[:2] == ("parent", "inputs") and len(ref) == 3:
            if ref[2] not in pipeline.inputs:
                problem(f"{text}: the pipeline has no input {ref[2]!r}")
        elif produced is not None:
            upstream = pipeline.steps.get(produced[0])
            if produced[0] not in names:
                problem(f"{text}: unknown step {produced[0]!r}")
            elif produced[0] == step.name:
                problem(f"{text}: a step uses its own outputs as ${{{{outputs.{produced[1]}}}}}")
            elif upstream is not None and produced[1] not in upstream.outputs:
                problem(f"{text}: step {produced[0]!r} declares no output {produced[1]!r}")
        elif inside_step and ref[0] == "inputs" and len(ref) == 2:
            if ref[1] not in step.inputs:
                problem(f"{text}: this step declares no input {ref[1]!r}")
        elif inside_step and ref[0] == "outputs" and len(ref) == 2:
            if ref[1] not in step.outputs:
                problem(f"{text}: this step declares no output {ref[1]!r}")
        else:
            problem(f"{text}: not a binding this place understands")


def _check_command(reader: Reader, pipeline: Pipeline, step: Step, job: Job) -> None:
    """Every binding of a command must stand where a value can be quoted (see mlproj.quoting); where
    only an integer is safe, it must be bound to an integer. An input without a value (optional) may
    only stand inside `$[[ ... ]]`."""
    command = step.command or ""
    origin = job.origin("command")
    line = origin.lines.get(origin.key("command"))

    def file_line(command_line: int) -> int | None:
        return None if line is None else line + (command_line if "\n" in command.strip() else 0)

    def problem(message: str, at: int | None) -> None:
        reader.problems.add(SpecError(origin.file, origin.key("command"), message, line=at))

    for found in BINDING.findall(optional_parts(command, lambda _name: False)):
        ref = tuple(part.strip() for part in found.split("."))
        absent = len(ref) == 2 and ref[1] in step.inputs and step.inputs[ref[1]] is None
        if ref[0] == "inputs" and absent and ref[1] not in job.missing:
            problem(f"${{{{inputs.{ref[1]}}}}} has no value (optional): use it inside $[[ ... ]]", line)
    for part in OPTIONAL_PART.findall(command):  # kept or left out alone, each must read on its own
        try:
            command_template(part)
        except TemplateError as exc:
            problem(f"$[[{part}]]: a part that may be left out must close what it opens: {exc}", line)
            return
    try:
        template = command_template(optional_parts(command, lambda _name: True))
    except TemplateError as exc:
        problem(str(exc), file_line(exc.line))
        return

    def integer(name: str) -> bool:
        ref = tuple(name.split("."))
        if ref[:2] == ("parent", "inputs"):
            found = pipeline.inputs.get(ref[2])
            return found is not None and found.type == "integer"
        if ref[0] == "inputs":
            if step.input_types.get(ref[1]) == "integer":
                return True
            value = step.inputs.get(ref[1])
            if isinstance(value, int) and not isinstance(value, bool):
                return True
            whole = BINDING.fullmatch(value.strip()) if isinstance(value, str) else None
            return whole is not None and integer(".".join(p.strip() for p in whole.group(1).split(".")))
        return False

    for name, slot, why in template.problems(integer):
        problem(f"${{{{{name}}}}} cannot take a value safely: {why}", file_line(slot.line))
