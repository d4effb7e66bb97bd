"""Bindings moved between scopes when a pipeline component is flattened (design.md §9): inside it,
`${{parent.inputs.x}}` is its job's value for `x`, and `${{parent.jobs.s.outputs.o}}` is the step
`outer.s`; outside, `${{parent.jobs.outer.outputs.x}}` is the inner step output bound to `x`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mlproj.pipelines.model import BINDING, URI_TYPES, text_of

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

JOB_OUTPUT = re.compile(r"\$\{\{\s*parent\s*\.\s*jobs\s*\.\s*([^{}]*?)\s*\.\s*outputs\s*\.\s*([\w-]+)\s*\}\}")
JOB_REF = re.compile(r"\$\{\{\s*parent\s*\.\s*jobs\s*\.\s*([A-Za-z_][\w.-]*?)\s*\}\}")
OUTPUT_BINDING = re.compile(r"^\s*\$\{\{\s*parent\s*\.\s*outputs\s*\.\s*([A-Za-z_][\w-]*)\s*\}\}\s*$")
VALUE_KEYS = ("path", "value", "default")  # where an input's value stands in {type, path, ...}


def job_output_binding(step: str, output: str) -> str:
    return "${{parent.jobs." + step + ".outputs." + output + "}}"


def input_value(body: Any) -> Any:
    """What `${{parent.inputs.x}}` stands for inside a pipeline component: its job's value (None: it
    has none; {type, path, mode}: a file or folder)."""
    if isinstance(body, dict):
        if body.get("optional") is True and "value" not in body and "path" not in body:
            return None
        if "path" in body:
            return {key: item for key, item in body.items() if key in ("type", "path", "mode")}
        return body.get("value", body.get("default"))
    return body


def rewrite(
    value: Any, values: dict[str, Any] | None, prefix: str, unknown: list[str], *, inside: bool = False
) -> Any:
    """A job's inputs (or parameters) inside a pipeline component in the enclosing pipeline's terms:
    its parent's inputs replaced by their values (a name the component does not declare is added to
    `unknown`), its siblings' outputs renamed `prefix.sibling`. `inside`: the value of an input's
    {type, path} form, where a file or folder stands by its path."""
    if isinstance(value, dict):
        return {
            key: rewrite(item, values, prefix, unknown, inside=key in VALUE_KEYS)
            for key, item in value.items()
        }
    if not isinstance(value, str):
        return value
    whole = BINDING.fullmatch(value.strip())
    if whole is not None and values is not None:
        parts = [part.strip() for part in whole.group(1).split(".")]
        if parts[:2] == ["parent", "inputs"] and len(parts) == 3 and parts[2] in values:
            found = values[parts[2]]
            return found.get("path") if inside and isinstance(found, dict) else found

    def replace(match: re.Match[str]) -> str:
        parts = [part.strip() for part in match.group(1).split(".")]
        if values is not None and parts[:2] == ["parent", "inputs"] and len(parts) == 3:
            if parts[2] not in values:
                unknown.append(parts[2])
                return match.group(0)
            found = values[parts[2]]
            return text_of(found.get("path") if isinstance(found, dict) else found)
        if prefix and parts[:2] == ["parent", "jobs"] and len(parts) >= 5:
            return "${{parent.jobs." + prefix + ".".join(parts[2:]) + "}}"
        return match.group(0)

    return BINDING.sub(replace, value)


def prefixed_jobs(value: Any, prefix: str) -> Any:
    """`${{parent.jobs.NAME}}` (or a list of them: a control node's body and blocks) inside a pipeline
    component as the flattened `${{parent.jobs.PREFIX.NAME}}`."""
    if isinstance(value, list):
        return [prefixed_jobs(item, prefix) for item in value]
    if not isinstance(value, str):
        return value
    return JOB_REF.sub(lambda match: "${{parent.jobs." + prefix + match.group(1) + "}}", value)


def pipelines_used(value: Any, pipelines: set[str]) -> set[str]:
    """The flattened pipeline jobs whose outputs `value` uses."""
    if isinstance(value, dict):
        return set().union(*(pipelines_used(item, pipelines) for item in value.values()))
    if not isinstance(value, str):
        return set()
    return {match.group(1) for match in JOB_OUTPUT.finditer(value) if match.group(1) in pipelines}


def absolute_paths(inputs: dict[str, Any], folder: Callable[[str], Path]) -> None:
    """File and folder inputs' relative paths made absolute against the file each is written in
    (`folder("inputs.NAME")`): a pipeline component's jobs take them from another file."""
    for name, body in inputs.items():
        if body.get("type") in URI_TYPES:
            for key in VALUE_KEYS:
                if key in body:
                    body[key] = absolute(body[key], folder(f"inputs.{name}"))


def absolute(value: Any, base: Path) -> Any:
    """A relative local path made absolute against `base`; anything else (a binding, a URL, an
    `azureml:` reference) as it is."""
    from mlproj.values import uri_scheme

    if not isinstance(value, str) or not value.strip() or BINDING.search(value) or uri_scheme(value.strip()):
        return value
    path = Path(value.strip()).expanduser()
    return value if path.is_absolute() else str(base / path)
