"""The interface every environment manager implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlproj.home import Home


@dataclass(frozen=True)
class PreparedEnv:
    """What a workload needs to run inside an environment: variables set for the child process only."""

    manager: str
    variables: Mapping[str, str] = field(default_factory=dict)
    prefix: str | None = None


class EnvManager(ABC):
    name: str

    @abstractmethod
    def prepare(self, project_dir: Path, home: Home, base_env: Mapping[str, str]) -> PreparedEnv:
        """Build (or reuse) the environment and say how to activate it."""
