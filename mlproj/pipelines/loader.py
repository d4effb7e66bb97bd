"""Pipeline YAML (design.md §6) → `mlproj.pipelines.model`, every problem found at load time.

Errors name the file, the key path (`jobs.train.inputs.data`) and, where YAML gives it, the line.
`steps:` is accepted as an alias of `jobs:`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlproj.errors import SpecError
from mlproj.pipelines.model import (
    BINDING,
    INPUT_TYPES,
    NAME,
    OUTPUT_TYPES,
    STEP_TYPES,
    Pipeline,
    PipelineInput,
    Step,
    bindings,
    command_template,
    text_of,
)
from mlproj.quoting import TemplateError
from mlproj.values import check

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

_TOP_KEYS = {
    "type",
    "name",
    "display_name",
    "description",
    "experiment_name",
    "tags",
    "inputs",
    "outputs",
    "settings",
    "jobs",
    "steps",
    "$schema",
}
_SETTINGS = {
    "continue_on_step_failure",
    "force_rerun",
    "max_parallel",
    "env_manager",
    "default_compute",
    "backend",
    "backend_config",
}
_COMMON_STEP_KEYS = {
    "type",
    "inputs",
    "outputs",
    "depends_on",
    "retries",
    "timeout",
    "allow_reuse",
    "display_name",
    "description",
    "env_manager",
    "backend",
    "backend_config",
}
_STEP_KEYS = {
    "mlflow_project": _COMMON_STEP_KEYS | {"uri", "version", "entry_point", "parameters"},
    "command": _COMMON_STEP_KEYS | {"code", "command"},
}


def load_pipeline(path: Path, *, as_file: Path | None = None, check_paths: bool = True) -> Pipeline:
    """Load and check a pipeline file. With `as_file`, the text of `path` (a run's copy of the file) is
    read as if it were `as_file`: errors name it, and relative paths resolve against its folder.
    Without `check_paths`, step folders need not exist (the structure of a past run)."""
    from mlproj.yamlio import load_yaml_with_lines

    data, lines = load_yaml_with_lines(path.absolute())
    return _Loader((as_file or path).absolute(), lines, check_paths=check_paths).pipeline(data)


class _Loader:
    def __init__(self, path: Path, lines: dict[str, int], *, check_paths: bool = True) -> None:
        self.path = path
        self.lines = lines
        self.check_paths = check_paths

    def error(self, key: str, message: str) -> SpecError:
        line = self.lines.get(key)
        while line is None and "." in key:
            key_parent = key.rsplit(".", 1)[0]
            line = self.lines.get(key_parent)
            if line is not None:
                break
            key = key_parent
        return SpecError(self.path, key, message, line=line)

    # --- the document ------------------------------------------------------------------------------

    def pipeline(self, data: Any) -> Pipeline:
        if not isinstance(data, dict):
            raise SpecError(self.path, None, "expected a mapping at the top level")
        if data.get("type") != "pipeline":
            raise self.error("type", "expected `type: pipeline`")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise self.error(
                unknown[0], f"unknown key (expected one of: {', '.join(sorted(_TOP_KEYS - {'$schema'}))})"
            )
        if "jobs" in data and "steps" in data:
            raise self.error("steps", "give `jobs` or its alias `steps`, not both")
        jobs_key = "steps" if "steps" in data else "jobs"
        raw_steps = data.get(jobs_key)
        if not isinstance(raw_steps, dict) or not raw_steps:
            raise self.error(jobs_key, "expected a mapping of steps")
        inputs = self.inputs(data.get("inputs"))
        settings = self.mapping(data.get("settings"), "settings")
        for key in settings:
            if key not in _SETTINGS:
                raise self.error(
                    f"settings.{key}", f"unknown setting (expected one of: {', '.join(sorted(_SETTINGS))})"
                )
        steps = {
            self.name(jobs_key, name): self.step(jobs_key, str(name), body)
            for name, body in raw_steps.items()
        }
        pipeline = Pipeline(
            file=self.path,
            name=str(data.get("name") or data.get("display_name") or self.path.stem),
            description=self.optional_str(data, "description"),
            experiment_name=self.optional_str(data, "experiment_name"),
            tags={str(k): str(v) for k, v in self.mapping(data.get("tags"), "tags").items()},
            inputs=inputs,
            outputs={
                self.name("outputs", k): v for k, v in self.mapping(data.get("outputs"), "outputs").items()
            },
            continue_on_step_failure=self.boolean(
                settings, "continue_on_step_failure", "settings", default=False
            ),
            force_rerun=self.boolean(settings, "force_rerun", "settings", default=False),
            max_parallel=self.positive_int(settings, "max_parallel", "settings"),
            env_manager=self.env_manager(settings.get("env_manager"), "settings.env_manager"),
            backend=self.backend(settings, "settings"),
            backend_config=self.backend_config(settings, "settings"),
            steps=steps,
            jobs_key=jobs_key,
            lines=self.lines,
        )
        self.check_bindings(pipeline, jobs_key)
        self.check_cycles(pipeline, jobs_key)
        return pipeline

    def inputs(self, raw: Any) -> dict[str, PipelineInput]:
        result = {}
        for name, body in self.mapping(raw, "inputs").items():
            key = f"inputs.{self.name('inputs', name)}"
            if isinstance(body, dict):
                type_name = body.get("type", "string")
                if type_name not in INPUT_TYPES:
                    raise self.error(
                        f"{key}.type",
                        f"unknown type {type_name!r} (expected one of: {', '.join(INPUT_TYPES)})",
                    )
                default = body.get("default")
            else:  # `lr: 0.01`: a default whose type is read from the value
                default = body
                type_name = _type_of(body)
            if default is not None:
                problem = check(type_name, text_of(default))
                if problem:
                    raise self.error(f"{key}.default" if isinstance(body, dict) else key, problem)
            result[str(name)] = PipelineInput(str(name), type_name, default)
        return result

    def step(self, jobs_key: str, name: str, body: Any) -> Step:
        key = f"{jobs_key}.{name}"
        if not isinstance(body, dict):
            raise self.error(key, "expected a mapping with a type")
        step_type = body.get("type", "command" if "command" in body else None)
        if step_type not in STEP_TYPES:
            raise self.error(
                f"{key}.type", f"unknown step type {step_type!r} (expected one of: {', '.join(STEP_TYPES)})"
            )
        for item in body:
            if item not in _STEP_KEYS[step_type]:
                allowed = ", ".join(sorted(_STEP_KEYS[step_type]))
                raise self.error(
                    f"{key}.{item}", f"unknown key for a {step_type} step (expected one of: {allowed})"
                )
        outputs = self.step_outputs(body.get("outputs"), f"{key}.outputs")
        depends_on = body.get("depends_on") or []
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise self.error(f"{key}.depends_on", "expected a list of step names")
        common: dict[str, Any] = {
            "name": name,
            "type": step_type,
            "inputs": {
                self.name(f"{key}.inputs", k): v
                for k, v in self.mapping(body.get("inputs"), f"{key}.inputs").items()
            },
            "outputs": outputs,
            "depends_on": tuple(depends_on),
            "retries": self.positive_int(body, "retries", key, minimum=0) or 0,
            "timeout": self.positive_number(body, "timeout", key),
            "allow_reuse": self.boolean(body, "allow_reuse", key, default=True),
            "env_manager": self.env_manager(body.get("env_manager"), f"{key}.env_manager"),
            "backend": self.backend(body, key),
            "backend_config": self.backend_config(body, key),
        }
        if step_type == "mlflow_project":
            uri = body.get("uri")
            if not isinstance(uri, str) or not uri.strip():
                raise self.error(
                    f"{key}.uri", "expected the project's folder (relative to this file) or Git URI"
                )
            entry_point = body.get("entry_point") or "main"
            version = body.get("version")
            return Step(
                **common,
                uri=uri.strip(),
                version=None if version is None else str(version),
                entry_point=str(entry_point),
                parameters={
                    str(k): v for k, v in self.mapping(body.get("parameters"), f"{key}.parameters").items()
                },
            )
        command = body.get("command")
        if not isinstance(command, str) or not command.strip():
            raise self.error(f"{key}.command", "expected a command")
        code = body.get("code")
        if code is not None and not isinstance(code, str):
            raise self.error(f"{key}.code", "expected a folder (relative to this file)")
        if code is not None and self.check_paths and not (self.path.parent / code).is_dir():
            raise self.error(f"{key}.code", f"no such folder: {self.path.parent / str(code)}")
        return Step(**common, command=command, code=code)

    def step_outputs(self, raw: Any, key: str) -> dict[str, str]:
        outputs = {}
        for out_name, out_body in self.mapping(raw, key).items():
            self.name(key, out_name)
            out_type = out_body.get("type", "uri_folder") if isinstance(out_body, dict) else out_body
            if out_type not in OUTPUT_TYPES:
                raise self.error(
                    f"{key}.{out_name}", f"expected type uri_folder or uri_file, got {out_type!r}"
                )
            outputs[str(out_name)] = str(out_type)
        return outputs

    # --- references ----------------------------------------------------------------------------------

    def check_bindings(self, pipeline: Pipeline, jobs_key: str) -> None:
        for name, step in pipeline.steps.items():
            key = f"{jobs_key}.{name}"
            for dep in step.depends_on:
                if dep not in pipeline.steps:
                    raise self.error(f"{key}.depends_on", f"unknown step {dep!r}")
                if dep == name:
                    raise self.error(f"{key}.depends_on", "a step cannot depend on itself")
            for section, values in (("inputs", step.inputs), ("parameters", step.parameters)):
                for item, value in values.items():
                    self.check_refs(
                        pipeline, step, f"{key}.{section}.{item}", value, inside_step=section == "parameters"
                    )
            if step.command is not None:
                self.check_refs(pipeline, step, f"{key}.command", step.command, inside_step=True)
                self.check_command(pipeline, step, f"{key}.command")
        for out_name, value in pipeline.outputs.items():
            refs = bindings(value)
            if len(refs) != 1 or refs[0][:2] != ("parent", "jobs"):
                raise self.error(f"outputs.{out_name}", "expected ${{parent.jobs.STEP.outputs.NAME}}")
            self.check_refs(pipeline, None, f"outputs.{out_name}", value, inside_step=False)

    def check_refs(
        self, pipeline: Pipeline, step: Step | None, key: str, value: Any, *, inside_step: bool
    ) -> None:
        for ref in bindings(value):
            text = "${{" + ".".join(ref) + "}}"
            if ref[:2] == ("parent", "inputs") and len(ref) == 3:
                if ref[2] not in pipeline.inputs:
                    raise self.error(key, f"{text}: the pipeline has no input {ref[2]!r}")
            elif ref[:2] == ("parent", "jobs") and len(ref) == 5 and ref[3] == "outputs":
                upstream = pipeline.steps.get(ref[2])
                if upstream is None:
                    raise self.error(key, f"{text}: unknown step {ref[2]!r}")
                if step is not None and upstream.name == step.name:
                    raise self.error(
                        key,
                        f"{text}: a step uses its own outputs as ${{{{outputs.{ref[4]}}}}}",
                    )
                if ref[4] not in upstream.outputs:
                    raise self.error(key, f"{text}: step {ref[2]!r} declares no output {ref[4]!r}")
            elif inside_step and step is not None and ref[0] == "inputs" and len(ref) == 2:
                if ref[1] not in step.inputs:
                    raise self.error(key, f"{text}: this step declares no input {ref[1]!r}")
            elif inside_step and step is not None and ref[0] == "outputs" and len(ref) == 2:
                if ref[1] not in step.outputs:
                    raise self.error(key, f"{text}: this step declares no output {ref[1]!r}")
            else:
                raise self.error(key, f"{text}: not a binding this place understands")

    def check_command(self, pipeline: Pipeline, step: Step, key: str) -> None:
        """Every binding of a command must stand where a value can be quoted (see mlproj.quoting);
        where only an integer is safe, it must be bound to an integer."""
        command = step.command or ""
        line = self.lines.get(key)

        def file_line(command_line: int) -> int | None:
            return None if line is None else line + (command_line if "\n" in command.strip() else 0)

        try:
            template = command_template(command)
        except TemplateError as exc:
            raise SpecError(self.path, key, str(exc), line=file_line(exc.line)) from None

        def integer(name: str) -> bool:
            ref = tuple(name.split("."))
            if ref[:2] == ("parent", "inputs"):
                return pipeline.inputs[ref[2]].type == "integer"
            if ref[0] == "inputs":
                value = step.inputs[ref[1]]
                if isinstance(value, int) and not isinstance(value, bool):
                    return True
                whole = BINDING.fullmatch(value.strip()) if isinstance(value, str) else None
                return whole is not None and integer(".".join(p.strip() for p in whole.group(1).split(".")))
            return False

        for name, slot, why in template.problems(integer):
            message = f"${{{{{name}}}}} cannot take a value safely: {why}"
            raise SpecError(self.path, key, message, line=file_line(slot.line))

    def check_cycles(self, pipeline: Pipeline, jobs_key: str) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        path: list[str] = []

        def visit(name: str) -> None:
            state[name] = 1
            path.append(name)
            for up in sorted(pipeline.steps[name].upstream()):
                if state.get(up) == 1:
                    cycle = [*path[path.index(up) :], up]
                    raise self.error(f"{jobs_key}.{up}", f"cycle: {' -> '.join(reversed(cycle))}")
                if up not in state:
                    visit(up)
            path.pop()
            state[name] = 2

        for name in pipeline.steps:
            if name not in state:
                visit(name)

    # --- scalars -------------------------------------------------------------------------------------

    def name(self, where: str, value: Any) -> str:
        """A step, input or output name: it stands in bindings and names folders of the run."""
        text = str(value)
        if not NAME.fullmatch(text):
            raise self.error(
                f"{where}.{text}",
                f"{text!r}: a name is letters, digits, '_' and '-', starting with a letter or '_'",
            )
        return text

    def mapping(self, value: Any, key: str) -> dict[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(key, "expected a mapping")
        return value

    def optional_str(self, data: Mapping[str, Any], key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    def boolean(self, data: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"{where}.{key}", f"expected true or false, got {value!r}")
        return value

    def positive_int(self, data: Mapping[str, Any], key: str, where: str, minimum: int = 1) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(
                f"{where}.{key}", f"expected a whole number of at least {minimum}, got {value!r}"
            )
        return value

    def positive_number(self, data: Mapping[str, Any], key: str, where: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.error(f"{where}.{key}", f"expected a positive number of seconds, got {value!r}")
        return float(value)

    def backend(self, data: Mapping[str, Any], where: str) -> str | None:
        """A backend name; unknown ones are errors here (their configuration is checked in `plan`)."""
        from mlproj.backends import get_backend
        from mlproj.errors import InputError

        value = data.get("backend")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{where}.backend", f"expected the name of a backend, got {value!r}")
        try:
            get_backend(value.strip())
        except InputError as exc:
            raise self.error(f"{where}.backend", str(exc)) from None
        return value.strip()

    def backend_config(self, data: Mapping[str, Any], where: str) -> dict[str, Any] | None:
        value = data.get("backend_config")
        if value is None:
            return None
        return dict(self.mapping(value, f"{where}.backend_config"))

    def env_manager(self, value: Any, key: str) -> str | None:
        from mlproj.envs import MANAGERS

        if value is None:
            return None
        if value not in MANAGERS:
            raise self.error(
                key, f"unknown environment manager {value!r} (expected one of: {', '.join(MANAGERS)})"
            )
        return str(value)


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"
