"""Typed parameter values: validated, resolved, and rendered into an entry point's command.

Every value a user supplies is shell-quoted before it is placed in the command, so no user value is
ever interpreted by a shell. Values are recorded as the strings the user gave (or the defaults).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from mlproj.errors import ParameterError
from mlproj.quoting import UnsafeValue
from mlproj.spec import EntryPoint, is_name
from mlproj.structs import dataclass
from mlproj.values import check, uri_scheme

DOWNLOAD_SCHEMES = ("file", "http", "https")
# Artifact URIs, as MLflow takes them for a `path`: runs:/ through MLflow tracking, the others through
# the mlflow package's artifact repositories (mlproj.tracking.artifacts).
ARTIFACT_SCHEMES = ("runs", "s3", "gs", "hdfs", "viewfs", "dbfs", "wasbs", "abfss", "ftp", "sftp", "models")

# Linux passes at most this many bytes in one argument (MAX_ARG_STRLEN): the command given to the shell.
MAX_ARGUMENT_BYTES = 131072

Downloader = Callable[[str, str], Path]
"""(parameter name, URI) → local path of the downloaded copy."""


def check_passable(what: str, value: str) -> None:
    """A value that no program can be given (a NUL byte ends a C string) is an input error now, before
    anything is recorded."""
    if "\0" in value:
        raise ParameterError(f"{what}: a value cannot contain a NUL character (no program can be given one)")


def check_labels(run_name: str | None, tags: Mapping[str, str]) -> None:
    """The run's name and tags are text: no NUL characters."""
    if run_name is not None:
        check_passable("--run-name", run_name)
    for key, value in tags.items():
        check_passable(f"--tag {key!r}", key + value)


def check_command_size(command: str, values: Mapping[str, str]) -> None:
    """The rendered command must fit in one argument of the shell (MAX_ARGUMENT_BYTES)."""
    size = len(command.encode("utf-8", "surrogateescape"))
    if size <= MAX_ARGUMENT_BYTES:
        return
    detail = ""
    if values:
        biggest = max(values, key=lambda name: len(values[name]))
        detail = (
            f" (parameter {biggest!r} is {len(values[biggest].encode('utf-8', 'surrogateescape'))} bytes)"
        )
    raise ParameterError(
        f"the command with its values is {size} bytes, more than the {MAX_ARGUMENT_BYTES} bytes the OS "
        f"passes to a program in one argument{detail}; pass big values in a file"
    )


@dataclass(frozen=True)
class ResolvedParameters:
    values: Mapping[str, str]
    """What is recorded: every declared parameter (given or default) and every extra one, as strings."""
    rendered: Mapping[str, str]
    """What reaches the command, unquoted: `path` values made absolute or downloaded."""
    extra: tuple[str, ...]
    """Names given that the entry point does not declare, in the order given (appended as --name value)."""


def resolve_parameters(
    entry_point: EntryPoint,
    given: Mapping[str, str],
    *,
    project_dir: Path,
    caller_dir: Path,
    download: Downloader | None = None,
    pending: Path | None = None,
    missing_hint: str | None = None,
    strict: bool = False,
    given_as: str = "-P",
) -> ResolvedParameters:
    """Check and resolve `given` against the entry point. Raises `ParameterError` naming the parameter.

    `path` values inside `pending` (a pipeline run's output folders, made when their steps run) are
    not required to exist yet. A name the entry point does not declare is passed on as `--name value`
    (as MLflow does), with a warning when it is close to a declared one; `strict` refuses it."""
    missing = [p.name for p in entry_point.parameters.values() if p.required and p.name not in given]
    if missing:
        names = ", ".join(missing)
        hint = " ".join(f"-P {name}=VALUE" for name in missing) if missing_hint is None else missing_hint
        raise ParameterError(f"entry point {entry_point.name!r}: no value for {names} (give {hint})")
    values: dict[str, str] = {}
    rendered: dict[str, str] = {}
    for param in entry_point.parameters.values():
        from_user = param.name in given
        value = given[param.name] if from_user else param.default
        if value is None:  # a required parameter without a value: refused above
            raise ParameterError(f"parameter {param.name!r}: no value")
        check_passable(f"parameter {param.name!r}", value)
        problem = check(param.type, value)
        if problem:
            raise ParameterError(f"parameter {param.name!r} ({param.type}): {problem}")
        values[param.name] = value
        rendered[param.name] = value
        if param.type == "path":
            base = caller_dir if from_user else project_dir
            rendered[param.name] = _resolve_path(param.name, value, base, download, pending)
    extra = []
    for name, value in given.items():
        if name in entry_point.parameters:
            continue
        if not is_name(name):
            raise ParameterError(
                f"parameter {name!r}: a name is letters, digits, '_', '.' and '-', starting with a letter"
            )
        check_passable(f"parameter {name!r}", value)
        _undeclared(entry_point, name, strict=strict, given_as=given_as)
        values[name] = value
        rendered[name] = value
        extra.append(name)
    return ResolvedParameters(values=values, rendered=rendered, extra=tuple(extra))


def _undeclared(entry_point: EntryPoint, name: str, *, strict: bool, given_as: str = "-P") -> None:
    """A name the entry point does not declare: refused when `strict`, else a warning when it looks
    like a misspelt declared one."""
    guess = closest(name, list(entry_point.parameters))
    hint = f" (did you mean {guess!r}?)" if guess else ""
    if strict:
        raise ParameterError(
            f"parameter {name!r}: entry point {entry_point.name!r} declares no such parameter{hint}; "
            "--strict-params refuses undeclared ones"
        )
    if guess:
        from mlproj.notices import warn

        warn(
            f"{given_as} {name}: entry point {entry_point.name!r} declares no such parameter; did you mean "
            f"{guess!r}? (passed on as --{name}, as MLflow does; --strict-params refuses it)"
        )


def closest(name: str, names: list[str], most: int = 2) -> str | None:
    """The one name of `names` at most `most` edits from `name` (the nearest; None when none is, or
    when two are equally near)."""
    found = sorted((distance(name.lower(), other.lower()), other) for other in names)
    if not found or found[0][0] > most or (len(found) > 1 and found[1][0] == found[0][0]):
        return None
    return found[0][1]


def distance(a: str, b: str) -> int:
    """Levenshtein's distance (insertions, deletions, substitutions), with a transposition counted once."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            if i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def _resolve_path(
    name: str, value: str, base: Path, download: Downloader | None, pending: Path | None = None
) -> str:
    if not value.strip():
        raise ParameterError(f"parameter {name!r} (path): expected a path, got an empty value")
    scheme = uri_scheme(value)
    if scheme is not None:
        if scheme not in DOWNLOAD_SCHEMES and scheme not in ARTIFACT_SCHEMES:
            known = ", ".join((*DOWNLOAD_SCHEMES, *ARTIFACT_SCHEMES))
            raise ParameterError(
                f"parameter {name!r} (path): cannot fetch {scheme}: URIs (supported: {known})"
            )
        if download is None:  # validation only: the value is well-formed, nothing is fetched
            return value
        return str(download(name, value))
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    path = Path(os.path.normpath(path.absolute()))  # `../x` resolved, as MLflow does (links kept)
    if not path.exists() and not (pending is not None and path.is_relative_to(pending)):
        raise ParameterError(f"parameter {name!r} (path): no such file or folder: {path}")
    return str(path)


def render_command(entry_point: EntryPoint, params: ResolvedParameters) -> str:
    """The entry point's command with every value quoted for where its placeholder stands (see
    `mlproj.quoting`), and extra parameters appended as `--name value`."""
    try:
        command = entry_point.template.render(params.rendered)
    except UnsafeValue as exc:
        raise ParameterError(
            f"parameter {exc.name!r}: its value cannot be placed in the command: {exc}"
        ) from None
    if params.extra:
        import shlex

        for name in params.extra:
            command += f" {shlex.quote('--' + name)} {shlex.quote(params.rendered[name])}"
    return command


def parse_assignments(pairs: tuple[str, ...] | list[str], what: str = "-P") -> dict[str, str]:
    """`KEY=VALUE` strings (from `-P` or `--tag`) → a dict; a malformed pair is an input error."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"{what} {pair!r}: expected KEY=VALUE")
        result[key.strip()] = value
    return result
