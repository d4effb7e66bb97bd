"""The Python API: `mlproj.run(...)` → `SubmittedRun`, shaped like `mlflow.projects.run` (design.md §7)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlproj.errors import ExecutionError
from mlproj.home import Home
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.runs.record import RunRecord
    from mlproj.ui.console import PlainView


class SubmittedRun:
    """A run that was started: follow it, wait for it, cancel it (like MLflow's `SubmittedRun`)."""

    def __init__(self, run_id: str, home: Home | None = None) -> None:
        self.run_id = run_id
        self._home = home or Home.from_env()

    def __repr__(self) -> str:
        return f"SubmittedRun(run_id={self.run_id!r}, status={self.get_status()!r})"

    def _store(self) -> Store:
        return Store.open(self._home)

    def get_status(self) -> str:
        """The run's status name (design.md §3), reconciled."""
        from mlproj.execution.reconcile import reconcile

        store = self._store()
        try:
            return reconcile(store, store.get(self.run_id)).status.value
        finally:
            store.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends; True if it `Finished`. Raises TimeoutError if `timeout` passes."""
        from mlproj.execution.control import wait
        from mlproj.values import check_timeout

        check_timeout(timeout, "timeout")
        store = self._store()
        try:
            final = wait(store, self.run_id, timeout=timeout)
        finally:
            store.close()
        if final is None:
            raise TimeoutError(f"run {self.run_id} did not end within {timeout} s")
        return final.status is RunStatus.FINISHED

    def cancel(self, grace: float = 10.0) -> None:
        """Stop every process of the run (SIGTERM, SIGKILL after `grace`) and record `Canceled`."""
        from mlproj.execution.control import cancel

        store = self._store()
        try:
            cancel(store, store.get(self.run_id), grace)
        finally:
            store.close()

    @property
    def mlflow_run_id(self) -> str | None:
        """The run's MLflow run (design.md §8), None when it is not tracked."""
        store = self._store()
        try:
            return store.get(self.run_id).mlflow_run_id
        finally:
            store.close()

    def get_record(self) -> dict[str, Any]:
        """The run's JSON record (design.md §5)."""
        from mlproj.execution.reconcile import reconcile

        store = self._store()
        try:
            return reconcile(store, store.get(self.run_id)).to_dict()
        finally:
            store.close()


def _overrides(given: Sequence[str] | Mapping[str, Any] | None) -> tuple[str, ...] | None:
    """`overrides` as `--set` texts (a mapping's values written as JSON, so that text stays text)."""
    if not given:
        return None
    if isinstance(given, Mapping):
        import json

        return tuple(f"{key}={json.dumps(value)}" for key, value in given.items())
    return tuple(str(item) for item in given)


def run(
    uri: str,
    entry_point: str = "main",
    version: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    experiment_name: str | None = None,
    experiment_id: str | int | None = None,
    backend: str | None = None,  # None: the settings' (MLPROJ_HOME/config.toml, mlproj.toml), else local
    backend_config: Mapping[str, Any] | str | None = None,
    storage_dir: str | os.PathLike[str] | None = None,
    synchronous: bool = True,  # noqa: FBT001, FBT002 - mlflow.projects.run's signature
    run_id: str | None = None,
    run_name: str | None = None,
    env_manager: str | None = None,
    docker_args: Mapping[str, Any] | None = None,
    build_image: bool = False,  # noqa: FBT001, FBT002 - mlflow.projects.run's signature
    docker_auth: Mapping[str, Any] | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    timeout: float | None = None,
    rebuild_env: bool = False,
    home: str | os.PathLike[str] | None = None,
    max_parallel: int | None = None,
    force_rerun: bool = False,
    continue_on_step_failure: bool = False,
    tracking_uri: str | None = None,
    tracking: bool = True,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    asset_map: str | os.PathLike[str] | None = None,
    strict_params: bool | None = None,
) -> SubmittedRun:
    """Run a project; see `mlflow.projects.run`. A synchronous run that does not finish raises
    `ExecutionError`; its output is streamed to `sys.stdout` as it comes.

    `uri` may also name a pipeline file: `parameters` then sets its inputs, and the result is a
    `PipelineRun` (`max_parallel`, `force_rerun` and `continue_on_step_failure` apply to pipelines).
    `backend` (`local`, `slurm`, `ray`, `kubernetes`, or an installed plugin) and `backend_config` (a
    mapping, or JSON text or a file) say where it runs. `docker_args`, `build_image` and `docker_auth`
    apply to docker_env projects. `rebuild_env=True` builds the environment again instead of reusing it.
    MLflow tracking is on when `tracking_uri` (else MLFLOW_TRACKING_URI) names a store, unless
    `tracking=False`; `experiment_id` is then an MLflow experiment's, as in MLflow. For a pipeline,
    `overrides` sets keys of its file (`{"jobs.train.inputs.lr": 0.1}`, or `KEY.PATH=VALUE` strings, as
    `--set`), and `asset_map` names an Azure ML pipeline's asset map (design.md §9).
    """
    from mlproj.backends import load_backend_config
    from mlproj.submit import Foreground, options_for, submit

    config = load_backend_config(backend_config) if isinstance(backend_config, str) else backend_config
    resolved_home = Home.from_env(home)
    store = Store.open(resolved_home)
    try:
        from mlproj.tracking import tracking_uri as known_tracking_uri

        experiment, mlflow_experiment = experiment_name, None
        cwd = Path.cwd()
        known = known_tracking_uri(
            tracking_uri, enabled=tracking, caller_dir=cwd, folders=(cwd,), home=str(resolved_home.root)
        )
        tracked = known is not None
        if experiment_id is not None and tracked:
            mlflow_experiment = str(experiment_id)
        elif experiment_id is not None:
            experiment = store.experiment_name(int(experiment_id))
        docker = {
            "docker_args": {str(k): str(v) for k, v in (docker_args or {}).items()},
            "build_image": build_image,
            "docker_auth": dict(docker_auth) if docker_auth else None,
        }
        options = options_for(
            str(uri),
            entry_point=None if entry_point == "main" else entry_point,
            version=version,
            parameters={str(k): _param_text(v) for k, v in (parameters or {}).items()},
            env_manager=env_manager,
            backend=backend,
            backend_config=dict(config) if config else None,
            experiment=experiment,
            experiment_id=mlflow_experiment,
            tracking_uri=tracking_uri,
            tracking=None if tracking else False,
            run_name=run_name,
            tags=dict(tags or {}),
            storage_dir=Path(storage_dir).absolute() if storage_dir else None,
            timeout=timeout,
            run_id=run_id,
            rebuild_env=rebuild_env,
            docker=docker if docker_args or build_image or docker_auth else None,
            max_parallel=max_parallel,
            force_rerun=force_rerun,
            continue_on_step_failure=continue_on_step_failure,
            overrides=_overrides(overrides),
            asset_map=Path(asset_map).absolute() if asset_map else None,
            strict_params=strict_params,
        )
        foreground = Foreground(output=_write_stdout, view=_events_to_stdout)
        from mlproj import notices

        stop = notices.listen(_user_warning)
        try:
            record = submit(store, options, detach=not synchronous, foreground=foreground)
        finally:
            stop()
    finally:
        store.close()
    if record.kind is RunKind.PIPELINE:
        from mlproj.api.pipeline import PipelineRun

        if synchronous:
            raise_unless_finished(record, "pipeline run")
        return PipelineRun(None, record.run_id, resolved_home)
    if synchronous:
        raise_unless_finished(record)
    return SubmittedRun(record.run_id, resolved_home)


def _user_warning(message: str) -> None:
    """A warning of mlproj's (an MLproject key it does not read…), as Python code hears warnings."""
    import warnings

    warnings.warn(message, UserWarning, stacklevel=4)


def raise_unless_finished(record: RunRecord, what: str = "run") -> None:
    """A synchronous run that did not end `Finished` raises `ExecutionError`, as MLflow's does."""
    status = record.status.value
    if record.status is not RunStatus.FINISHED:
        reason = record.error or "no reason recorded"
        raise ExecutionError(
            f"{what} {record.run_id} {status}: {reason}", run_id=record.run_id, status=status
        )


def _events_to_stdout(record: RunRecord) -> PlainView:  # noqa: ARG001 - Foreground.view's signature
    """A synchronous pipeline's events, one line each on sys.stdout."""
    from mlproj.ui.console import PlainView, Text

    return PlainView(Text(sys.stdout))


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _write_stdout(data: bytes) -> None:
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode("utf-8", errors="replace"))
        stream.flush()
