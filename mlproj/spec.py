"""MLproject files → frozen dataclasses, compatible with MLflow and validated at load time.

MLflow's rules, kept: the file is any name matching `MLproject` case-insensitively; `entry_points`
maps names to `command` and `parameters` (`name: type` or `{type, default}`); commands are `str.format`
templates (`{{`/`}}` for literal braces); an entry point that is not declared but names a `.py` or `.sh`
file in the project runs it with `python` or `bash`; a folder without MLproject is a project too.

Where MLflow is loose, we are strict: unknown parameter types, placeholders that name no parameter,
malformed templates and ill-typed defaults are errors that name the file and the key path, in the
entry point that is run; in the others they are warnings, and so are keys mlproj does not read, since
MLflow runs such files.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from pathlib import Path

from mlproj.errors import InputError, SpecError
from mlproj.notices import warn
from mlproj.quoting import Template, TemplateError
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

PARAMETER_TYPES = ("string", "float", "int", "bool", "path", "uri")
# What MLproject may hold at its top level (kubernetes_env: MLflow's Kubernetes backend reads it).
TOP_LEVEL_KEYS = frozenset(
    {"name", "python_env", "conda_env", "docker_env", "entry_points", "kubernetes_env"}
)
_TYPE_ALIASES = {"str": "string", "integer": "int", "double": "float", "number": "float", "boolean": "bool"}
SCRIPT_RUNNERS = {".py": "python", ".sh": "$SHELL", ".R": "Rscript"}  # as MLflow runs them
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def is_name(text: str) -> bool:
    """A parameter name: letters, digits, '_', '.' and '-', starting with a letter or '_'."""
    return bool(text) and (text[0].isalpha() or text[0] == "_") and set(text) <= _NAME_CHARS


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str = "string"
    default: str | None = None  # None: required

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class EntryPoint:
    name: str
    command: str
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    checked_template: Template | None = field(default=None, compare=False, repr=False)  # from the loader

    @functools.cached_property
    def template(self) -> Template:
        """The command as a template (the loader's, which it checked, or read now)."""
        return self.checked_template or parse_template(self.command)


@dataclass(frozen=True)
class Project:
    directory: Path
    spec_file: Path | None = None
    name: str | None = None
    entry_points: Mapping[str, EntryPoint] = field(default_factory=dict)
    python_env: str | None = None
    conda_env: str | None = None
    docker_env: Mapping[str, Any] | None = None
    # Entry points that did not load, with why: an error when one is run, a warning otherwise (MLflow
    # loads an MLproject whatever its other entry points hold).
    broken: Mapping[str, SpecError] = field(default_factory=dict)

    def entry_point(self, name: str) -> EntryPoint:
        """The declared entry point, or a `.py`/`.sh` file of the project run as a script. The problems
        of the entry points that are not run are warnings."""
        for other, problem in self.broken.items():
            if other != name:
                warn(f"{problem} (entry point {other!r} is not run, so this is not an error)")
        if name in self.broken:
            raise self.broken[name]
        if name in self.entry_points:
            return self.entry_points[name]
        suffix = Path(name).suffix
        runner = SCRIPT_RUNNERS.get(suffix)
        if runner is not None:
            script = (self.directory / name).resolve()
            if not script.is_relative_to(self.directory.resolve()):
                raise InputError(f"entry point {name!r}: the script is outside the project folder")
            if not script.is_file():
                raise InputError(f"entry point {name!r}: no such script in {self.directory}")
            import os
            import shlex

            if runner == "$SHELL":  # MLflow's: the user's shell, else bash
                runner = os.environ.get("SHELL") or "bash"
            script_arg = name if not name.startswith("-") else f"./{name}"
            return EntryPoint(name=name, command=f"{shlex.quote(runner)} {shlex.quote(script_arg)}")
        scripts = "/".join(SCRIPT_RUNNERS)
        if self.spec_file is None:  # MLflow runs a folder without MLproject by a script of it
            found = sorted(p.name for p in self.directory.iterdir() if p.suffix in SCRIPT_RUNNERS)[:5]
            example = f" (-e {found[0]})" if found else ""
            raise InputError(
                f"{self.directory} has no MLproject file, so it has no entry point {name!r}: give one of "
                f"its {scripts} files as the entry point{example}, or add an MLproject"
            )
        declared = ", ".join(sorted(self.entry_points)) or "none"
        where = self.spec_file
        raise InputError(
            f"{where}: unknown entry point {name!r} (declared: {declared}; or give a {scripts} file of "
            "the project)"
        )


def find_spec_file(directory: Path) -> Path | None:
    """The MLproject file of a folder, matched case-insensitively as MLflow does."""
    try:
        names = [p for p in directory.iterdir() if p.name.lower() == "mlproject" and p.is_file()]
    except FileNotFoundError:
        raise InputError(f"no such project folder: {directory}") from None
    except NotADirectoryError:
        raise InputError(f"not a folder: {directory}") from None
    if len(names) > 1:
        found = ", ".join(sorted(p.name for p in names))
        raise InputError(f"{directory}: more than one MLproject file ({found})")
    return names[0] if names else None


def load_project(directory: Path) -> Project:
    """Load the project in `directory` (which must exist); a folder without MLproject is a bare project."""
    directory = directory.absolute()
    spec_file = find_spec_file(directory)
    if spec_file is None:
        return Project(directory=directory)
    from mlproj.yamlio import load_yaml_with_lines

    data, lines = load_yaml_with_lines(spec_file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(spec_file, None, f"expected a mapping at the top level, got {_kind(data)}")
    return _parse_project(directory, spec_file, data, lines)


def _parse_project(
    directory: Path, spec_file: Path, data: dict[str, Any], lines: Mapping[str, int]
) -> Project:
    name = data.get("name")
    if name is not None and not isinstance(name, (str, int, float)):
        raise SpecError(spec_file, "name", f"expected a string, got {_kind(name)}")
    envs = [key for key in ("python_env", "conda_env", "docker_env") if data.get(key) is not None]
    if len(envs) > 1:
        raise SpecError(spec_file, None, f"declare at most one environment, found {' and '.join(envs)}")
    python_env = _optional_str(spec_file, data, "python_env")
    conda_env = _optional_str(spec_file, data, "conda_env")
    docker_env = data.get("docker_env")
    if docker_env is not None:
        docker_env = _parse_docker_env(spec_file, docker_env)
    raw_entry_points = data.get("entry_points") or {}
    if not isinstance(raw_entry_points, dict):
        raise SpecError(spec_file, "entry_points", f"expected a mapping, got {_kind(raw_entry_points)}")
    for key in sorted(str(k) for k in set(data) - TOP_LEVEL_KEYS):
        warn(f"{spec_file}: {key}: unknown key, ignored (mlproj reads {', '.join(sorted(TOP_LEVEL_KEYS))})")
    entry_points: dict[str, EntryPoint] = {}
    broken: dict[str, SpecError] = {}
    for ep_name, body in raw_entry_points.items():
        try:
            entry_points[str(ep_name)] = _parse_entry_point(spec_file, str(ep_name), body, lines)
        except SpecError as exc:
            broken[str(ep_name)] = exc
    return Project(
        directory=directory,
        spec_file=spec_file,
        name=None if name is None else str(name),
        entry_points=entry_points,
        python_env=python_env,
        conda_env=conda_env,
        docker_env=docker_env,
        broken=broken,
    )


def _parse_docker_env(spec_file: Path, body: Any) -> dict[str, Any]:
    """MLflow's docker_env: `image` (required), `volumes` (strings), `environment` (names to copy from
    the host, or [NAME, value] pairs)."""
    if not isinstance(body, dict):
        raise SpecError(spec_file, "docker_env", f"expected a mapping with an image, got {_kind(body)}")
    for key in sorted(str(k) for k in set(body) - {"image", "volumes", "environment"}):
        warn(
            f"{spec_file}: docker_env.{key}: not used by mlproj, ignored "
            "(it reads image, volumes, environment)"
        )
    image = body.get("image")
    if not isinstance(image, str) or not image.strip():
        raise SpecError(spec_file, "docker_env.image", "expected the name of an image")
    volumes = body.get("volumes") or []
    if not isinstance(volumes, list) or not all(isinstance(v, str) and ":" in v for v in volumes):
        raise SpecError(
            spec_file,
            "docker_env.volumes",
            "expected a list of HOST:CONTAINER[:MODE] strings, e.g. ['/data:/data']",
        )
    if not isinstance(body.get("environment") or [], list):
        raise SpecError(
            spec_file, "docker_env.environment", "expected a list of names or [NAME, value] pairs"
        )
    environment: list[Any] = []
    for index, entry in enumerate(body.get("environment") or []):
        key = f"docker_env.environment[{index}]"
        if isinstance(entry, str) and is_name(entry):
            environment.append(entry)
        elif isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and is_name(entry[0]):
            environment.append([entry[0], "" if entry[1] is None else str(entry[1])])
        else:
            raise SpecError(
                spec_file, key, "expected a variable name to copy from the host, or [NAME, value]"
            )
    return {"image": image.strip(), "volumes": list(volumes), "environment": environment}


def _parse_entry_point(spec_file: Path, name: str, body: Any, lines: Mapping[str, int]) -> EntryPoint:
    key = f"entry_points.{name}"
    if not isinstance(body, dict):
        raise SpecError(spec_file, key, f"expected a mapping with a command, got {_kind(body)}")
    command = body.get("command")
    if not isinstance(command, str) or not command.strip():
        raise SpecError(spec_file, f"{key}.command", "expected a non-empty command string")
    raw_params = body.get("parameters") or {}
    if not isinstance(raw_params, dict):
        raise SpecError(spec_file, f"{key}.parameters", f"expected a mapping, got {_kind(raw_params)}")
    parameters = {
        str(p_name): _parse_parameter(spec_file, f"{key}.parameters.{p_name}", str(p_name), p_body)
        for p_name, p_body in raw_params.items()
    }
    for placeholder in command_placeholders(spec_file, f"{key}.command", command):
        if placeholder not in parameters:
            declared = ", ".join(sorted(parameters)) or "none"
            raise SpecError(
                spec_file,
                f"{key}.command",
                f"placeholder {{{placeholder}}} names no parameter (declared: {declared}); "
                "write {{ and }} for literal braces",
            )
    template = command_template(spec_file, f"{key}.command", command, parameters, lines.get(f"{key}.command"))
    return EntryPoint(name=name, command=command, parameters=parameters, checked_template=template)


def _parse_parameter(spec_file: Path, key: str, name: str, body: Any) -> Parameter:
    if not is_name(name):
        raise SpecError(spec_file, key, "a parameter name is letters, digits, '_', '.' and '-'")
    default: Any = None
    if isinstance(body, str):
        type_name = body
    elif body is None:
        type_name = "string"
    elif isinstance(body, dict):
        type_name = body.get("type", "string")
        default = body.get("default")
        for unknown in sorted(str(k) for k in set(body) - {"type", "default", "description"}):
            warn(f"{spec_file}: {key}.{unknown}: unknown key, ignored (expected type, default)")
    else:
        raise SpecError(spec_file, key, f"expected a type name or {{type, default}}, got {_kind(body)}")
    if not isinstance(type_name, str) or _TYPE_ALIASES.get(type_name, type_name) not in PARAMETER_TYPES:
        allowed = ", ".join(PARAMETER_TYPES)
        raise SpecError(spec_file, f"{key}.type", f"unknown type {type_name!r} (expected one of: {allowed})")
    type_name = _TYPE_ALIASES.get(type_name, type_name)
    if isinstance(default, (dict, list)):
        raise SpecError(spec_file, f"{key}.default", f"expected a single value, got {_kind(default)}")
    default_text = None if default is None else str(default)
    if default_text is not None:
        from mlproj.values import check

        problem = check(type_name, default_text)
        if problem:
            raise SpecError(spec_file, f"{key}.default", problem)
    return Parameter(name=name, type=type_name, default=default_text)


def command_placeholders(spec_file: Path, key: str, command: str) -> list[str]:
    """The parameter names a command template refers to; a malformed template is a `SpecError`."""
    names = []
    try:
        parsed = list(string.Formatter().parse(command))
    except ValueError as exc:
        problem = f"malformed template ({exc}); write {{{{ and }}}} for literal braces"
        raise SpecError(spec_file, key, problem) from None
    for _literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        base = re.split(r"[.\[]", field_name, maxsplit=1)[0]
        if not base or base.isdigit():
            raise SpecError(
                spec_file, key, "positional placeholder {} in command; name a parameter or write {{ }}"
            )
        if base != field_name or format_spec or conversion:
            shown = (
                field_name
                + (f"!{conversion}" if conversion else "")
                + (f":{format_spec}" if format_spec else "")
            )
            raise SpecError(
                spec_file, key, f"placeholder {{{shown}}}: only plain {{name}} placeholders are allowed"
            )
        names.append(base)
    return names


def parse_template(command: str) -> Template:
    """A `str.format` command template read as a shell command (raises `TemplateError`)."""
    parts, names = [""], []
    for literal, field_name, _spec, _conversion in string.Formatter().parse(command):
        parts[-1] += literal
        if field_name is not None:
            names.append(field_name)
            parts.append("")
    return Template.parse(parts, names)


def command_template(
    spec_file: Path, key: str, command: str, parameters: Mapping[str, Parameter], line: int | None
) -> Template:
    """The command as a template whose every placeholder stands where a value can be quoted; where
    none can (or only an integer can, for a parameter that is not an `int`), a `SpecError` names the
    placeholder, the line and the reason."""

    def file_line(command_line: int) -> int | None:
        # A command on several lines is a block scalar (`command: |`), whose text starts below its key.
        return None if line is None else line + (command_line if "\n" in command.strip() else 0)

    try:
        template = parse_template(command)
    except TemplateError as exc:
        raise SpecError(spec_file, key, str(exc), line=file_line(exc.line)) from None

    def integer(name: str) -> bool:
        return parameters[name].type == "int"

    for name, slot, why in template.problems(integer):
        raise SpecError(
            spec_file,
            key,
            f"placeholder {{{name}}} cannot take a value safely: {why}",
            line=file_line(slot.line),
        )
    return template


def _optional_str(spec_file: Path, data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(spec_file, key, f"expected a file name, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
