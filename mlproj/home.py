"""Where mlproj keeps its state: `MLPROJ_HOME` (default `~/.mlproj`), design.md §2."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from pathlib import Path


class Home:
    """MLPROJ_HOME. Its folders are `Path`s; `location` and `db_file` are plain strings, so that a command
    that only reads the run store (`status`) starts without importing pathlib."""

    __slots__ = ("location",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.location = os.fspath(root)

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> Home:
        """The home given, else `MLPROJ_HOME`, else `~/.mlproj`; always an absolute path."""
        value = os.fspath(root) if root is not None else os.environ.get("MLPROJ_HOME") or "~/.mlproj"
        value = os.path.expanduser(value)
        if not os.path.isabs(value):
            value = os.path.join(os.getcwd(), value)
        return cls(os.path.normpath(value))  # `a/../b` as `b`: paths under it compare as they are

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Home) and other.location == self.location

    def __hash__(self) -> int:
        return hash(self.location)

    def __repr__(self) -> str:
        return f"Home({self.location!r})"

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self.location)

    @property
    def db_file(self) -> str:
        return f"{self.location.rstrip('/')}/mlproj.db"

    @property
    def db_path(self) -> Path:
        return self.root / "mlproj.db"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def git_dir(self) -> Path:
        return self.root / "git"

    @property
    def published_dir(self) -> Path:
        """Published pipelines (design.md §10): `objects/` (their content), `<id>/pipeline.yml`."""
        return self.root / "published"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id
