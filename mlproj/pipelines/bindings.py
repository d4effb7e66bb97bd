"""What `${{...}}` expressions mean for one step: the pipeline's inputs, upstream outputs, and the step's
own inputs and outputs, each with the text its reuse key sees."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlproj.errors import InputError
from mlproj.pipelines.model import BINDING, PRIMITIVE_OUTPUTS, URI_TYPES, Step, job_output, text_of
from mlproj.structs import dataclass, field
from mlproj.values import uri_scheme

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

URI_INPUTS = ("uri_file", "uri_folder", "mltable")


@dataclass
class Bindings:
    """What `${{...}}` expressions mean for one step: the pipeline's inputs, upstream outputs, and the
    step's own inputs and outputs. Each is (value, key text): the key text is what the reuse key sees
    (`content:<digest>` for files and folders, `<outputs.O>` for the step's own outputs)."""

    parent_inputs: Mapping[str, str]
    upstream_outputs: Mapping[tuple[str, str], str]
    own_outputs: Mapping[str, str]
    content: Callable[[str], str] | None = None  # path → "content:<digest>"; None: keys not wanted
    uri_inputs: frozenset[str] = frozenset()
    step_inputs: dict[str, tuple[str, str]] = field(default_factory=dict)
    values: frozenset[tuple[str, str]] = frozenset()  # upstream outputs given as values, not files

    def lookup(self, ref: tuple[str, ...]) -> tuple[str, str]:
        if ref[:2] == ("parent", "inputs"):
            value = self.parent_inputs[ref[2]]
            local = ref[2] in self.uri_inputs and is_local(value)
            return value, self._content(value) if local else value
        produced = job_output(ref)
        if produced is not None:
            value = self.upstream_outputs[produced]
            return value, value if produced in self.values else self._content(value)
        if ref[0] == "inputs":
            return self.step_inputs[ref[1]]
        return self.own_outputs[ref[1]], f"<outputs.{ref[1]}>"

    def _content(self, path: str) -> str:
        return self.content(path) if self.content is not None else path

    def resolve(self, value: Any) -> tuple[str, str]:
        """A parameter or input value with its bindings replaced: (value, key text)."""
        if not isinstance(value, str):
            return text_of(value), text_of(value)
        whole = BINDING.fullmatch(value.strip())
        if whole is not None:
            return self.lookup(_parts(whole.group(1)))
        values, keys, last = [], [], 0
        for match in BINDING.finditer(value):
            bound, key = self.lookup(_parts(match.group(1)))
            values += [value[last : match.start()], bound]
            keys += [value[last : match.start()], key]
            last = match.end()
        return "".join([*values, value[last:]]), "".join([*keys, value[last:]])

    def present(self, name: str) -> bool:
        """Whether `${{name}}` has a value (an optional input given none has not)."""
        ref = _parts(name)
        if ref[:2] == ("parent", "inputs"):
            return ref[2] in self.parent_inputs
        if ref[0] == "inputs" and len(ref) == 2:
            return ref[1] in self.step_inputs
        return True

    def bind_step_inputs(self, step: Step) -> None:
        """The step's inputs' values; one without a value (optional: none given, or bound to a
        pipeline input given none) is left out."""
        self.step_inputs = {}
        for name, value in step.inputs.items():
            if value is None:
                continue
            used = BINDING.findall(value) if isinstance(value, str) else []
            if not all(self.present(found) for found in used):
                continue  # it uses a value that is not there: it has none itself
            self.step_inputs[name] = self.resolve(value)

    def render_command(self, command: str) -> tuple[str, str]:
        """A command step's command with each bound value quoted for where it stands (see
        mlproj.quoting): (command, key). A value that cannot stand there raises `InputError`."""
        from mlproj.pipelines.model import command_template, optional_parts
        from mlproj.quoting import TemplateError, UnsafeValue

        try:
            template = command_template(optional_parts(command, self.present))
        except TemplateError as exc:  # checked at load time; said plainly should it happen anyway
            raise InputError(f"the command cannot be read with its optional parts left out: {exc}") from None
        for name in template.names:
            if not self.present(name):
                raise InputError(
                    f"${{{{{name}}}}} has no value (optional, none given): use it inside $[[ ... ]]"
                )
        looked_up = {name: self.lookup(_parts(name)) for name in template.names}
        try:
            rendered = template.render({name: value for name, (value, _key) in looked_up.items()})
        except UnsafeValue as exc:
            raise InputError(
                f"the value of ${{{{{exc.name}}}}} cannot be placed in the command: {exc}"
            ) from None
        key = template.parts[0] + "".join(
            looked_up[name][1] + part for name, part in zip(template.names, template.parts[1:], strict=True)
        )
        return rendered, key


def _parts(expression: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in expression.split("."))


def is_local(value: str) -> bool:
    return uri_scheme(value) in (None, "file")


PLACEHOLDERS = {"boolean": "true", "integer": "0", "number": "0", "string": "text"}  # checked before a run


def received_outputs(
    steps: Mapping[str, Step],
    step: Step,
    upstream: Mapping[tuple[str, str], str],
    read: Callable[[str, str], str],
) -> dict[tuple[str, str], str]:
    """Upstream outputs as `step` receives them: a primitive output (boolean, string, integer, number:
    a file holding the value, as mldesigner writes it) bound to its inputs as `read(path, type)`,
    unless one of them wants a file."""
    received = dict(upstream)
    for (up, out), path in upstream.items():
        producer = steps.get(up)
        kind = producer.outputs.get(out) if producer is not None else None
        if kind not in PRIMITIVE_OUTPUTS:
            continue
        wanted = [
            step.input_types.get(name)
            for name, value in step.inputs.items()
            if isinstance(value, str) and (up, out) in _produced(value)
        ]
        if wanted and not any(wanted_kind in URI_TYPES for wanted_kind in wanted):
            received[(up, out)] = read(path, str(kind))
    return received


def _produced(value: str) -> set[tuple[str, str]]:
    found = set()
    for match in BINDING.finditer(value):
        produced = job_output(tuple(part.strip() for part in match.group(1).split(".")))
        if produced is not None:
            found.add(produced)
    return found
