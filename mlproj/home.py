"""Where mlproj keeps its state: `MLPROJ_HOME` (default `~/.mlproj`), design.md §2."""

from __future__ import annotations

import os
from pathlib import Path

from mlproj.structs import dataclass


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> Home:
        """The home given, else `MLPROJ_HOME`, else `~/.mlproj`; always an absolute path."""
        value = root if root is not None else os.environ.get("MLPROJ_HOME") or Path.home() / ".mlproj"
        return cls(Path(value).expanduser().absolute())

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

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id
