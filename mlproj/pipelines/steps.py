"""One step of a pipeline read into a `Step`: mlproj's keys (design.md §6) and Azure ML's (§9), from a
job whose component `mlproj.pipelines.components` has merged. Problems go to the reader's list."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlproj.pipelines.model import (
    BINDING,
    CONTROL_TYPES,
    INPUT_TYPES,
    NAME,
    OUTPUT_TYPES,
    STEP_TYPES,
    TYPE_ALIASES,
    URI_TYPES,
    Step,
    out_of_limits,
    text_of,
)
from mlproj.values import check

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.pipelines.problems import Job, Where
    from mlproj.pipelines.reader import Reader

COMMON_KEYS = (
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
    "tags",
    "properties",
    "environment",
    "environment_variables",
    "compute",
    "resources",
    "distribution",
    "limits",
    "retry_settings",
    "is_deterministic",
    "code_copy",
    "artifacts_output",
)
IGNORED_KEYS = (
    "services",
    "identity",
    "queue_settings",
    "name",
    "experiment_name",
)  # Azure's, meaningless here
STEP_KEYS = {
    "mlflow_project": (*COMMON_KEYS, "uri", "version", "entry_point", "parameters"),
    "command": (*COMMON_KEYS, "code", "command"),
}
STEP_INPUT_KEYS = (
    "type",
    "path",
    "value",
    "default",
    "mode",
    "optional",
    "description",
    "min",
    "max",
    "enum",
)
OUTPUT_KEYS = ("type", "mode", "path", "description", "name", "version", "is_control", "early_available")
MODES = ("ro_mount", "rw_mount", "download", "direct", "eval_mount", "eval_download", "upload")
ENVIRONMENT_KEYS = (
    "image",
    "conda_file",
    "env_manager",
    "name",
    "version",
    "description",
    "tags",
    "build",
    "os_type",
    "$schema",
)
ARTIFACTS = "artifacts"
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DISTRIBUTIONS = (
    "mpi",
    "pytorch",
    "tensorflow",
    "ray",
)  # Azure ML's default output: the job's ./outputs folder


class StepReader:
    def __init__(self, reader: Reader, *, azure: bool, default_environment: Any = None) -> None:
        self.reader = reader
        self.azure = azure
        self.default_environment = default_environment

    def step(self, job: Job) -> Step | None:
        body, name = job.body, job.name
        if not all(NAME.fullmatch(part) for part in name.split(".")):
            message = f"{name!r}: a name is letters, digits, '_' and '-', starting with a letter or '_'"
            self.reader.problems.add(job.error("", message))
            return None
        step_type = body.get("type", "command" if "command" in body or self.azure else None)
        if step_type not in STEP_TYPES:
            message = f"unknown step type {step_type!r} (expected one of: {', '.join(STEP_TYPES)})"
            self.reader.problems.add(job.error("type", message))
            return None
        if step_type in CONTROL_TYPES:
            from mlproj.pipelines.control_reader import control_step

            return control_step(self.reader, job, step_type)
        self.check_keys(job, step_type)
        inputs, input_types = self.inputs(job)
        reader, origin = self.reader, job.origin
        common: dict[str, Any] = {
            "name": name,
            "type": step_type,
            "inputs": inputs,
            "input_types": input_types,
            **self.outputs_and_artifacts(job, step_type),
            **self.attempts(job),
            **self.where_it_runs(job),
            "depends_on": self.depends_on(job),
            "environment_variables": self.variables(job),
            "display_name": reader.optional_str(body, "display_name"),
            "description": reader.optional_str(body, "description"),
            "tags": reader.strings(body.get("tags"), origin("tags"), "tags"),
            "properties": reader.strings(body.get("properties"), origin("properties"), "properties"),
        }
        if step_type == "mlflow_project":
            return self.project_step(job, common)
        command = body.get("command")
        if not isinstance(command, str) or not command.strip():
            self.reader.problems.add(job.error("command", "expected a command"))
            command = "true"
        code = body.get("code")
        if code is not None:
            code = self.local_path(job, "code", code, folder=True)
        return Step(**common, command=command, code=code)

    def variables(self, job: Job) -> dict[str, str]:
        """`environment_variables`: names a shell can hold, values without NUL characters."""
        where = job.origin("environment_variables")
        found: dict[str, str] = {}
        for name, value in self.reader.mapping(
            job.body.get("environment_variables"), where, "environment_variables"
        ).items():
            key = f"environment_variables.{name}"
            if not isinstance(name, str) or not VARIABLE.fullmatch(name):
                self.reader.problems.add(job.error(key, "expected a variable name (letters, digits and '_')"))
            elif isinstance(value, (dict, list)):
                self.reader.problems.add(job.error(key, "expected a value"))
            elif "\0" in text_of(value):
                self.reader.problems.add(job.error(key, "a NUL character cannot be passed in a variable"))
            else:
                found[name] = text_of(value)
        return found

    def scale(self, job: Job) -> dict[str, Any]:
        """`resources` and `distribution`, their counts checked."""
        reader = self.reader
        resources = reader.mapping(job.body.get("resources"), job.origin("resources"), "resources")
        distribution = reader.mapping(
            job.body.get("distribution"), job.origin("distribution"), "distribution"
        )
        reader.positive_int(resources, "instance_count", job.origin("resources").at("resources"))
        for key in ("process_count_per_instance", "worker_count"):
            reader.positive_int(distribution, key, job.origin("distribution").at("distribution"))
        kind = distribution.get("type")
        if kind is not None and kind not in DISTRIBUTIONS:
            message = f"unknown distribution {kind!r} (expected one of: {', '.join(DISTRIBUTIONS)})"
            reader.problems.add(job.error("distribution.type", message))
        return {"resources": resources, "distribution": distribution}

    def check_keys(self, job: Job, step_type: str) -> None:
        for item in job.body:
            if item in IGNORED_KEYS:
                from mlproj.notices import warn

                warn(f"{job.error(str(item), 'an Azure ML setting with no meaning here: ignored')}")
            elif item not in STEP_KEYS[step_type]:
                allowed = ", ".join(sorted(STEP_KEYS[step_type]))
                message = f"unknown key for a {step_type} step (expected one of: {allowed})"
                self.reader.problems.add(job.error(str(item), message))

    def outputs_and_artifacts(self, job: Job, step_type: str) -> dict[str, Any]:
        """The outputs; Azure ML's command jobs run in a copy of their code, and one that declares no
        output has its `./outputs` folder as the output `artifacts` (design.md §9)."""
        outputs = self.outputs(job)
        body = job.body
        code_copy = bool(body.get("code_copy", self.azure and step_type == "command"))
        artifacts_output = body.get("artifacts_output")
        if self.azure and step_type == "command" and not outputs and artifacts_output is None:
            outputs[ARTIFACTS] = "uri_folder"
            artifacts_output = ARTIFACTS
        if artifacts_output is not None and artifacts_output not in outputs:
            message = f"expected one of the step's outputs, got {artifacts_output!r}"
            self.reader.problems.add(job.error("artifacts_output", message))
            artifacts_output = None
        return {"outputs": outputs, "code_copy": code_copy, "artifacts_output": artifacts_output}

    def depends_on(self, job: Job) -> tuple[str, ...]:
        depends_on = job.body.get("depends_on") or []
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            self.reader.problems.add(job.error("depends_on", "expected a list of step names"))
            return ()
        return tuple(depends_on)

    def attempts(self, job: Job) -> dict[str, Any]:
        """timeout, retries and reuse: mlproj's keys, or Azure ML's `limits`, `retry_settings` and
        `is_deterministic`."""
        body, reader, where = job.body, self.reader, job.where
        limits = reader.mapping(body.get("limits"), where, "limits")
        retry = reader.mapping(body.get("retry_settings"), where, "retry_settings")
        timeout = reader.positive_number(body, "timeout", where)
        timeout = timeout or reader.positive_number(limits, "timeout", where.at("limits"))
        timeout = timeout or reader.positive_number(retry, "timeout", where.at("retry_settings"))
        retries = reader.positive_int(body, "retries", where, minimum=0)
        if retries is None:
            retries = reader.positive_int(retry, "max_retries", where.at("retry_settings"), minimum=0)
        allow_reuse = reader.boolean(body, "allow_reuse", where, default=None)
        if allow_reuse is None:
            origin = job.origin("is_deterministic")
            allow_reuse = reader.boolean(body, "is_deterministic", origin, default=True)
        return {"timeout": timeout, "retries": retries or 0, "allow_reuse": bool(allow_reuse)}

    def where_it_runs(self, job: Job) -> dict[str, Any]:
        """Its environment, its environment manager and its backend: mlproj's keys, or Azure ML's
        `environment` and `compute` through the asset map."""
        body, reader = job.body, self.reader
        environment, manager = self.environment(job)
        backend = reader.backend(body, job.where)
        backend_config = reader.backend_config(body, job.where)
        compute = body.get("compute")
        if backend is None and compute is not None:
            backend, backend_config = reader.compute(compute, job.origin("compute"), "compute")
        return {
            "environment": environment,
            "env_manager": reader.env_manager(body.get("env_manager"), job.where, "env_manager") or manager,
            "backend": backend,
            "backend_config": backend_config,
            "compute": str(compute) if compute is not None else None,
            **self.scale(job),
        }

    def project_step(self, job: Job, common: dict[str, Any]) -> Step:
        from mlproj.sources import is_git_uri

        body = job.body
        uri = body.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            self.reader.problems.add(
                job.error("uri", "expected the project's folder (relative to this file) or Git URI")
            )
            uri = "."
        uri = uri.strip()
        if not is_git_uri(uri) and job.folder("uri") != self.reader.path.parent:
            uri = str((job.folder("uri") / uri).absolute())
        version = body.get("version")
        return Step(
            **common,
            uri=uri,
            version=None if version is None else str(version),
            entry_point=str(body.get("entry_point") or "main"),
            parameters={
                str(k): v
                for k, v in self.reader.mapping(body.get("parameters"), job.where, "parameters").items()
            },
        )

    # --- inputs and outputs -------------------------------------------------------------------------

    def inputs(self, job: Job) -> tuple[dict[str, Any], dict[str, str]]:
        """(each input's value: a literal, a binding, a path, or None when it has none; the declared
        types of those given with one)."""
        values: dict[str, Any] = {}
        types: dict[str, str] = {}
        for name, raw in self.reader.mapping(job.body.get("inputs"), job.where, "inputs").items():
            if not self.reader.name(job.origin(f"inputs.{name}"), "inputs", name):
                continue
            if isinstance(raw, list):
                self.reader.problems.add(
                    job.error(f"inputs.{name}", "expected a value, a binding, or {type, path}")
                )
                continue
            found = self.typed_input(job, f"inputs.{name}", raw) if isinstance(raw, dict) else (raw, None)
            if found is None:
                continue
            values[str(name)] = found[0]
            if found[1] is not None:
                types[str(name)] = found[1]
        return values, types

    def typed_input(self, job: Job, key: str, raw: dict[Any, Any]) -> tuple[Any, str | None] | None:
        """An input given as Azure ML writes it: {type, path, mode}, {type, value}, {type, optional}."""
        problems = self.reader.problems
        for item in raw:
            if item not in STEP_INPUT_KEYS:
                message = f"unknown key (expected one of: {', '.join(STEP_INPUT_KEYS)})"
                problems.add(job.error(f"{key}.{item}", message))
        given = raw.get("type")
        kind = None if given is None else str(TYPE_ALIASES.get(str(given), given))
        if kind is not None and kind not in INPUT_TYPES:
            message = f"unknown type {given!r} (expected one of: {', '.join(INPUT_TYPES)})"
            problems.add(job.error(f"{key}.type", message))
            kind = None
        self.mode(job, key, raw)
        value_key = next((k for k in ("path", "value", "default") if k in raw), "path")
        value = raw.get(value_key)
        if isinstance(value, (dict, list)):
            problems.add(job.error(f"{key}.{value_key}", "expected a value or a binding"))
            return None
        bound = isinstance(value, str) and BINDING.search(value) is not None
        if value is None and raw.get("optional") is not True and kind is not None and "path" not in raw:
            message = "expected a value: {type, path}, {type, value} or {type, optional: true}"
            problems.add(job.error(key, message))
            return None
        if kind in URI_TYPES and isinstance(value, str) and not bound:
            value = self.uri_value(job, f"{key}.{value_key}", value, kind)
        elif kind is not None and value is not None and not bound:
            problem = check("uri_folder" if kind == "mltable" else kind, text_of(value))
            problem = problem or out_of_limits(text_of(value), self.reader.limits(raw, job.origin(key), key))
            if problem:
                problems.add(job.error(f"{key}.{value_key}", problem))
        return value, kind

    def mode(self, job: Job, key: str, raw: dict[Any, Any]) -> None:
        """An input's or output's `mode`: any of Azure ML's; here a path is a local path either way."""
        mode = raw.get("mode")
        if mode is not None and mode not in MODES:
            message = f"unknown mode {mode!r} (expected one of: {', '.join(MODES)})"
            self.reader.problems.add(job.error(f"{key}.mode", message))

    def uri_value(self, job: Job, key: str, value: str, kind: str) -> str:
        """A file or folder input: an `azureml:` reference through the asset map, a local path made
        absolute (relative to the file it is written in) and checked, a URL kept (downloaded later)."""
        from mlproj.values import uri_scheme

        text = self.reader.data_reference(value.strip(), job.origin(key), key)
        scheme = uri_scheme(text)
        if scheme not in (None, "file"):
            return text
        return self.local_path(job, key, text, folder=kind != "uri_file", is_file=kind == "uri_file") or text

    def local_path(
        self, job: Job, key: str, value: Any, *, folder: bool, is_file: bool = False
    ) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.reader.problems.add(
                job.error(key, "expected a folder (relative to this file)" if folder else "expected a path")
            )
            return None
        text = value.strip()
        text = text[len("file://") :] if text.startswith("file://") else text
        path = Path(text).expanduser()
        base = job.folder(key)
        absolute = path if path.is_absolute() else base / path
        if self.reader.check_paths:
            if is_file and not absolute.is_file():
                self.reader.problems.add(job.error(key, f"no such file: {absolute}"))
            elif folder and key == "code" and not absolute.is_dir():
                self.reader.problems.add(job.error(key, f"no such folder: {absolute}"))
            elif not absolute.exists():
                self.reader.problems.add(job.error(key, f"no such file or folder: {absolute}"))
        if key == "code" and job.origin(key).file == self.reader.path and not path.is_absolute():
            return text  # relative to the pipeline file, as written (mlproj's dialect)
        return os.path.normpath(absolute.absolute())

    def outputs(self, job: Job) -> dict[str, str]:
        """Each output's type: an empty body is a folder (`uri_folder`)."""
        outputs: dict[str, str] = {}
        for name, raw in self.reader.mapping(job.body.get("outputs"), job.where, "outputs").items():
            key = f"outputs.{name}"
            if not self.reader.name(job.origin(key), "outputs", name):
                continue
            kind = "uri_folder" if raw is None else raw if isinstance(raw, str) else repr(raw)
            if isinstance(raw, dict):
                kind = str(raw.get("type") or "uri_folder")
                for item in raw:
                    if item not in OUTPUT_KEYS:
                        message = f"unknown key (expected one of: {', '.join(OUTPUT_KEYS)})"
                        self.reader.problems.add(job.error(f"{key}.{item}", message))
                self.mode(job, key, raw)
                if raw.get("path") is not None:
                    from mlproj.notices import warn

                    where = job.error(f"{key}.path", str(raw["path"]))
                    warn(f"{where}: outputs are written in the run's folder (its record says where)")
            if kind not in OUTPUT_TYPES:
                message = f"expected an output type ({', '.join(OUTPUT_TYPES)}), got {kind!r}"
                self.reader.problems.add(job.error(key, message))
                continue
            outputs[str(name)] = kind
        return outputs

    # --- environment --------------------------------------------------------------------------------

    def environment(self, job: Job) -> tuple[dict[str, Any] | None, str | None]:
        """(the step's environment: {image} or {conda_file}, or None; an environment manager the asset
        map gives). A reference without an entry runs with the step's manager, with a notice."""
        raw = job.body.get("environment", self.default_environment)
        if raw is None:
            return None, None
        given = "environment" in job.body
        where = job.origin("environment") if given else self.reader.top.at("settings")
        key = "environment" if given else "default_environment"
        if isinstance(raw, str):
            mapped = self.reader.assets.environment(raw.strip())
            if mapped is None:
                from mlproj.notices import warn

                missing = self.reader.assets.describe(self.reader.path.parent / "azureml.yaml")
                warn(f"{where.error(key, raw.strip())}: {missing}: runs with the step's environment manager")
                return None, None
            found = {k: v for k, v in mapped.items() if k in ("image", "conda_file")}
            return found or None, mapped.get("env_manager")
        if not isinstance(raw, dict):
            message = "expected an environment reference (azureml:NAME:VERSION) or {image, conda_file}"
            self.reader.problems.add(where.error(key, message))
            return None, None
        for item in raw:
            if item not in ENVIRONMENT_KEYS:
                allowed = ", ".join(k for k in ENVIRONMENT_KEYS if k != "$schema")
                self.reader.problems.add(
                    where.error(f"{key}.{item}", f"unknown key (expected one of: {allowed})")
                )
        result = self.inline_environment(job, raw, where, key)
        if raw.get("build") is not None and not result:
            from mlproj.notices import warn

            built = where.error(f"{key}.build", "an image Azure ML builds")
            warn(f"{built}: not built here: runs with the step's environment manager")
        manager = self.reader.env_manager(raw.get("env_manager"), where, f"{key}.env_manager")
        return result or None, manager

    def inline_environment(self, job: Job, raw: dict[Any, Any], where: Where, key: str) -> dict[str, Any]:
        """{conda_file} (absolute) when there is one (an image beside it is the base Azure ML builds it
        on), else {image}."""
        result: dict[str, Any] = {}
        conda = raw.get("conda_file")
        if conda is not None and not isinstance(conda, str):
            self.reader.problems.add(
                where.error(f"{key}.conda_file", "expected a conda file (relative to this file)")
            )
        elif conda is not None:
            result["conda_file"] = self.local_path(
                job, "environment.conda_file", conda, folder=False, is_file=True
            )
        image = raw.get("image")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            self.reader.problems.add(where.error(f"{key}.image", "expected an image name"))
        elif image is not None and not result:
            result["image"] = image.strip()
        return result
