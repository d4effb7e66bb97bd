"""Where a key of a pipeline came from (its file, its key path there, the file's line numbers), and the
problems a load finds: every one of them is reported at once (design.md §9), not one per attempt."""

from __future__ import annotations

from pathlib import Path

from mlproj.errors import SpecError, SpecErrors
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Where:
    """A mapping of a pipeline document: the file it was written in, its key path there (`jobs.train`,
    or "" for the top level), and that file's line numbers by key path."""

    file: Path
    path: str = ""
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def key(self, relative: str) -> str:
        return ".".join(part for part in (self.path, relative) if part)

    def at(self, relative: str) -> Where:
        """The mapping at `relative` below this one, in the same file."""
        return Where(self.file, self.key(relative), self.lines)

    def error(self, relative: str, message: str) -> SpecError:
        key = self.key(relative)
        line, probe = None, key
        while probe:
            line = self.lines.get(probe)
            if line is not None or "." not in probe:
                break
            probe = probe.rsplit(".", 1)[0]
        if line is None:
            line = self.lines.get(probe)
        return SpecError(self.file, key or None, message, line=line)


class Problems:
    """The problems found so far; `check` raises them together (one: as it is)."""

    def __init__(self) -> None:
        self.found: list[SpecError] = []

    def add(self, error: SpecError) -> None:
        if str(error) not in {str(found) for found in self.found}:
            self.found.append(error)

    def __bool__(self) -> bool:
        return bool(self.found)

    def check(self, file: Path) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise SpecErrors(file, self.found)


@dataclass
class Job:
    """One step to read: its (flattened) name, its body, where it was written, and where the keys that
    came from its component were written."""

    name: str
    body: dict[str, Any]
    where: Where
    origins: dict[str, Where] = field(default_factory=dict)  # key (`command`, `inputs.lr`) → its file's
    missing: set[str] = field(default_factory=set)  # required inputs given no value (one problem each)

    def origin(self, relative: str) -> Where:
        parts = relative.split(".")
        for size in range(len(parts), 0, -1):
            found = self.origins.get(".".join(parts[:size]))
            if found is not None:
                return found
        return self.where

    def error(self, relative: str, message: str) -> SpecError:
        return self.origin(relative).error(relative, message)

    def folder(self, relative: str) -> Path:
        """The folder a relative path at `relative` is relative to: its file's."""
        return self.origin(relative).file.parent
