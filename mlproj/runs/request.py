"""What a recorded run executes: the one typed request between the planner, the store, the supervisor
and the backends (design.md §1). The planner records it with the run; the supervisor (and, through it,
every backend) executes it as recorded, so that a detached supervisor, `status` from another shell and a
cluster's job all agree on what the run is."""

from __future__ import annotations

from mlproj.runs.envspec import EnvSpec
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


@dataclass(frozen=True)
class RunRequest:
    """A project run or a pipeline step: a shell command, where it runs, in which environment, on
    which backend."""

    command: str  # the shell command, every value already quoted for where it stands
    cwd: str
    shell: str = "/bin/sh"  # the shell that runs it (bash where there is one, as MLflow)
    env: Mapping[str, str] = field(default_factory=dict)  # variables for the workload beyond the run's own
    env_manager: str = "local"
    env_spec: EnvSpec | None = None
    rebuild_env: bool = False
    backend: str = "local"
    backend_config: Mapping[str, Any] = field(default_factory=dict)
    # A project run: how it was asked, for `mlproj rerun` (the URI as typed but without credentials,
    # the version, the -P values as given, the caller's folder, the experiment ID, tracking on or off).
    asked: Mapping[str, Any] = field(default_factory=dict)

    @property
    def argv(self) -> tuple[str, str, str]:
        return (self.shell, "-c", self.command)

    def to_dict(self) -> dict[str, Any]:
        """What the store keeps (never registry credentials: see EnvSpec.to_dict)."""
        return {
            "command": self.command,
            "cwd": self.cwd,
            "shell": self.shell,
            "env": dict(self.env),
            "env_manager": self.env_manager,
            "env_spec": self.env_spec.to_dict() if self.env_spec is not None else None,
            "rebuild_env": self.rebuild_env,
            "backend": self.backend,
            "backend_config": dict(self.backend_config),
            "asked": dict(self.asked),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRequest:
        spec = data.get("env_spec")
        return cls(
            command=str(data["command"]),
            cwd=str(data["cwd"]),
            shell=str(data.get("shell") or "/bin/sh"),
            env=dict(data.get("env") or {}),
            env_manager=str(data.get("env_manager") or "local"),
            env_spec=EnvSpec.from_dict(dict(spec)) if spec else None,
            rebuild_env=bool(data.get("rebuild_env")),
            backend=str(data.get("backend") or "local"),
            backend_config=dict(data.get("backend_config") or {}),
            asked=dict(data.get("asked") or {}),
        )


@dataclass(frozen=True)
class PipelineRequest:
    """A pipeline run: the file it runs (and the run's copy of it) and how it was asked to run. Its
    supervisor plans the steps again from this, as `mlproj resume` does."""

    file: str  # the pipeline file as the user named it (errors name it; relative paths resolve there)
    snapshot: str  # the run's copy of the file: what the run runs
    uri: str
    version: str | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)  # -P name=value, as given
    env_manager: str | None = None
    max_parallel: int = 1
    force_rerun: bool = False
    continue_on_step_failure: bool = False
    caller_dir: str = "."
    rebuild_env: bool = False
    resume_from: str | None = None  # `mlproj resume`: the run whose finished steps are reused
    backend: str | None = None  # -b: where steps run unless they say
    backend_config: Mapping[str, Any] | None = None
    overrides: tuple[str, ...] = ()  # --set KEY.PATH=VALUE, in order (the snapshot has them applied)
    asset_map: str | None = None  # --asset-map

    def to_dict(self) -> dict[str, Any]:
        return {
            "overrides": list(self.overrides),
            "asset_map": self.asset_map,
            "file": self.file,
            "snapshot": self.snapshot,
            "uri": self.uri,
            "version": self.version,
            "inputs": dict(self.inputs),
            "env_manager": self.env_manager,
            "max_parallel": self.max_parallel,
            "force_rerun": self.force_rerun,
            "continue_on_step_failure": self.continue_on_step_failure,
            "caller_dir": self.caller_dir,
            "rebuild_env": self.rebuild_env,
            "resume_from": self.resume_from,
            "backend": self.backend,
            "backend_config": dict(self.backend_config) if self.backend_config is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineRequest:
        config = data.get("backend_config")
        return cls(
            file=str(data["file"]),
            snapshot=str(data["snapshot"]),
            uri=str(data.get("uri") or data["file"]),
            version=data.get("version"),
            inputs={str(k): str(v) for k, v in (data.get("inputs") or {}).items()},
            env_manager=data.get("env_manager"),
            max_parallel=int(data.get("max_parallel") or 1),
            force_rerun=bool(data.get("force_rerun")),
            continue_on_step_failure=bool(data.get("continue_on_step_failure")),
            caller_dir=str(data.get("caller_dir") or "."),
            rebuild_env=bool(data.get("rebuild_env")),
            resume_from=data.get("resume_from"),
            backend=data.get("backend"),
            overrides=tuple(str(item) for item in data.get("overrides") or ()),
            asset_map=data.get("asset_map"),
            backend_config=dict(config) if config is not None else None,
        )


Request = RunRequest | PipelineRequest


def request_from_dict(kind: str, data: Mapping[str, Any] | None) -> Request | None:
    """A stored request, read back as what its run's kind executes."""
    if not data:
        return None
    return PipelineRequest.from_dict(data) if kind == "pipeline" else RunRequest.from_dict(data)
