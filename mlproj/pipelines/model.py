"""A pipeline as mlproj holds it (design.md §6): frozen dataclasses, and the `${{...}}` bindings between
its steps. `mlproj.pipelines.loader` makes them from a file."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path

from mlproj.quoting import Template
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Container
    from typing import Any

INPUT_TYPES = ("string", "integer", "number", "boolean", "uri_file", "uri_folder", "mltable")
# Azure ML's literal type names read as mlproj's.
TYPE_ALIASES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
PRIMITIVE_OUTPUTS = ("boolean", "string", "integer", "number")  # a file holding the value (mldesigner)
URI_TYPES = ("uri_file", "uri_folder", "mltable")  # a path: mltable is a folder holding an MLTable file
# A file output is a file in a folder made for it (a primitive output, as mldesigner writes one, is a
# file holding its value); every other output is a folder (models are folders too).
FILE_OUTPUTS = ("uri_file", "boolean", "string", "integer", "number")
OUTPUT_TYPES = ("uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model", *FILE_OUTPUTS)
CONTROL_TYPES = ("if_else", "do_while", "parallel_for", "sweep")  # run by the scheduler itself (design.md §9)
STEP_TYPES = ("mlflow_project", "command", *CONTROL_TYPES)
BINDING = re.compile(r"\$\{\{\s*([^{}]*?)\s*\}\}")
OPTIONAL_PART = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)  # Azure ML's `$[[ ... ]]` in a command
# Step, input and output names: parts of `${{...}}` bindings, and of folder names in a run.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class PipelineInput:
    name: str
    type: str
    default: Any = None  # None: required, unless optional
    optional: bool = False  # Azure ML: without a value, the `$[[...]]` parts that use it are left out
    description: str | None = None
    limits: Mapping[str, Any] = field(default_factory=dict)  # Azure ML's min, max and enum


@dataclass(frozen=True)
class Step:
    name: str
    type: str
    inputs: Mapping[str, Any] = field(default_factory=dict)  # literal values or binding strings
    outputs: Mapping[str, str] = field(default_factory=dict)  # name → uri_folder | uri_file
    depends_on: tuple[str, ...] = ()
    retries: int = 0
    timeout: float | None = None
    allow_reuse: bool = True
    env_manager: str | None = None
    backend: str | None = None  # where it runs (None: the pipeline's)
    backend_config: Mapping[str, Any] | None = None
    # mlflow_project
    uri: str | None = None
    version: str | None = None
    entry_point: str = "main"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    # command
    code: str | None = None
    command: str | None = None
    # Azure ML's job keys (design.md §9), in either dialect
    input_types: Mapping[str, str] = field(default_factory=dict)  # declared types of inputs
    environment: Mapping[str, Any] | None = None  # {image} or {conda_file} (absolute), resolved
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    display_name: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    compute: str | None = None  # the Azure compute it names, as written (its backend is resolved)
    resources: Mapping[str, Any] = field(default_factory=dict)  # Azure ML's: instance_count, ...
    distribution: Mapping[str, Any] = field(default_factory=dict)  # type, process_count_per_instance
    code_copy: bool = False  # runs in a copy of its code folder, as Azure ML runs a snapshot
    artifacts_output: str | None = None  # the output that is the copy's `./outputs` folder
    # if_else, do_while, parallel_for: body, condition, mapping, max_iterations, items, max_concurrency,
    # true_block, false_block (see mlproj.pipelines.controls)
    control: Mapping[str, Any] | None = None

    @property
    def is_control(self) -> bool:
        return self.type in CONTROL_TYPES

    def to_document(self, folder: Path) -> dict[str, Any]:
        """This step as YAML data, with local paths made absolute against the pipeline's `folder`."""
        if self.is_control:
            return self._control_document()
        body: dict[str, Any] = {"type": self.type}
        if self.type == "mlflow_project":
            from mlproj.sources import is_git_uri

            uri = self.uri or ""
            body["uri"] = uri if is_git_uri(uri) else str((folder / uri).absolute())
            if self.version is not None:
                body["version"] = self.version
            body["entry_point"] = self.entry_point
            if self.parameters:
                body["parameters"] = dict(self.parameters)
        else:
            if self.code is not None:
                body["code"] = str((folder / self.code).absolute())
            body["command"] = self.command
        optional: dict[str, Any] = {
            "inputs": {name: self._input_document(name) for name in self.inputs} if self.inputs else None,
            "outputs": {name: {"type": kind} for name, kind in self.outputs.items()}
            if self.outputs
            else None,
            "depends_on": list(self.depends_on) if self.depends_on else None,
            "retries": self.retries or None,
            "timeout": self.timeout,
            "allow_reuse": False if not self.allow_reuse else None,
            "env_manager": self.env_manager,
            "backend": self.backend,
            "backend_config": dict(self.backend_config) if self.backend_config is not None else None,
            "environment": dict(self.environment) if self.environment else None,
            "environment_variables": dict(self.environment_variables) or None,
            "display_name": self.display_name,
            "description": self.description,
            "tags": dict(self.tags) or None,
            "properties": dict(self.properties) or None,
            "resources": dict(self.resources) or None,
            "distribution": dict(self.distribution) or None,
            "code_copy": self.code_copy if self.type == "command" else None,
            "artifacts_output": self.artifacts_output,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return body

    def _control_document(self) -> dict[str, Any]:
        """A control node as azure-ai-ml writes it."""
        control = dict(self.control or {})
        body: dict[str, Any] = {"type": self.type}
        if "body" in control:
            body["body"] = "${{parent.jobs." + control["body"] + "}}"
        for block in ("true_block", "false_block"):
            if control.get(block):
                body[block] = ["${{parent.jobs." + name + "}}" for name in control[block]]
        if "condition" in control:
            body["condition"] = control["condition"]
        if self.type == "do_while":
            body["mapping"] = {out: list(inputs) for out, inputs in (control.get("mapping") or {}).items()}
            body["limits"] = {"max_iteration_count": control.get("max_iterations") or 1}
        if self.type == "sweep":
            body.update(sweep_document(control))
        if self.type == "parallel_for":
            body["items"] = control.get("items")
            if control.get("max_concurrency"):
                body["max_concurrency"] = control["max_concurrency"]
        if control.get("pipeline_body") is not None:  # a pipeline component's jobs (loop_bodies)
            body["pipeline_body"] = dict(control["pipeline_body"])
        optional = {
            "depends_on": list(self.depends_on) or None,
            "display_name": self.display_name,
            "description": self.description,
            "tags": dict(self.tags) or None,
            "properties": dict(self.properties) or None,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return body

    def _input_document(self, name: str) -> Any:
        value, kind = self.inputs[name], self.input_types.get(name)
        if kind is None:
            return value
        if value is None:
            return {"type": kind, "optional": True}
        return {"type": kind, "path" if kind in URI_TYPES else "value": value}

    def upstream(self) -> set[str]:
        """Steps this one depends on: `depends_on` and `${{parent.jobs.S.outputs.O}}` bindings (in its
        inputs, its parameters or its command)."""
        return set(self.depends_on) | self.producers()

    def producers(self) -> set[str]:
        """Steps whose outputs this one reads: its `${{parent.jobs.S.outputs.O}}` bindings."""
        found: set[str] = set()
        control = self.control or {}
        for value in [
            *self.inputs.values(),
            *self.parameters.values(),
            self.command,
            control.get("condition"),
            control.get("items"),
        ]:
            for ref in bindings(value):
                produced = job_output(ref)
                if produced is not None:
                    found.add(produced[0])
        return found


@dataclass(frozen=True)
class Pipeline:
    file: Path
    name: str
    description: str | None = None
    experiment_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, PipelineInput] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)  # name → binding
    continue_on_step_failure: bool = False
    force_rerun: bool = False
    max_parallel: int | None = None
    env_manager: str | None = None
    backend: str | None = None  # where steps run unless they say (None: local)
    backend_config: Mapping[str, Any] | None = None
    steps: Mapping[str, Step] = field(default_factory=dict)
    jobs_key: str = "jobs"  # `jobs`, or its alias `steps`, as the file says
    templates: Mapping[str, Step] = field(default_factory=dict)  # loop bodies: run as iterations only
    display_name: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)  # the others: default_datastore, unknown ones
    azure: bool = False  # read as an Azure ML v2 pipeline job (design.md §9)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)  # key path → line

    @property
    def folder(self) -> Path:
        return self.file.parent

    def edges(self) -> list[tuple[str, str]]:
        """(upstream, downstream) pairs, in step order."""
        return [(up, name) for name, step in self.steps.items() for up in sorted(step.upstream())]

    def order(self) -> list[str]:
        """The steps in an order where each comes after everything it depends on (file order kept)."""
        import heapq

        position = {name: index for index, name in enumerate(self.steps)}
        waiting = {name: step.upstream() & position.keys() for name, step in self.steps.items()}
        after: dict[str, list[str]] = {}
        for name, ups in waiting.items():
            for up in ups:
                after.setdefault(up, []).append(name)
        ready = [position[name] for name, ups in waiting.items() if not ups]
        heapq.heapify(ready)
        names = list(self.steps)
        done: list[str] = []
        while ready:  # the first step in file order whose upstream steps are all placed
            name = names[heapq.heappop(ready)]
            done.append(name)
            for down in after.get(name, ()):
                waiting[down].discard(name)
                if not waiting[down]:
                    heapq.heappush(ready, position[down])
        return done

    def to_document(self) -> dict[str, Any]:
        """The pipeline as a YAML document that loads back to the same pipeline from any folder: local
        step folders and project URIs are written as absolute paths (`PipelineRun.save`)."""
        document: dict[str, Any] = {"type": "pipeline", "name": self.name}
        for key in ("description", "experiment_name"):
            if getattr(self, key) is not None:
                document[key] = getattr(self, key)
        if self.tags:
            document["tags"] = dict(self.tags)
        for key in ("display_name",):
            if getattr(self, key) is not None:
                document[key] = getattr(self, key)
        if self.properties:
            document["properties"] = dict(self.properties)
        if self.inputs:
            document["inputs"] = {
                name: {
                    "type": item.type,
                    **({} if item.default is None else {"default": self._default(item)}),
                    **({"optional": True} if item.optional else {}),
                    **({"description": item.description} if item.description else {}),
                    **item.limits,
                }
                for name, item in self.inputs.items()
            }
        if self.outputs:
            document["outputs"] = dict(self.outputs)
        settings: dict[str, Any] = {
            "continue_on_step_failure": self.continue_on_step_failure,
            "force_rerun": self.force_rerun,
        }
        if self.max_parallel is not None:
            settings["max_parallel"] = self.max_parallel
        if self.env_manager is not None:
            settings["env_manager"] = self.env_manager
        if self.backend is not None:
            settings["backend"] = self.backend
        if self.backend_config is not None:
            settings["backend_config"] = dict(self.backend_config)
        settings.update(self.settings)
        document["settings"] = settings
        document["jobs"] = {
            name: step.to_document(self.folder) for name, step in {**self.steps, **self.templates}.items()
        }
        return document

    def to_text(self) -> str:
        """`to_document` as YAML text."""
        import yaml

        return yaml.safe_dump(self.to_document(), sort_keys=False, allow_unicode=True)

    def _default(self, item: PipelineInput) -> Any:
        """An input's default for `to_document`: a relative local path made absolute."""
        from mlproj.values import uri_scheme

        if item.type not in URI_TYPES or item.default is None:
            return item.default
        text = str(item.default)
        if uri_scheme(text) is not None or Path(text).expanduser().is_absolute():
            return item.default
        return str((self.folder / text).absolute())


@functools.lru_cache(maxsize=256)
def command_template(command: str) -> Template:
    """A command step's command as a template whose placeholders are its `${{...}}` bindings (named by
    their expression, `parent.inputs.lr`); raises `TemplateError` when it cannot be read."""
    parts, names, last = [], [], 0
    for match in BINDING.finditer(command):
        parts.append(command[last : match.start()])
        names.append(".".join(part.strip() for part in match.group(1).split(".")))
        last = match.end()
    parts.append(command[last:])
    return Template.parse(parts, names)


LIMIT_KEYS = ("min", "max", "enum")


def out_of_limits(text: str, limits: Mapping[str, Any]) -> str | None:
    """Why a value is outside an input's `min`, `max` or `enum` (Azure ML's), or None."""
    enum = limits.get("enum")
    if isinstance(enum, list) and enum and text not in [text_of(item) for item in enum]:
        return f"expected one of: {', '.join(text_of(item) for item in enum)}, got {text!r}"
    for key, word in (("min", "least"), ("max", "most")):
        bound = limits.get(key)
        if not isinstance(bound, (int, float)) or isinstance(bound, bool):
            continue
        try:
            number = float(text)
        except ValueError:
            continue  # not a number: its type check says so
        if (number < bound) if key == "min" else (number > bound):
            return f"expected at {word} {bound}, got {text}"
    return None


def text_of(value: Any) -> str:
    """A YAML scalar as the string a command or parameter receives (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


ITERATION = re.compile(r"\.(\d+)(?=\.|$)")  # `.3` in `loop.3` or `loop.3.train`


def loop_of(name: str, loops: Container[str]) -> tuple[str, int] | None:
    """(the loop, the index) of an iteration's step: `loop.3`, or `loop.3.train` when the loop's body
    is a pipeline; None for any other step. `loops`: the names that may be loops."""
    for found in ITERATION.finditer(name):
        if name[: found.start()] in loops:
            return name[: found.start()], int(found.group(1))
    return None


def display_order(names: list[str]) -> list[str]:
    """Step names in their order, each loop's iterations (`loop.0`, `loop.1`, …, and the steps of
    each, `loop.0.train`) right after the loop."""
    known = set(names)
    children: dict[str, list[str]] = {}
    index: dict[str, int] = {}
    top: list[str] = []
    for name in dict.fromkeys(names):
        found = loop_of(name, known)
        if found:
            children.setdefault(found[0], []).append(name)
            index[name] = found[1]
        else:
            top.append(name)
    ordered: list[str] = []

    def add(name: str) -> None:
        ordered.append(name)
        for child in sorted(children.get(name, []), key=lambda n: index[n]):  # stable: file order kept
            add(child)

    for name in top:
        add(name)
    return ordered


def sweep_document(control: Mapping[str, Any]) -> dict[str, Any]:
    """A sweep node's keys as azure-ai-ml writes them (its trial is the template `body`)."""
    sampling: dict[str, Any] = {"type": control.get("sampling", "random")}
    if control.get("seed") is not None:
        sampling["seed"] = control["seed"]
    limits = {"max_total_trials": control.get("max_trials")}
    if control.get("max_concurrency"):
        limits["max_concurrent_trials"] = control["max_concurrency"]
    if control.get("timeout"):
        limits["timeout"] = control["timeout"]
    document: dict[str, Any] = {
        "search_space": dict(control.get("space") or {}),
        "sampling_algorithm": sampling,
        "objective": {"goal": control.get("goal"), "primary_metric": control.get("metric")},
        "limits": limits,
    }
    if control.get("policy"):
        document["early_termination"] = dict(control["policy"])
    return document


def is_file_output(kind: str) -> bool:
    return kind in FILE_OUTPUTS


def job_output(ref: tuple[str, ...]) -> tuple[str, str] | None:
    """(step, output) of `${{parent.jobs.STEP.outputs.OUTPUT}}`; a flattened step's name has dots."""
    if len(ref) >= 5 and ref[:2] == ("parent", "jobs") and ref[-2] == "outputs":
        return ".".join(ref[2:-2]), ref[-1]
    return None


def optional_parts(command: str, present: Callable[[str], bool]) -> str:
    """A command with Azure ML's `$[[ ... ]]` parts kept (without the brackets) where every
    `${{inputs.X}}` they hold has a value (`present`), and left out where one has none."""
    if "$[[" not in command:
        return command

    def keep(match: re.Match[str]) -> str:
        names = [".".join(p.strip() for p in found.split(".")) for found in BINDING.findall(match.group(1))]
        return match.group(1) if all(present(name) for name in names) else ""

    return OPTIONAL_PART.sub(keep, command)


def bindings(value: Any) -> list[tuple[str, ...]]:
    """The `${{a.b.c}}` references in a value, as tuples of their parts."""
    if not isinstance(value, str):
        return []
    return [tuple(part.strip() for part in match.split(".")) for match in BINDING.findall(value)]
