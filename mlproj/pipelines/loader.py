"""Pipeline YAML → `mlproj.pipelines.model`: mlproj's dialect (design.md §6) and Azure ML v2 pipeline
jobs (§9), one loader for both, every problem of a file found and reported at once.

Errors name the file, the line and the key path (`jobs.train.inputs.data`); a problem in a component
names the component's file. `steps:` is accepted as an alias of `jobs:`. The jobs are read by
`mlproj.pipelines.steps`, after `mlproj.pipelines.components` has merged their components.
"""

from __future__ import annotations

from pathlib import Path

from mlproj.errors import SpecError
from mlproj.pipelines.model import (
    BINDING,
    INPUT_TYPES,
    TYPE_ALIASES,
    URI_TYPES,
    Pipeline,
    PipelineInput,
    Step,
    bindings,
    job_output,
    text_of,
)
from mlproj.pipelines.problems import Where
from mlproj.pipelines.reader import Reader
from mlproj.values import check

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from mlproj.pipelines.problems import Job

TOP_KEYS = (
    "type",
    "name",
    "display_name",
    "description",
    "experiment_name",
    "tags",
    "properties",
    "inputs",
    "outputs",
    "settings",
    "jobs",
    "steps",
    "compute",
    "$schema",
)
AZURE_TOP_IGNORED = ("identity", "services", "status", "creation_context", "id")
SETTINGS = (
    "continue_on_step_failure",
    "force_rerun",
    "max_parallel",
    "env_manager",
    "backend",
    "backend_config",
    "default_compute",
    "default_datastore",
    "default_environment",
)
# Keys that only Azure ML's dialect has: a file using one is read as Azure ML's (design.md §9).
AZURE_JOB_KEYS = (
    "component",
    "compute",
    "environment",
    "environment_variables",
    "limits",
    "retry_settings",
    "is_deterministic",
    "resources",
    "distribution",
    "properties",
    "services",
    "identity",
    "queue_settings",
)
INPUT_KEYS = ("type", "default", "optional", "description", "path", "mode", "value", "min", "max", "enum")


def load_pipeline(
    path: Path,
    *,
    as_file: Path | None = None,
    check_paths: bool = True,
    overrides: Sequence[str] = (),
    asset_map: Path | None = None,
) -> Pipeline:
    """Load and check a pipeline file. With `as_file`, the text of `path` (a run's copy of the file) is
    read as if it were `as_file`: errors name it, and relative paths resolve against its folder.
    Without `check_paths`, step folders need not exist (the structure of a past run). `overrides`:
    `--set KEY.PATH=VALUE`s, applied to the document first; `asset_map`: `--asset-map`."""
    from mlproj.yamlio import load_yaml_with_lines

    data, lines = load_yaml_with_lines(path.absolute())
    file = (as_file or path).absolute()
    if overrides:
        from mlproj.pipelines.overrides import apply_overrides

        data = apply_overrides(data, overrides, file)
    return PipelineReader(file, lines, check_paths=check_paths, asset_map=asset_map).pipeline(data)


def is_azure(data: dict[str, Any]) -> bool:
    """Whether a pipeline document is an Azure ML v2 pipeline job: its `$schema` says so, or it uses a
    key only Azure ML's dialect has."""
    schema = str(data.get("$schema") or "").lower()
    if "azureml" in schema or "pipelinejob" in schema:
        return True
    settings = data.get("settings")
    if isinstance(settings, dict) and any(k.startswith("default_") for k in settings):
        return True
    if any(key in data for key in ("compute", "properties", *AZURE_TOP_IGNORED)):
        return True
    outputs = data.get("outputs")
    if isinstance(outputs, dict) and any(not isinstance(v, str) for v in outputs.values()):
        return True
    jobs = data.get("jobs", data.get("steps"))
    return isinstance(jobs, dict) and any(
        isinstance(body, dict) and any(key in body for key in AZURE_JOB_KEYS) for body in jobs.values()
    )


class PipelineReader(Reader):
    """Reads one pipeline document, adding every problem it finds to `problems`."""

    def pipeline(self, data: Any) -> Pipeline:
        top = self.top
        if not isinstance(data, dict):
            raise SpecError(self.path, None, "expected a mapping at the top level")
        azure = is_azure(data)
        if data.get("type", "pipeline" if azure else None) != "pipeline":
            raise top.error("type", "expected `type: pipeline`")
        jobs_key, raw_jobs = self.top_keys(data)
        inputs = self.inputs(data.get("inputs"))
        settings = self.settings(data.get("settings"))
        outputs, jobs, resolve = self.jobs(raw_jobs, jobs_key, data.get("outputs"))
        from mlproj.pipelines.steps import StepReader

        reader = StepReader(self, azure=azure, default_environment=settings.get("default_environment"))
        steps = {job.name: step for job in jobs if (step := reader.step(job)) is not None}
        templates: dict[str, Step] = {}
        if any(step.is_control for step in steps.values()):
            from mlproj.pipelines.control_reader import link_controls

            templates = link_controls(self, steps, {job.name: job for job in jobs})
        default_compute = settings.get("default_compute", data.get("compute"))
        backend, backend_config = self.pipeline_backend(settings, default_compute)
        where = top.at("settings")
        pipeline = Pipeline(
            file=self.path,
            name=str(data.get("name") or data.get("display_name") or self.path.stem),
            description=self.optional_str(data, "description"),
            experiment_name=self.optional_str(data, "experiment_name"),
            tags=self.strings(data.get("tags"), top, "tags"),
            inputs=inputs,
            outputs={name: resolve(value) for name, value in outputs.items()},
            continue_on_step_failure=bool(
                self.boolean(settings, "continue_on_step_failure", where, default=False)
            ),
            force_rerun=bool(self.boolean(settings, "force_rerun", where, default=False)),
            max_parallel=self.positive_int(settings, "max_parallel", where),
            env_manager=self.env_manager(settings.get("env_manager"), top, "settings.env_manager"),
            backend=backend,
            backend_config=backend_config,
            steps=steps,
            templates=templates,
            jobs_key=jobs_key,
            lines=self.lines,
            display_name=self.optional_str(data, "display_name"),
            properties=self.strings(data.get("properties"), top, "properties"),
            settings={k: v for k, v in settings.items() if k not in SETTINGS or k == "default_datastore"},
            azure=azure,
        )
        by_name = {job.name: job for job in jobs}
        self.check_references(pipeline, by_name)
        if templates:
            from mlproj.pipelines.refs import check_step_references

            for name, template in templates.items():  # a loop's body, checked as the steps it becomes
                check_step_references(self, pipeline, template, by_name[name], set(by_name))
        if not self.problems:
            self.check_cycles(pipeline, jobs_key)
        self.problems.check(self.path)
        return pipeline

    def top_keys(self, data: dict[Any, Any]) -> tuple[str, dict[Any, Any]]:
        """The document's keys checked; (`jobs` or `steps`, the jobs)."""
        for key in data:
            if key in AZURE_TOP_IGNORED:
                from mlproj.notices import warn

                warn(f"{self.path}: {key} is an Azure ML setting with no meaning here: ignored")
            elif key not in TOP_KEYS:
                allowed = ", ".join(k for k in TOP_KEYS if k != "$schema")
                self.problem(self.top, str(key), f"unknown key (expected one of: {allowed})")
        if self.asset_map_file is not None:
            _ = self.assets  # a map given with --asset-map is read (and checked) even if nothing uses it
        if "jobs" in data and "steps" in data:
            self.problem(self.top, "steps", "give `jobs` or its alias `steps`, not both")
        jobs_key = "steps" if "steps" in data and "jobs" not in data else "jobs"
        raw_jobs = data.get(jobs_key)
        if not isinstance(raw_jobs, dict) or not raw_jobs:
            self.problem(self.top, jobs_key, "expected a mapping of steps")
            raw_jobs = {}
        return jobs_key, raw_jobs

    def settings(self, raw: Any) -> dict[Any, Any]:
        settings = self.mapping(raw, self.top, "settings")
        for key in settings:
            if key not in SETTINGS:
                from mlproj.notices import warn

                warn(f"{self.top.error(f'settings.{key}', 'unknown setting: kept, with no effect here')}")
        return settings

    def jobs(
        self, raw_jobs: dict[Any, Any], jobs_key: str, raw_outputs: Any
    ) -> tuple[dict[str, str], list[Job], Callable[[Any], Any]]:
        """(the pipeline's outputs, its jobs with their components merged, the function that names the
        step output a flattened pipeline's output is)."""
        from mlproj.pipelines.components import Expander

        declared, outputs = self.pipeline_outputs(raw_outputs)
        bound: dict[str, Where] = {}

        def on_parent_output(name: str, binding: str, where: Where) -> None:
            text = f"${{{{parent.outputs.{name}}}}}"
            if name not in declared:
                self.problem(where, "", f"{text}: the pipeline declares no output {name!r}")
            elif name in bound:
                self.problem(where, "", f"{text}: {bound[name].path} is bound to it already")
            else:
                bound[name] = where
                outputs[name] = binding

        expander = Expander(self.problems)
        jobs = expander.expand(raw_jobs, self.top.at(jobs_key), on_parent_output)
        for name in sorted(declared - set(outputs)):
            message = "no job's output is bound to it (OUTPUT: ${{parent.outputs.NAME}})"
            self.problem(self.top, f"outputs.{name}", message)
        return outputs, jobs, expander.resolve

    def pipeline_backend(
        self, settings: dict[Any, Any], compute: Any
    ) -> tuple[str | None, dict[str, Any] | None]:
        where = self.top.at("settings")
        backend = self.backend(settings, where)
        config = self.backend_config(settings, where)
        if backend is None and compute is not None:
            key = "settings.default_compute" if "default_compute" in settings else "compute"
            return self.compute(compute, self.top, key)
        return backend, config

    def inputs(self, raw: Any) -> dict[str, PipelineInput]:
        result = {}
        for name, body in self.mapping(raw, self.top, "inputs").items():
            if not self.name(self.top, "inputs", name):
                continue
            key = f"inputs.{name}"
            optional, description, limits = False, None, {}
            if isinstance(body, dict):
                for item in body:
                    if item not in INPUT_KEYS:
                        self.problem(
                            self.top,
                            f"{key}.{item}",
                            f"unknown key (expected one of: {', '.join(INPUT_KEYS)})",
                        )
                type_name = TYPE_ALIASES.get(str(body.get("type", "string")), body.get("type", "string"))
                default = body.get("path", body.get("value", body.get("default")))
                optional = body.get("optional") is True
                description = self.optional_str(body, "description")
                where_default = f"{key}.{'path' if 'path' in body else 'default'}"
                limits = self.limits(body, self.top, key)
            elif isinstance(body, list):
                self.problem(self.top, key, "expected a value, or {type, default} / {type, path}")
                continue
            else:  # `lr: 0.01`: a default whose type is read from the value
                default, type_name, where_default = body, _type_of(body), key
            if type_name not in INPUT_TYPES:
                self.problem(
                    self.top,
                    f"{key}.type",
                    f"unknown type {type_name!r} (expected one of: {', '.join(INPUT_TYPES)})",
                )
                continue
            if default is not None and type_name in URI_TYPES and isinstance(default, str):
                default = self.data_reference(default, self.top, where_default)
            if default is not None:
                problem = check("uri_folder" if type_name == "mltable" else type_name, text_of(default))
                if problem:
                    self.problem(self.top, where_default, problem)
                self.within(default, limits, self.top, where_default)
            result[str(name)] = PipelineInput(
                str(name), str(type_name), default, optional, description, limits
            )
        return result

    def pipeline_outputs(self, raw: Any) -> tuple[set[str], dict[str, str]]:
        """(outputs declared for jobs to bind, Azure's form; outputs given as bindings, mlproj's)."""
        declared: set[str] = set()
        outputs: dict[str, str] = {}
        for name, value in self.mapping(raw, self.top, "outputs").items():
            if not self.name(self.top, "outputs", name):
                continue
            if isinstance(value, str) and BINDING.search(value):
                refs = bindings(value)
                if len(refs) != 1 or job_output(refs[0]) is None:
                    self.problem(self.top, f"outputs.{name}", "expected ${{parent.jobs.STEP.outputs.NAME}}")
                    continue
                outputs[str(name)] = value
            elif value is None or isinstance(value, dict):
                declared.add(str(name))
            else:
                self.problem(
                    self.top, f"outputs.{name}", "expected ${{parent.jobs.STEP.outputs.NAME}} or {type: ...}"
                )
        return declared, outputs

    # --- references ----------------------------------------------------------------------------------

    def check_references(self, pipeline: Pipeline, jobs: dict[str, Job]) -> None:
        from mlproj.pipelines.refs import check_step_references

        names = set(jobs)
        for name, step in pipeline.steps.items():
            check_step_references(self, pipeline, step, jobs[name], names)
        for out_name, value in pipeline.outputs.items():
            refs = bindings(value)
            found = job_output(refs[0]) if len(refs) == 1 else None
            if found is None:
                self.problem(self.top, f"outputs.{out_name}", "expected ${{parent.jobs.STEP.outputs.NAME}}")
            elif found[0] not in names:
                self.problem(self.top, f"outputs.{out_name}", f"unknown step {found[0]!r}")
            elif found[0] in pipeline.steps and found[1] not in pipeline.steps[found[0]].outputs:
                self.problem(
                    self.top, f"outputs.{out_name}", f"step {found[0]!r} declares no output {found[1]!r}"
                )

    def check_cycles(self, pipeline: Pipeline, jobs_key: str) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        path: list[str] = []

        def visit(name: str) -> None:
            state[name] = 1
            path.append(name)
            for up in sorted(pipeline.steps[name].upstream()):
                if up not in pipeline.steps:
                    continue
                if state.get(up) == 1:
                    cycle = [*path[path.index(up) :], up]
                    raise self.top.error(f"{jobs_key}.{up}", f"cycle: {' -> '.join(reversed(cycle))}")
                if up not in state:
                    visit(up)
            path.pop()
            state[name] = 2

        for name in pipeline.steps:
            if name not in state:
                visit(name)

    # --- scalars -------------------------------------------------------------------------------------


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"
