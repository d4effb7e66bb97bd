"""Azure ML components in a pipeline (design.md §9): a job's `component:` (a file, or inline) merged
with the job, and pipeline components flattened into one DAG whose steps are named `outer.inner`.

What comes out is one body per step, in the keys the loader reads for either dialect, and for each key
the file and key path it was written at, so that a problem in a component names the component's file.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlproj.pipelines.model import LIMIT_KEYS
from mlproj.pipelines.problems import Job, Problems, Where
from mlproj.pipelines.scopes import (
    JOB_OUTPUT,
    OUTPUT_BINDING,
    absolute_paths,
    input_value,
    job_output_binding,
    pipelines_used,
    prefixed_jobs,
    rewrite,
)

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

AZURE_ONLY = ("spark", "automl", "data_transfer", "import")  # refused: they need Azure itself
NOT_YET: tuple[str, ...] = ()
# A command component's keys that become its job's (the job's own keys win).
COMPONENT_KEYS = (
    "code",
    "command",
    "environment",
    "environment_variables",
    "resources",
    "distribution",
    "is_deterministic",
    "display_name",
    "description",
    "tags",
    "properties",
)
PIPELINE_COMPONENT_KEYS = (
    "$schema",
    "type",
    "name",
    "version",
    "display_name",
    "description",
    "tags",
    "inputs",
    "outputs",
    "jobs",
    "settings",
)
PIPELINE_JOB_KEYS = (
    "type",
    "inputs",
    "outputs",
    "compute",
    "depends_on",
    "display_name",
    "description",
    "tags",
    "properties",
    "experiment_name",
)
SCOPED_KEYS = ("inputs", "parameters", "condition", "items")  # where ${{parent...}} is the component's
COMPONENT_ONLY = ("$schema", "type", "name", "version", "inputs", "outputs", "jobs", "settings")


class Expander:
    """Reads the jobs of a pipeline document into steps: components merged, pipelines flattened."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.aliases: dict[tuple[str, str], str] = {}  # (pipeline job, its output) → the step output
        self.pipeline_jobs: set[str] = set()
        # A pipeline job's declared inputs, and where its jobs use them (a loop's body: loop_bodies).
        self.pipeline_inputs: dict[str, list[str]] = {}
        self.input_uses: dict[str, list[tuple[str, str, str, bool]]] = {}
        self._components: dict[Path, tuple[Any, dict[str, int]] | None] = {}
        self._expanding: list[Path] = []  # the pipeline components being flattened (a cycle is an error)

    def expand(
        self, jobs: dict[Any, Any], where: Where, on_parent_output: Callable[[str, str, Where], None]
    ) -> list[Job]:
        """The steps of a top-level `jobs` mapping; `on_parent_output(name, binding, where)` is told of
        each `${{parent.outputs.NAME}}` a job's output is bound to."""
        found: list[Job] = []
        for name, body in jobs.items():
            found += self.job(str(name), body, where.at(str(name)), "", None, on_parent_output)
        self._resolve_aliases(found)
        if self.pipeline_jobs:
            from mlproj.pipelines.loop_bodies import describe

            describe(found, self)
        return found

    # --- one job ---------------------------------------------------------------------------------------

    def job(
        self,
        name: str,
        body: Any,
        where: Where,
        prefix: str,
        values: dict[str, Any] | None,
        on_parent_output: Callable[[str, str, Where], None],
    ) -> list[Job]:
        flat = prefix + name
        if not isinstance(body, dict):
            self.problems.add(where.error("", "expected a mapping (a job)"))
            return []
        kind = body.get("type")
        if kind in AZURE_ONLY:
            self.problems.add(
                where.error(
                    "type", f"job {flat!r} is an Azure ML {kind} job: it needs Azure, mlproj does not run it"
                )
            )
            return []
        if kind in NOT_YET:
            self.problems.add(where.error("type", f"job {flat!r}: mlproj does not run {kind} jobs yet"))
            return []
        if prefix and values is not None:
            from mlproj.pipelines.loop_bodies import parent_input_uses

            self.input_uses.setdefault(prefix[:-1], []).extend(parent_input_uses(body, flat))
        body = self._in_scope(dict(body), where, prefix, values)
        job = Job(flat, body, where)
        if kind == "sweep" and "trial" in body:  # azure-ai-ml's form; a run's copy names its body
            from mlproj.pipelines.sweep_jobs import expand_sweep

            return expand_sweep(self, job, on_parent_output)
        component = body.pop("component", None)
        if component is not None:
            return self._with_component(job, component, on_parent_output)
        if kind == "pipeline":
            self.problems.add(where.error("component", "a pipeline job needs its pipeline `component:`"))
            return []
        if kind == "parallel":
            from mlproj.pipelines.parallel_jobs import to_command

            converted = to_command(job.body, where, self.problems)
            if converted is None:
                return []
            job.body = converted
        self._bind_outputs(job, on_parent_output)
        return [job]

    def _with_component(
        self, job: Job, component: Any, on_parent_output: Callable[[str, str, Where], None]
    ) -> list[Job]:
        """A job with its `component:`: a pipeline's flattened, a command's (or parallel's) merged."""
        loaded = self.component(component, job)
        if loaded is None:
            return []
        data, comp_where = loaded
        ctype = data.get("type", "command")
        if ctype == "pipeline":
            return self.flatten(job, data, comp_where, on_parent_output)
        if ctype == "parallel":  # the job's own parallel keys over the component's
            from mlproj.pipelines.parallel_jobs import PARALLEL_KEYS, to_command

            mine = {key: job.body.pop(key) for key in PARALLEL_KEYS if key in job.body}
            scale = {"resources": job.body["resources"]} if "resources" in job.body else {}  # instances
            converted = to_command({**data, **mine, **scale}, comp_where, self.problems)
            if converted is None:
                return []
            data, ctype = converted, "command"
        if ctype != "command":
            self.problems.add(comp_where.error("type", self._kind_message(ctype, job.name)))
            return []
        self.merge(job, data, comp_where)
        self._bind_outputs(job, on_parent_output)
        return [job]

    def _in_scope(
        self, body: dict[str, Any], where: Where, prefix: str, values: dict[str, Any] | None
    ) -> dict[str, Any]:
        """A job inside a pipeline component in the enclosing pipeline's terms (see `scopes.rewrite`)."""
        if not prefix and values is None:
            return body
        unknown: list[str] = []
        body = {
            key: rewrite(value, values, prefix, unknown) if key in SCOPED_KEYS else value
            for key, value in body.items()
        }
        for key in ("body", "true_block", "false_block"):  # a control node's jobs: its siblings
            if key in body and prefix:
                body[key] = prefixed_jobs(body[key], prefix)
        for missing in sorted(set(unknown)):
            message = (
                f"${{{{parent.inputs.{missing}}}}}: the pipeline component declares no input {missing!r}"
            )
            self.problems.add(where.error("inputs", message))
        if unknown and isinstance(body.get("inputs"), dict):  # said once: not again as the top's
            body["inputs"] = {k: v for k, v in body["inputs"].items() if "parent.inputs" not in str(v)}
        if prefix and isinstance(body.get("depends_on"), list):
            body["depends_on"] = [prefix + str(d) for d in body["depends_on"]]
        if prefix and isinstance(body.get("command"), str) and "parent.inputs" in body["command"]:
            self.problems.add(
                where.error(
                    "command",
                    "a job inside a pipeline component uses its own inputs "
                    "(${{inputs.NAME}}), not ${{parent.inputs...}}",
                )
            )
        return body

    @staticmethod
    def _kind_message(kind: Any, flat: str) -> str:
        if kind in AZURE_ONLY:
            return f"job {flat!r} uses an Azure ML {kind} component: it needs Azure, mlproj does not run it"
        if kind in NOT_YET:
            return f"job {flat!r}: mlproj does not run {kind} components yet"
        return f"unknown component type {kind!r} (expected command or pipeline)"

    def _bind_outputs(self, job: Job, on_parent_output: Callable[[str, str, Where], None]) -> None:
        """`out: ${{parent.outputs.x}}`: the step declares `out` (a folder unless its component says
        otherwise) and the enclosing pipeline's output `x` is it."""
        outputs = job.body.get("outputs")
        if not isinstance(outputs, dict):
            return
        outputs = dict(outputs)
        for out, value in outputs.items():
            if isinstance(value, dict) and isinstance(value.get("path"), str):
                bound = OUTPUT_BINDING.match(value["path"])
                if bound:
                    on_parent_output(
                        bound.group(1), job_output_binding(job.name, str(out)), job.where.at(f"outputs.{out}")
                    )
                    outputs[out] = {k: v for k, v in value.items() if k != "path"}
                continue
            if isinstance(value, str):
                bound = OUTPUT_BINDING.match(value)
                if bound:
                    on_parent_output(
                        bound.group(1), job_output_binding(job.name, str(out)), job.where.at(f"outputs.{out}")
                    )
                    outputs[out] = None
        job.body["outputs"] = outputs

    # --- components --------------------------------------------------------------------------------

    def component(self, value: Any, job: Job, key: str = "component") -> tuple[dict[str, Any], Where] | None:
        """A component: inline, or read from its file (relative to the job's file)."""
        from mlproj.errors import SpecError
        from mlproj.yamlio import load_yaml_with_lines

        if isinstance(value, dict):
            return value, job.where.at(key)
        if not isinstance(value, str) or not value.strip():
            self.problems.add(job.where.error(key, "expected a component file (./component.yml)"))
            return None
        text = value.strip()
        if text.lower().startswith("azureml:"):
            self.problems.add(
                job.where.error(
                    "component",
                    f"{text}: a registered component cannot be read here; "
                    "give its file (component: ./component.yml)",
                )
            )
            return None
        text = text[len("file:") :] if text.startswith("file:") else text
        path = (job.where.file.parent / Path(text).expanduser()).absolute()
        if path not in self._components:
            if not path.is_file():
                self.problems.add(job.where.error(key, f"no such component file: {path}"))
                self._components[path] = None
            else:
                try:
                    self._components[path] = load_yaml_with_lines(path)
                except SpecError as exc:
                    self.problems.add(exc)
                    self._components[path] = None
        loaded = self._components[path]
        if loaded is None:
            return None
        data, lines = loaded
        if not isinstance(data, dict):
            self.problems.add(SpecError(path, None, "expected a mapping (a component)"))
            return None
        return data, Where(path, "", lines)

    def merge(self, job: Job, component: dict[str, Any], where: Where) -> None:
        """A command component's definition under its job: the component's keys, the job's over them,
        and its declared inputs and outputs given their values."""
        for key in component:
            if key not in COMPONENT_KEYS and key not in COMPONENT_ONLY:
                if key == "additional_includes":
                    from mlproj.notices import warn

                    warn(f"{where.file}: additional_includes is not copied: the step runs its code folder")
                    continue
                allowed = ", ".join(
                    sorted({*COMPONENT_KEYS, *COMPONENT_ONLY} - {"$schema", "jobs", "settings"})
                )
                self.problems.add(
                    where.error(str(key), f"unknown key for a command component (expected one of: {allowed})")
                )
        merged: dict[str, Any] = {}
        for key in COMPONENT_KEYS:
            if key in component:
                merged[key] = component[key]
                job.origins[key] = where
        for key, value in job.body.items():
            if key not in ("inputs", "outputs"):
                merged[key] = value
                job.origins.pop(key, None)
        merged["type"] = "command"
        merged["inputs"] = self._inputs(job, component, where)
        merged["outputs"] = self._outputs(job, component, where)
        job.body = merged

    def _declared(self, component: dict[str, Any], key: str, where: Where) -> dict[str, Any]:
        declared = component.get(key) or {}
        if not isinstance(declared, dict):
            self.problems.add(where.error(key, "expected a mapping of names"))
            return {}
        return {str(name): body for name, body in declared.items()}

    def _declared_and_given(
        self, job: Job, component: dict[str, Any], where: Where, section: str
    ) -> tuple[dict[str, Any], dict[Any, Any]]:
        """(what the component declares in `section`, what the job gives); a name the component does
        not declare is a problem."""
        declared = self._declared(component, section, where)
        given = job.body.get(section) or {}
        if not isinstance(given, dict):
            self.problems.add(job.where.error(section, f"expected a mapping of {section}"))
            given = {}
        for name in given:
            if str(name) not in declared:
                names = ", ".join(sorted(declared)) or "none"
                what = section[:-1]
                message = f"component {where.file} declares no {what} {str(name)!r} (declared: {names})"
                self.problems.add(job.where.error(f"{section}.{name}", message))
        return declared, given

    def _inputs(self, job: Job, component: dict[str, Any], where: Where) -> dict[str, Any]:
        declared, given = self._declared_and_given(job, component, where, "inputs")
        result: dict[str, Any] = {}
        for name, declaration in declared.items():
            spec = declaration if isinstance(declaration, dict) else {"type": declaration}
            kind = spec.get("type", "string")
            limits = {key: spec[key] for key in LIMIT_KEYS if key in spec}
            if name in given:
                value = given[name]
                if isinstance(value, dict):
                    result[name] = {"type": kind, **limits, **value}
                elif value is None:
                    result[name] = {"type": kind, "optional": True}
                else:
                    result[name] = {"type": kind, **limits, "value": value}
            elif spec.get("default") is not None:
                result[name] = {"type": kind, **limits, "default": spec["default"]}
                job.origins[f"inputs.{name}"] = where
            elif spec.get("optional") is True:
                result[name] = {"type": kind, "optional": True}
                job.origins[f"inputs.{name}"] = where
            else:
                job.missing.add(name)
                result[name] = {"type": kind, "optional": True}
                self.problems.add(
                    job.where.error(
                        f"inputs.{name}",
                        f"no value for the component's required input {name!r} ({where.file})",
                    )
                )
        absolute_paths(result, job.folder)
        return result

    def _outputs(self, job: Job, component: dict[str, Any], where: Where) -> dict[str, Any]:
        declared, given = self._declared_and_given(job, component, where, "outputs")
        result: dict[str, Any] = {}
        for name, declaration in declared.items():
            spec = dict(declaration) if isinstance(declaration, dict) else {}
            spec.setdefault("type", "uri_folder")
            value = given.get(name)
            if isinstance(value, dict):
                result[name] = {**spec, **value}
            elif isinstance(value, str) and OUTPUT_BINDING.match(value):
                result[name] = {**spec, "path": value}
            else:
                result[name] = spec
                if value is not None:
                    result[name] = value  # the loader says what is wrong with it
        return result

    # --- pipeline components -----------------------------------------------------------------------

    def flatten(
        self,
        job: Job,
        component: dict[str, Any],
        where: Where,
        on_parent_output: Callable[[str, str, Where], None],
    ) -> list[Job]:
        """A pipeline component's jobs as steps `job.inner`, its inputs given their job's values; the
        job's `depends_on` holds for each of them."""
        if where.file in self._expanding:
            self.problems.add(job.where.error("component", f"{where.file} includes itself"))
            return []
        self.pipeline_jobs.add(job.name)
        for key in component:
            if key not in PIPELINE_COMPONENT_KEYS:
                self.problems.add(where.error(str(key), "unknown key for a pipeline component"))
        for key in job.body:
            if key not in PIPELINE_JOB_KEYS:
                allowed = ", ".join(sorted(PIPELINE_JOB_KEYS))
                self.problems.add(
                    job.where.error(str(key), f"unknown key for a pipeline job (expected one of: {allowed})")
                )
        jobs = component.get("jobs")
        if not isinstance(jobs, dict) or not jobs:
            self.problems.add(where.error("jobs", "expected a mapping of jobs"))
            return []
        inner_values = {name: input_value(body) for name, body in self._inputs(job, component, where).items()}
        self.pipeline_inputs[job.name] = list(inner_values)
        self._pipeline_outputs(job, on_parent_output)

        def inner_output(name: str, binding: str, _where: Where) -> None:
            self.aliases[(job.name, name)] = binding

        compute = job.body.get("compute")
        found: list[Job] = []
        self._expanding.append(where.file)
        try:
            for name, inner in jobs.items():
                body = inner
                if compute is not None and isinstance(inner, dict) and "compute" not in inner:
                    body = {**inner, "compute": compute}
                at = where.at(f"jobs.{name}")
                found += self.job(str(name), body, at, job.name + ".", inner_values, inner_output)
        finally:
            self._expanding.pop()
        after = self._depends_on(job)
        for inner_job in found:
            own = inner_job.body.get("depends_on")
            inner_job.body["depends_on"] = [*(own if isinstance(own, list) else [own] if own else []), *after]
        for out in self._declared(component, "outputs", where):
            if (job.name, out) not in self.aliases:
                self.problems.add(
                    where.error(f"outputs.{out}", "no job of the pipeline component is bound to it")
                )
        return found

    def _pipeline_outputs(self, job: Job, on_parent_output: Callable[[str, str, Where], None]) -> None:
        """A pipeline job's outputs: each bound to an output of its own pipeline, or nothing."""
        outputs = job.body.get("outputs")
        if outputs is not None and not isinstance(outputs, dict):
            self.problems.add(job.where.error("outputs", "expected a mapping of outputs"))
            return
        for out, value in (outputs or {}).items():
            bound = OUTPUT_BINDING.match(value) if isinstance(value, str) else None
            if bound is not None:
                on_parent_output(
                    bound.group(1), job_output_binding(job.name, str(out)), job.where.at(f"outputs.{out}")
                )
            elif value is not None and not (isinstance(value, dict) and not value.get("path")):
                self.problems.add(
                    job.where.error(f"outputs.{out}", "expected ${{parent.outputs.NAME}} or nothing")
                )

    def _depends_on(self, job: Job) -> list[str]:
        depends = job.body.get("depends_on") or []
        depends = [depends] if isinstance(depends, str) else depends
        if not isinstance(depends, list) or not all(isinstance(name, str) for name in depends):
            self.problems.add(job.where.error("depends_on", "expected a list of step names"))
            return []
        return depends

    def _resolve_aliases(self, jobs: list[Job]) -> None:
        """`${{parent.jobs.P.outputs.x}}` where P is a flattened pipeline → the step output it is; the
        step then waits for all of P, as Azure ML waits for a pipeline component's node."""
        if not self.pipeline_jobs:
            return
        names = [job.name for job in jobs]
        for job in jobs:
            waits: list[str] = []
            for key in ("inputs", "parameters", "command", "condition", "items"):
                if key in job.body:
                    for used in pipelines_used(job.body[key], self.pipeline_jobs):
                        waits += [name for name in names if name.startswith(f"{used}.")]
                    job.body[key] = self.resolve(job.body[key])
            depends = job.body.get("depends_on")
            if isinstance(depends, list):
                expanded: list[Any] = []
                for name in depends:
                    if isinstance(name, str) and name in self.pipeline_jobs:
                        expanded += [inner for inner in names if inner.startswith(f"{name}.")]
                    else:
                        expanded.append(name)
                job.body["depends_on"] = expanded + [name for name in waits if name not in expanded]
            elif waits and depends is None:
                job.body["depends_on"] = waits

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if not isinstance(value, str):
            return value
        for _ in range(32):  # nested pipelines: an alias may name another

            def replace(match: re.Match[str]) -> str:
                found = self.aliases.get((match.group(1), match.group(2)))
                return found if found is not None else match.group(0)

            changed = JOB_OUTPUT.sub(replace, value)
            if changed == value:
                break
            value = changed
        return value
