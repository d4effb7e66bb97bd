"""What a run left behind (design.md §12, `mlproj artifacts`): a project run's files under its folder (its
log, and what it wrote there), a pipeline run's outputs (each step's, its latest attempt; a reused
step's are the run's it reused), each file with its size; and a copy of them somewhere else.

Links inside an output are listed and copied as links, never followed: a copy holds what the run
made, not what a link of it points at."""

from __future__ import annotations

import os
from pathlib import Path

from mlproj.errors import InputError
from mlproj.runs.status import RunKind
from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store


@dataclass(frozen=True)
class Artifact:
    """One file: the step and output it belongs to ("" for a project run's folder), its path inside
    the output (or the folder), where it is, its size in bytes (None for a link)."""

    step: str
    output: str
    name: str
    path: str
    size: int | None

    def to_dict(self) -> dict[str, object]:
        return {
            "step": self.step,
            "output": self.output,
            "name": self.name,
            "path": self.path,
            "size": self.size,
        }


def roots(store: Store, record: RunRecord, step: str | None = None) -> list[tuple[str, str, Path]]:
    """(step, output, where) of each output of the run: a project run's folder (and its declared
    outputs), a pipeline run's steps' outputs (`step`: one step's only)."""
    if record.kind is not RunKind.PIPELINE:
        if step is not None:
            raise InputError(
                f"--step: run {record.run_id} is a {record.kind} run; only pipeline runs have steps"
            )
        folder = Path(record.run_dir) if record.run_dir else None
        # A step run's outputs are in its folder: listed with it, not twice.
        found = [
            ("", name, Path(path))
            for name, path in record.outputs.items()
            if folder is None or not Path(path).is_relative_to(folder)
        ]
        if folder is not None:
            found.insert(0, ("", "", folder))
        return found
    latest: dict[str, RunRecord] = {}
    for attempt in store.steps_of(record.run_id):  # oldest first: each step's last attempt wins
        latest[attempt.step or ""] = attempt
    if step is not None and step not in latest:
        known = ", ".join(sorted(latest)) or "none"
        raise InputError(f"--step {step!r}: run {record.run_id} has no such step (steps: {known})")
    return [
        (name, output, Path(path))
        for name, attempt in latest.items()
        if step is None or name == step
        for output, path in attempt.outputs.items()
    ]


def artifacts(store: Store, record: RunRecord, step: str | None = None) -> list[Artifact]:
    """Every file of the run's outputs, in order of step, output and path."""
    found = []
    for step_name, output, root in roots(store, record, step):
        for relative, where in _files(root):
            size = None if where.is_symlink() else where.stat().st_size
            found.append(Artifact(step_name, output, relative, str(where), size))
    return found


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    if root.is_symlink() or root.is_file():
        yield root.name, root
        return
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):  # links to folders are not walked into
        dirs.sort()
        here = Path(folder)
        for name in sorted(files) + sorted(d for d in dirs if (here / d).is_symlink()):
            yield str((here / name).relative_to(root)), here / name


def copy(found: list[Artifact], destination: Path) -> int:
    """Copy the files to `destination` (made; it must be empty): a project run's as they are in its
    folder, a pipeline's under STEP/OUTPUT/. Returns the bytes copied."""
    import shutil

    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise InputError(f"--download {destination}: expected a new or empty folder")
    copied = 0
    for artifact in found:
        target = destination.joinpath(
            *(part for part in (artifact.step, artifact.output) if part), artifact.name
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(destination.resolve()):  # through a link: never
            raise InputError(f"--download: {artifact.name!r} would be written outside {destination}")
        source = Path(artifact.path)
        if source.is_symlink():
            target.symlink_to(source.readlink())
            continue
        shutil.copy2(source, target)
        copied += artifact.size or 0
    return copied
