"""The one exception hierarchy. The CLI catches `MlprojError` at one boundary and exits with `exit_code`."""

from __future__ import annotations


class MlprojError(Exception):
    """Base class of every error mlproj raises on purpose. Its message is one line for a person."""

    exit_code = 1


class InputError(MlprojError):
    """Bad input found before anything ran: exit code 2 (design.md §4)."""

    exit_code = 2


class SpecError(InputError):
    """An MLproject or pipeline file that cannot be used. The message names the file and the key path."""

    def __init__(self, file: object, key: str | None, message: str, line: int | None = None) -> None:
        where = str(file)
        if line is not None:
            where += f":{line}"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {message}")
        self.file = file
        self.key = key
        self.line = line


class SpecErrors(InputError):
    """Several problems of one pipeline file, found in one load: one line each, under a first line that
    counts them."""

    def __init__(self, file: object, problems: list[SpecError]) -> None:
        lines = [f"{file}: {len(problems)} problems"]
        lines += [f"  {problem}" for problem in sorted(problems, key=_line_order)]
        super().__init__("\n".join(lines))
        self.file = file
        self.problems = problems


def _line_order(problem: SpecError) -> tuple[str, int]:
    return str(problem.file), problem.line or 0


class ParameterError(InputError):
    """A parameter value that is missing, ill-typed or points at nothing."""


class SourceError(InputError):
    """A project URI or version that cannot be fetched or is refused."""


class RunNotFoundError(InputError):
    """An unknown or ambiguous run ID (or prefix)."""


class NotSupportedError(InputError):
    """An option this version of mlproj does not support yet."""


class HomeError(InputError):
    """MLPROJ_HOME cannot be used (not a folder, not writable): exit code 2, nothing ran."""


class StoreError(MlprojError):
    """The run store cannot be read or written (damaged, or the disk is full); the message names the
    file and says what to do."""


class ExecutionError(MlprojError):
    """A run that did not finish (raised by the synchronous Python API, like MLflow's ExecutionException)."""

    def __init__(self, message: str, run_id: str | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class EnvironmentBuildError(MlprojError):
    """An environment build that started and failed (exit code 1): the message ends with the installer's
    last lines."""


class TrackingError(MlprojError):
    """An MLflow tracking store refused a request (`code`: its error code, e.g. RESOURCE_DOES_NOT_EXIST)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TrackingUnreachable(TrackingError):
    """The tracking server could not be reached, or failed (HTTP 5xx): worth trying again later."""
