"""What mlproj asks of an MLflow tracking store, whichever way it is reached (design.md §8)."""

from __future__ import annotations

import os

from mlproj.errors import TrackingError, TrackingUnreachable
from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

__all__ = ["TrackedRun", "Tracker", "TrackingError", "TrackingUnreachable", "local_artifact_dir", "unquote"]


@dataclass(frozen=True)
class TrackedRun:
    """An MLflow run that mlproj made: its ID, its experiment and where its artifacts go."""

    run_id: str
    experiment_id: str
    artifact_uri: str


class Tracker:
    """One tracking store. Every method raises TrackingError (refused) or TrackingUnreachable."""

    uri: str

    def close(self) -> None:
        """Let go of connections."""

    def experiment_id_by_name(self, name: str) -> str | None:
        raise NotImplementedError

    def create_experiment(self, name: str) -> str:
        raise NotImplementedError

    def experiment_name(self, experiment_id: str) -> str:
        raise NotImplementedError

    def create_run(
        self, experiment_id: str, *, run_name: str | None, start_time: int, user: str, tags: Mapping[str, str]
    ) -> TrackedRun:
        raise NotImplementedError

    def log_batch(
        self, run_id: str, *, params: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None
    ) -> None:
        raise NotImplementedError

    def log_batch_later(self, run_id: str, params: Mapping[str, str]) -> Callable[[], None]:
        """Log parameters, the answer read when the returned function is called (here: at once)."""
        self.log_batch(run_id, params=params)
        return lambda: None

    def end_run(self, run_id: str, status: str, end_time: int) -> None:
        raise NotImplementedError

    def finish(
        self, run_id: str, status: str, end_time: int, artifact: tuple[str, str, bytes] | None
    ) -> str | None:
        """Upload the artifact (root, path, bytes), then end the run. Returns why the upload failed for
        good (the run is ended all the same), or None; a store that is away is raised."""
        problem = None
        if artifact is not None:
            try:
                self.upload_artifact(run_id, *artifact)
            except TrackingUnreachable:
                raise
            except TrackingError as exc:
                problem = str(exc)
        self.end_run(run_id, status, end_time)
        return problem

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run as the REST API's runs/get shows it: {"info": {...}, "data": {"metrics": [...], ...}}."""
        raise NotImplementedError

    def search_runs(self, experiment_ids: Sequence[str], run_ids: Sequence[str]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def metric_history(self, run_id: str, key: str) -> list[float]:
        """Every value of a metric of a run, in the order logged."""
        raise NotImplementedError

    def upload_artifact(self, run_id: str, artifact_uri: str, path: str, data: bytes) -> None:
        raise NotImplementedError


def unquote(text: str) -> str:
    """Percent-decoding (urllib.parse.unquote's, without importing urllib)."""
    if "%" not in text:
        return text
    raw, parts = bytearray(), text.split("%")
    raw += parts[0].encode()
    for part in parts[1:]:
        try:
            raw.append(int(part[:2], 16))
            raw += part[2:].encode()
        except ValueError:
            raw += ("%" + part).encode()
    return raw.decode(errors="replace")


def local_artifact_dir(artifact_uri: str) -> str | None:
    """The folder of a `file:` (or plain path) artifact root on this machine; None for any other."""
    if artifact_uri.startswith("file://"):
        rest = artifact_uri[len("file://") :]
        if rest.startswith(("/", "localhost/")):
            return unquote(rest.removeprefix("localhost"))
        return None
    if artifact_uri.startswith("file:"):
        return unquote(artifact_uri[len("file:") :])
    if os.path.isabs(artifact_uri):
        return artifact_uri
    return None
