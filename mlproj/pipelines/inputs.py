"""A pipeline run's inputs: its own (`-P`, defaults, optional ones without a value) and the `http(s)`
files and folders of its inputs and its steps' inputs, downloaded into the run's folder (design.md §6,
§9) with the limits and the cleanup of a project's downloads."""

from __future__ import annotations

import os
from pathlib import Path

from mlproj.errors import InputError
from mlproj.params import check_passable
from mlproj.pipelines.assets import is_reference
from mlproj.pipelines.bindings import URI_INPUTS, is_local
from mlproj.pipelines.model import Pipeline, out_of_limits, text_of
from mlproj.values import check

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlproj.pipelines.model import Step


def resolve_inputs(
    pipeline: Pipeline, given_inputs: Mapping[str, str], caller_dir: Path, asset_map: Path | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The pipeline's inputs from `-P` and defaults: (resolved, recorded). Local `uri_file` and
    `uri_folder` values must exist: given with -P they are relative to the caller's folder, defaults
    to the pipeline file's."""
    unknown = sorted(set(given_inputs) - set(pipeline.inputs))
    if unknown:
        declared = ", ".join(sorted(pipeline.inputs)) or "none"
        from mlproj.params import closest

        guess = closest(unknown[0], list(pipeline.inputs))
        hint = f"did you mean {guess!r}? " if guess else ""
        raise InputError(
            f"-P {unknown[0]}: {pipeline.file} has no input {unknown[0]!r} ({hint}inputs: {declared})"
        )
    resolved: dict[str, str] = {}
    recorded: dict[str, str] = {}
    for name, item in pipeline.inputs.items():
        given = name in given_inputs
        if not given and item.default is None and item.optional:
            continue  # no value: the `$[[...]]` parts of commands that use it are left out
        if not given and item.default is None:
            raise InputError(f"{pipeline.file}: inputs.{name}: no value (give -P {name}=VALUE)")
        value = given_inputs[name] if given else text_of(item.default)
        if given and item.type in URI_INPUTS and is_reference(value):
            value = _asset(pipeline, asset_map, name, value)
        check_passable(f"-P {name}" if given else f"{pipeline.file}: inputs.{name}", value)
        problem = check(item.type, value)
        problem = problem or out_of_limits(value, item.limits)
        if problem:
            where = f"-P {name}" if given else f"{pipeline.file}: inputs.{name}.default"
            raise InputError(f"{where} ({item.type}): {problem}")
        recorded[name] = value
        resolved[name] = value
        if item.type in URI_INPUTS and is_local(value) and not is_reference(value):
            base = caller_dir if given else pipeline.folder
            resolved[name] = _local_input(name, item.type, value, base, given=given, file=pipeline.file)
    return resolved, recorded


def _asset(pipeline: Pipeline, asset_map: Path | None, name: str, value: str) -> str:
    """`-P data=azureml:iris:1`: the local path the asset map gives it."""
    from mlproj.pipelines.assets import MAP_FILE, load_asset_map
    from mlproj.pipelines.problems import Problems

    problems = Problems()
    assets = load_asset_map(pipeline.file, asset_map, problems)
    problems.check(pipeline.file)
    found = assets.data_path(value)
    if found is None:
        raise InputError(
            f"-P {name}={value}: {assets.describe(pipeline.folder / MAP_FILE)} (add it under data:)"
        )
    return found


def download_inputs(pipeline: Pipeline, inputs: dict[str, str], run_dir: Path) -> dict[str, str]:
    """The pipeline's `http(s)` file and folder inputs downloaded into the run's folder (design.md §9),
    with the limits and the cleanup of a project's downloads."""
    result = dict(inputs)
    for name, item in pipeline.inputs.items():
        value = inputs.get(name)
        if item.type in URI_INPUTS and value is not None and _is_url(value):
            result[name] = _download(f"inputs.{name}", name, value, run_dir)
    return result


def download_step_inputs(step: Step, key: str, run_dir: Path) -> Step:
    """A step's own `http(s)` file and folder inputs, downloaded into the run's folder."""
    from mlproj.structs import replace

    found = {
        name: value
        for name, value in step.inputs.items()
        if step.input_types.get(name) in URI_INPUTS and isinstance(value, str) and _is_url(value)
    }
    if not found:
        return step
    inputs = dict(step.inputs)
    for name, value in found.items():
        inputs[name] = _download(f"{key}.inputs.{name}", f"{step.name}.{name}", value, run_dir)
    return replace(step, inputs=inputs)


def _is_url(value: str) -> bool:
    from mlproj.values import uri_scheme

    return uri_scheme(value) in ("http", "https")


def _download(where: str, name: str, uri: str, run_dir: Path) -> str:
    """`uri` downloaded into the run's `inputs/NAME/` (a detached supervisor planning again finds the
    download made when the run was recorded)."""
    from mlproj.downloads import download

    folder = run_dir / "inputs" / name
    if folder.is_dir():
        entries = list(folder.iterdir())
        if len(entries) == 1:
            return str(entries[0])
    try:
        return str(download(name, uri, run_dir / "inputs"))
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _local_input(name: str, kind: str, value: str, base: Path, *, given: bool, file: Path) -> str:
    text = value[len("file://") :] if value.startswith("file://") else value
    path = Path(text).expanduser()
    path = path if path.is_absolute() else base / path
    path = Path(os.path.normpath(path.absolute()))
    where = f"-P {name}" if given else f"{file}: inputs.{name}"
    if kind in ("uri_folder", "mltable") and not path.is_dir():
        raise InputError(f"{where} (uri_folder): no such folder: {path}")
    if kind == "uri_file" and not path.is_file():
        raise InputError(f"{where} (uri_file): no such file: {path}")
    return str(path)
