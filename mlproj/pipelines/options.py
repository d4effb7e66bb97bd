"""How a pipeline run was asked to run (`mlproj run PIPELINE`'s flags, the Python API's arguments)."""

from __future__ import annotations

from pathlib import Path

from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


@dataclass(frozen=True)
class PipelineOptions:
    uri: str
    version: str | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)  # -P name=value, as given
    env_manager: str | None = None
    env_manager_from: str | None = None  # the settings file that named env_manager (None: the flag)
    experiment: str | None = None
    run_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    max_parallel: int | None = None
    force_rerun: bool = False
    continue_on_step_failure: bool = False
    timeout: float | None = None
    caller_dir: Path = field(default_factory=Path.cwd)
    run_id: str | None = None
    rebuild_env: bool = False
    resume_from: str | None = None  # `mlproj resume`: the run whose finished steps are reused
    backend: str | None = None  # -b: where steps run unless they say (over settings.backend)
    backend_config: Mapping[str, Any] | None = None
    tracking_uri: str | None = None  # MLflow tracking, as a project run's (design.md §8)
    tracking: bool = True
    experiment_id: str | None = None
    overrides: tuple[str, ...] = ()  # --set KEY.PATH=VALUE (design.md §9)
    asset_map: Path | None = None  # --asset-map FILE
    # Where a submit came from (design.md §10): published_pipeline_id, endpoint, schedule.
    origin: Mapping[str, str] = field(default_factory=dict)
