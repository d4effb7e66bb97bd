"""A published pipeline's snapshot (design.md §10): the resolved pipeline, and the content of every
code folder, project folder and environment file it uses, copied once into a content-addressed store
(`MLPROJ_HOME/published/objects/<sha256>/`) that publications share; a run works in its own copy of
what it uses from there (mlproj.pipelines.plan), so nothing a run writes reaches the store. Git
projects are pinned to the commit their version named when the pipeline was published. Editing the
files afterwards changes nothing that a submit of the publication runs.

Data inputs (files and folders a pipeline reads) are not copied: a publication refers to them, as an
Azure ML published pipeline refers to its datastore paths.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from mlproj.errors import InputError, MlprojError
from mlproj.structs import replace

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from mlproj.home import Home
    from mlproj.pipelines.model import Pipeline, Step

SKIPPED = (".git", "__pycache__")  # as a step's code copy skips them (mlproj.pipelines.worker)
PIPELINE_FILE = "pipeline.yml"


def snapshot(home: Home, pipeline: Pipeline, publication_id: str) -> Path:
    """Write the publication's pipeline (its folders and files copied into the object store, Git
    projects pinned) under `published/<id>/`; its path."""
    objects = Objects(home.published_dir / "objects", home.root)
    pinned = {name: _pinned(step, pipeline.folder, objects, home) for name, step in pipeline.steps.items()}
    templates = {
        name: _pinned(step, pipeline.folder, objects, home) for name, step in pipeline.templates.items()
    }
    folder = home.published_dir / publication_id
    folder.mkdir(parents=True, exist_ok=False)
    target = folder / PIPELINE_FILE
    frozen = replace(pipeline, steps=pinned, templates=templates)
    target.write_text(frozen.to_text(), encoding="utf-8")
    return target


def _pinned(step: Step, base: Path, objects: Objects, home: Home) -> Step:
    """A step whose local folders and files are the object store's copies, its Git project pinned."""
    if step.is_control:
        return step
    changes: dict[str, Any] = {}
    if step.type == "mlflow_project" and step.uri:
        from mlproj.sources import fetch, is_git_uri

        source = fetch(step.uri, step.version, home, base)
        if is_git_uri(step.uri.partition("#")[0]):
            changes["version"] = source.commit  # the same repository, at the commit it named now
        else:
            changes["uri"] = str(objects.add(source.path))
            changes["version"] = None
    if step.code:
        changes["code"] = str(objects.add((base / step.code).absolute()))
    environment = dict(step.environment or {})
    for key in ("conda_file", "python_env"):
        value = environment.get(key)
        if isinstance(value, str) and value:
            environment[key] = str(objects.add((base / value).absolute()))
    if environment != dict(step.environment or {}):
        changes["environment"] = environment
    return replace(step, **changes) if changes else step


class Objects:
    """Folders and files stored by the digest of their content: `objects/<sha256>/` holds a folder's
    files, or (for a file) the file under its own name."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.home = home.resolve()

    def add(self, source: Path) -> Path:
        """The stored copy of `source`: made once, shared by every publication with that content."""
        if not source.exists():
            raise MlprojError(f"cannot publish: {source} does not exist")
        digest = self.digest(source)
        target = self.root / digest
        stored = target / source.name if source.is_file() else target
        if target.is_dir():
            return stored
        self.root.mkdir(parents=True, exist_ok=True)
        import tempfile

        partial = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}.", suffix=".partial", dir=self.root))
        try:
            if source.is_file():
                shutil.copy2(source, partial / source.name)
            else:
                partial.rmdir()
                shutil.copytree(source, partial, symlinks=True, ignore=self._ignored)
            _read_only(partial)
            partial.rename(target)  # whole or not at all; another publisher may have won the race
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if not target.is_dir():
                raise MlprojError(f"cannot publish {source}: {exc.strerror or exc}") from None
        return stored

    def digest(self, source: Path) -> str:
        """SHA-256 of the names, kinds and bytes under `source` (what would be copied)."""
        import hashlib

        total = hashlib.sha256()
        if source.is_file():
            total.update(b"file\0" + source.name.encode() + b"\0")
            total.update(_file_digest(source))
            return total.hexdigest()
        for relative, path in self._walk(source):
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                _inside(source, path)
                total.update(b"link\0" + relative.encode() + b"\0" + str(path.readlink()).encode() + b"\0")
            else:
                executable = b"x" if mode & stat.S_IXUSR else b"-"
                total.update(b"file\0" + relative.encode() + b"\0" + executable + _file_digest(path))
        return total.hexdigest()

    def _walk(self, root: Path) -> Iterator[tuple[str, Path]]:
        for folder, names, files in os.walk(root):
            here = Path(folder)
            names[:] = sorted(set(names) - self._ignored(folder, names))
            for name in sorted(files):
                path = here / name
                yield path.relative_to(root).as_posix(), path
            for name in names:  # symbolic links to folders are kept as links, not followed
                if (here / name).is_symlink():
                    yield (here / name).relative_to(root).as_posix(), here / name

    def _ignored(self, folder: str, names: list[str]) -> set[str]:
        here = Path(folder).resolve()
        return {name for name in names if name in SKIPPED or (here / name).resolve() == self.home}


def _file_digest(path: Path) -> bytes:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _inside(root: Path, link: Path) -> None:
    """A link is published as a link: one that leads out of its folder would let what a publication
    runs change after it was published (and would not lead anywhere in the store's copy)."""
    target = Path(os.path.normpath(link.parent / link.readlink()))
    try:
        target.relative_to(root)
    except ValueError:
        raise InputError(
            f"cannot publish {root}: the link {link.relative_to(root)} leads out of it (to {target}); "
            "copy what it points at into the folder"
        ) from None


def _read_only(root: Path) -> None:
    """A stored copy's files lose their write bits (its folders keep theirs, so that it can be removed):
    nothing is meant to write there, and a run works in its own copy."""
    for folder, _names, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
