"""A tracking store that is not an http(s) server (`sqlite:`, `file:`, `postgresql:`, `databricks`…),
through the `mlflow` package (`pip install 'mlproj[mlflow]'`), imported only for such a store."""

from __future__ import annotations

import os

from mlproj.errors import InputError, TrackingError, TrackingUnreachable
from mlproj.tracking.base import TrackedRun, Tracker

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

HINT = "pip install 'mlproj[mlflow]' (or --no-tracking)"


class PackageTracker(Tracker):
    def __init__(self, uri: str) -> None:
        from mlproj.urls import strip_credentials

        self.uri = uri
        shown = self.shown = strip_credentials(uri)  # what messages say: never the credentials
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise InputError(
                f"tracking URI {shown}: a store other than an http(s) server needs the mlflow package; {HINT}"
            ) from None
        try:
            self.client = MlflowClient(tracking_uri=uri)
        except Exception as exc:  # noqa: BLE001 - mlflow raises many kinds for a URI it cannot use
            raise TrackingError(f"tracking URI {shown}: {_message(exc)}") from None

    def _do(self, action: Any, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return action(*args, **kwargs)
        except MlflowException as exc:
            code = getattr(exc, "error_code", None)
            raise TrackingError(f"tracking store {self.shown}: {_message(exc)}", code=code) from None
        except OSError as exc:
            raise TrackingUnreachable(f"tracking store {self.shown}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a database driver's own errors (connection lost…)
            raise TrackingUnreachable(f"tracking store {self.shown}: {_message(exc)}") from None

    def experiment_id_by_name(self, name: str) -> str | None:
        experiment = self._do(self.client.get_experiment_by_name, name)
        if experiment is None:
            return None
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(f"the MLflow experiment {name!r} is deleted (restore it or pick another)")
        return str(experiment.experiment_id)

    def create_experiment(self, name: str) -> str:
        return str(self._do(self.client.create_experiment, name))

    def experiment_name(self, experiment_id: str) -> str:
        experiment = self._do(self.client.get_experiment, experiment_id)
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(f"the MLflow experiment {experiment_id} is deleted")
        return str(experiment.name)

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        start_time: int,
        user: str,  # noqa: ARG002 - the Tracker interface; mlflow takes it from the mlflow.user tag
        tags: Mapping[str, str],
    ) -> TrackedRun:
        run = self._do(
            self.client.create_run, experiment_id, start_time=start_time, tags=dict(tags), run_name=run_name
        )
        return TrackedRun(
            run_id=run.info.run_id,
            experiment_id=str(run.info.experiment_id),
            artifact_uri=run.info.artifact_uri,
        )

    def log_batch(
        self, run_id: str, *, params: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None
    ) -> None:
        from mlflow.entities import Param, RunTag

        self._do(
            self.client.log_batch,
            run_id,
            params=[Param(k, v) for k, v in (params or {}).items()],
            tags=[RunTag(k, v) for k, v in (tags or {}).items()],
        )

    def end_run(self, run_id: str, status: str, end_time: int) -> None:
        self._do(self.client.set_terminated, run_id, status=status, end_time=end_time)

    def get_run(self, run_id: str) -> dict[str, Any]:
        run = self._do(self.client.get_run, run_id)
        return {
            "info": {
                "run_id": run.info.run_id,
                "status": run.info.status,
                "experiment_id": run.info.experiment_id,
            },
            "data": {
                "metrics": [{"key": k, "value": v} for k, v in run.data.metrics.items()],
                "params": [{"key": k, "value": v} for k, v in run.data.params.items()],
                "tags": [{"key": k, "value": v} for k, v in run.data.tags.items()],
            },
        }

    def metric_history(self, run_id: str, key: str) -> list[float]:
        got = self._do(self.client.get_metric_history, run_id, key)
        return [float(m.value) for m in sorted(got, key=lambda m: (m.timestamp, m.step))]

    def search_runs(self, experiment_ids: Sequence[str], run_ids: Sequence[str]) -> list[dict[str, Any]]:  # noqa: ARG002 - the Tracker interface
        return [self.get_run(run_id) for run_id in run_ids]

    def upload_artifact(self, run_id: str, artifact_uri: str, path: str, data: bytes) -> None:  # noqa: ARG002 - the Tracker interface
        import tempfile

        folder, name = os.path.split(path)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name)
            with open(local, "wb") as file:
                file.write(data)
            self._do(self.client.log_artifact, run_id, local, folder or None)


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
