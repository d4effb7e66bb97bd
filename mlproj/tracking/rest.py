"""An MLflow tracking server spoken to through its REST API (`/api/2.0/mlflow/…`), as MLflow's own
`RestStore` does, without importing the `mlflow` package (design.md §8).

Credentials come from MLflow's variables: `MLFLOW_TRACKING_TOKEN` (a bearer token), or
`MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` (basic), or user:password in the URI;
`MLFLOW_TRACKING_INSECURE_TLS=true` skips the TLS check, `MLFLOW_TRACKING_SERVER_CERT_PATH` names a CA
bundle.
"""

from __future__ import annotations

import json
import os

from mlproj.errors import TrackingError, TrackingUnreachable
from mlproj.tracking.base import TrackedRun, Tracker
from mlproj.tracking.http import Endpoint, HttpError, Session

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
TIMEOUT = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120)
PACKAGE_HINT = "pip install 'mlproj[mlflow]'"
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def quote(text: str, safe: frozenset[int] = _SAFE) -> str:
    """Percent-encoding, as urllib.parse.quote does it (without importing urllib)."""
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in text.encode())


def quote_value(text: str) -> str:
    return quote(text, _SAFE - {ord("/")})


class RestTracker(Tracker):
    def __init__(self, uri: str, *, timeout: float = TIMEOUT) -> None:
        from mlproj.urls import strip_credentials

        self.uri = uri
        self.shown = strip_credentials(uri)  # what messages say: never the credentials
        try:
            endpoint = Endpoint.parse(uri)
        except ValueError as exc:
            raise TrackingError(f"tracking URI {self.shown}: {str(exc).partition(': ')[2] or exc}") from None
        self.session = Session(endpoint, _auth_headers(uri), timeout, verify=_verify())

    def close(self) -> None:
        self.session.close()

    def _pick(self, got: Any, *keys: str) -> Any:
        """got[k1][k2]…, or a TrackingError naming what the answer lacks (not an MLflow server's)."""
        value = got
        for key in keys:
            if not isinstance(value, dict) or value.get(key) is None:
                raise TrackingError(f"tracking server {self.shown}: an answer without {'.'.join(keys)}")
            value = value[key]
        return value

    def _start(
        self, method: str, path: str, body: bytes | None, content_type: str = "application/json"
    ) -> Callable[[], dict[str, Any]]:
        """Send a request on a connection of its own and return what reads its answer: the server
        works on it while mlproj goes on."""
        own = Session(
            self.session.endpoint, self.session.headers, self.session.timeout, verify=self.session.verify
        )
        try:
            own.send(method, path, body, content_type)
        except HttpError as exc:
            own.close()
            raise TrackingUnreachable(f"tracking server {exc}") from None

        def result() -> dict[str, Any]:
            try:
                answer = own.receive()
            except HttpError as exc:
                raise TrackingUnreachable(f"tracking server {exc}") from None
            finally:
                own.close()
            return _answer(self.shown, answer.status, answer.body)

        return result

    def _call(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        try:
            answer = self.session.request(method, path, body)
        except HttpError as exc:
            raise TrackingUnreachable(f"tracking server {exc}") from None
        return _answer(self.shown, answer.status, answer.body)

    # Experiments
    def experiment_id_by_name(self, name: str) -> str | None:
        prefetched = _PREFETCHED.pop((self.uri, name), None)
        try:
            try:
                got = prefetched() if prefetched is not None else self._get_by_name(name)
            except TrackingUnreachable:
                if prefetched is None:
                    raise
                got = self._get_by_name(name)  # the early request failed: ask again now
        except TrackingError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        experiment = self._pick(got, "experiment")
        if experiment.get("lifecycle_stage") == "deleted":
            raise TrackingError(f"the MLflow experiment {name!r} is deleted (restore it or pick another)")
        return str(self._pick(experiment, "experiment_id"))

    def _get_by_name(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"{API}/experiments/get-by-name?experiment_name={quote_value(name)}")

    def create_experiment(self, name: str) -> str:
        return str(
            self._pick(self._call("POST", f"{API}/experiments/create", {"name": name}), "experiment_id")
        )

    def experiment_name(self, experiment_id: str) -> str:
        got = self._call("GET", f"{API}/experiments/get?experiment_id={quote_value(experiment_id)}")
        experiment = got.get("experiment") or {}
        if experiment.get("lifecycle_stage") == "deleted":
            raise TrackingError(f"the MLflow experiment {experiment_id} is deleted")
        return str(experiment.get("name") or experiment_id)

    # Runs
    def create_run(
        self, experiment_id: str, *, run_name: str | None, start_time: int, user: str, tags: Mapping[str, str]
    ) -> TrackedRun:
        payload: dict[str, Any] = {
            "experiment_id": experiment_id,
            "user_id": user,
            "start_time": start_time,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        if run_name:
            payload["run_name"] = run_name
        info = self._pick(self._call("POST", f"{API}/runs/create", payload), "run", "info")
        return TrackedRun(
            run_id=str(self._pick(info, "run_id")),
            experiment_id=str(info.get("experiment_id") or experiment_id),
            artifact_uri=str(info.get("artifact_uri") or ""),
        )

    def log_batch(
        self, run_id: str, *, params: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None
    ) -> None:
        # A server takes at most 100 params in one batch (MLflow's own limit).
        items = [("params", k, v) for k, v in (params or {}).items()]
        items += [("tags", k, v) for k, v in (tags or {}).items()]
        for start in range(0, len(items), 100):
            batch: dict[str, Any] = {"run_id": run_id, "params": [], "tags": []}
            for kind, key, value in items[start : start + 100]:
                batch[kind].append({"key": key, "value": value})
            self._call("POST", f"{API}/runs/log-batch", batch)

    def log_batch_later(self, run_id: str, params: Mapping[str, str]) -> Callable[[], None]:
        if len(params) > 100:
            return super().log_batch_later(run_id, params)
        batch = {"run_id": run_id, "params": [{"key": k, "value": v} for k, v in params.items()]}
        started = self._start("POST", f"{API}/runs/log-batch", json.dumps(batch).encode())

        def settle() -> None:
            started()

        return settle

    def end_run(self, run_id: str, status: str, end_time: int) -> None:
        self._call("POST", f"{API}/runs/update", {"run_id": run_id, "status": status, "end_time": end_time})

    def finish(
        self, run_id: str, status: str, end_time: int, artifact: tuple[str, str, bytes] | None
    ) -> str | None:
        """The log upload and the end sent together, on two connections."""
        if artifact is None or not artifact[0].startswith("mlflow-artifacts:"):
            return super().finish(run_id, status, end_time, artifact)
        root, path, data = artifact
        location = _proxied_location(root)
        upload = self._start(
            "PUT", f"{ARTIFACTS}/{quote(location)}/{quote(path)}", data, "application/octet-stream"
        )
        update = {"run_id": run_id, "status": status, "end_time": end_time}
        try:
            ended = self._start("POST", f"{API}/runs/update", json.dumps(update).encode())
        except TrackingUnreachable:
            _outcome(upload)  # its answer read (or its failure raised) before the update's is
            raise
        try:
            upload_problem = _outcome(upload)
        finally:
            ended()  # read in any case: it closes its connection (and raises when the server is away)
        return upload_problem

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self._pick(self._call("GET", f"{API}/runs/get?run_id={quote_value(run_id)}"), "run"))

    def metric_history(self, run_id: str, key: str) -> list[float]:
        path = f"{API}/metrics/get-history?run_id={quote_value(run_id)}&metric_key={quote_value(key)}"
        got = self._call("GET", path).get("metrics") or []
        ordered = sorted(got, key=lambda m: (int(m.get("timestamp") or 0), int(m.get("step") or 0)))
        return [float(m["value"]) for m in ordered]

    def search_runs(self, experiment_ids: Sequence[str], run_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The runs among `run_ids` (in those experiments), as runs/get gives each."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(run_ids), 100):
            ids = ", ".join(f"'{run_id}'" for run_id in run_ids[start : start + 100])
            payload = {
                "experiment_ids": list(experiment_ids),
                "filter": f"attributes.run_id IN ({ids})",
                "max_results": 1000,
            }
            found += self._call("POST", f"{API}/runs/search", payload).get("runs") or []
        return found

    # Artifacts
    def list_artifacts(self, run_id: str, path: str) -> list[dict[str, Any]]:
        """The entries of a folder of a run's artifacts ({"path", "is_dir", "file_size"})."""
        query = f"run_id={quote_value(run_id)}" + (f"&path={quote_value(path)}" if path else "")
        return list(self._call("GET", f"{API}/artifacts/list?{query}").get("files") or [])

    def read_artifact(self, artifact_uri: str, path: str) -> bytes:
        """A file under a run's artifact root: through the server when it proxies it, or read here
        when the root is a local folder."""
        if artifact_uri.startswith("mlflow-artifacts:"):
            location = _proxied_location(artifact_uri)
            try:
                answer = self.session.request("GET", f"{ARTIFACTS}/{quote(location)}/{quote(path)}")
            except HttpError as exc:
                raise TrackingUnreachable(f"tracking server {exc}") from None
            if answer.status != 200:
                _answer(self.shown, answer.status, answer.body)
                raise TrackingError(f"tracking server {self.shown}: artifact {path}: HTTP {answer.status}")
            return answer.body
        from mlproj.tracking.base import local_artifact_dir

        root = local_artifact_dir(artifact_uri)
        if root is None:
            raise TrackingError(
                f"artifact root {artifact_uri}: only the mlflow package reads it; {PACKAGE_HINT}"
            )
        try:
            with open(os.path.join(root, path), "rb") as file:
                return file.read()
        except OSError as exc:
            raise TrackingError(f"artifact {path}: {exc.strerror or exc}") from None

    def upload_artifact(self, run_id: str, artifact_uri: str, path: str, data: bytes) -> None:  # noqa: ARG002 - the Tracker interface
        """Put a file under a run's artifact root; a root the server does not proxy is copied here when
        it is a local folder, and is a TrackingError otherwise."""
        if artifact_uri.startswith("mlflow-artifacts:"):
            location = _proxied_location(artifact_uri)
            try:
                answer = self.session.request(
                    "PUT", f"{ARTIFACTS}/{quote(location)}/{quote(path)}", data, "application/octet-stream"
                )
            except HttpError as exc:
                raise TrackingUnreachable(f"tracking server {exc}") from None
            _answer(self.shown, answer.status, answer.body)
            return
        _copy_to_local_root(artifact_uri, path, data)


_PREFETCHED: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {}


def prefetch_experiment(uri: str, name: str) -> None:
    """Ask the server for the experiment `name` now, and read the answer when the run is recorded:
    the command line sends it before it imports the rest of mlproj (start-up, bench/tracking_overhead.py).
    Anything that goes wrong is left for the request made the usual way."""
    try:
        tracker = RestTracker(uri)
        _PREFETCHED[(uri, name)] = tracker._start(
            "GET", f"{API}/experiments/get-by-name?experiment_name={quote_value(name)}", None
        )
    except (TrackingError, ValueError, OSError):  # a bad URI is said when the run is planned
        pass


def _outcome(call: Callable[[], dict[str, Any]]) -> str | None:
    """Why an upload failed for good (the run still ends), or None; a server away is raised."""
    try:
        call()
    except TrackingUnreachable:
        raise
    except TrackingError as exc:
        return str(exc)
    return None


def _proxied_location(artifact_uri: str) -> str:
    """`mlflow-artifacts:/1/r/artifacts` or `mlflow-artifacts://host:port/1/r/artifacts` → `1/r/artifacts`."""
    rest = artifact_uri.partition(":")[2]
    return rest[2:].partition("/")[2] if rest.startswith("//") else rest.lstrip("/")


def _copy_to_local_root(artifact_uri: str, path: str, data: bytes) -> None:
    from mlproj.tracking.base import local_artifact_dir

    root = local_artifact_dir(artifact_uri)
    if root is None:
        raise TrackingError(
            f"artifact root {artifact_uri}: mlproj uploads to the tracking server's proxied artifacts "
            f"(mlflow server --serve-artifacts) or to a local folder; {PACKAGE_HINT} for others"
        )
    target = os.path.join(root, path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as file:
        file.write(data)


def _answer(uri: str, status: int, body: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(body) if body else {}
    except ValueError:
        decoded = None
    if 200 <= status < 300:
        if not isinstance(decoded, dict):
            raise TrackingError(
                f"tracking server {uri}: an answer that is not JSON (is it an MLflow server?)"
            )
        return decoded
    if isinstance(decoded, dict) and decoded.get("message"):
        raise TrackingError(f"tracking server {uri}: {decoded['message']}", code=decoded.get("error_code"))
    if status in (401, 403):
        raise TrackingError(
            f"tracking server {uri}: not authorized (HTTP {status}); set MLFLOW_TRACKING_TOKEN or "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if status == 404:
        raise TrackingError(f"tracking server {uri}: HTTP 404 (is it an MLflow tracking server?)")
    if status >= 500:
        raise TrackingUnreachable(f"tracking server {uri}: HTTP {status}")
    raise TrackingError(f"tracking server {uri}: HTTP {status}")


def _auth_headers(uri: str) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "mlproj"}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    netloc = uri.partition("://")[2].partition("/")[0]
    if not (user or password) and "@" in netloc:
        from mlproj.tracking.base import unquote

        user, _, password = netloc.rpartition("@")[0].partition(":")
        user, password = unquote(user), unquote(password)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user or password:
        import base64

        pair = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {pair}"
    return headers


def _verify() -> bool | str:
    if (os.environ.get("MLFLOW_TRACKING_INSECURE_TLS") or "").lower() in ("true", "1"):
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
