"""`path` parameters given as artifact URIs, as MLflow takes them: `runs:/<run_id>/<path>` through the
tracking server (its REST API for an http(s) server), and `s3://`, `gs://`, `hdfs://`, `dbfs:/`… through
the `mlflow` package's artifact repositories, when it is installed (`mlproj[mlflow]`)."""

from __future__ import annotations

import os
import shutil

from mlproj.errors import ParameterError, TrackingError
from mlproj.tracking import is_rest

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from pathlib import Path

    from mlproj.tracking.rest import RestTracker


def fetch(name: str, uri: str, dest_dir: Path, tracking_uri: str | None) -> Path:
    """Download the artifact `uri` into `dest_dir/<name>/` and return the local path of the copy."""
    scheme = uri.partition(":")[0].lower()
    where = f"parameter {name!r} (path): {uri}"
    if scheme == "runs" and tracking_uri is None:
        raise ParameterError(
            f"{where}: runs:/ URIs are read from MLflow tracking, which is off (give --tracking-uri or "
            "set MLFLOW_TRACKING_URI)"
        )
    target = dest_dir / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    try:
        if scheme == "runs" and tracking_uri is not None and is_rest(tracking_uri):
            return _from_server(where, uri, target, tracking_uri)
        return _through_mlflow(where, uri, target, tracking_uri)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _through_mlflow(where: str, uri: str, target: Path, tracking_uri: str | None) -> Path:
    try:
        from mlflow.artifacts import download_artifacts
    except ImportError:
        raise ParameterError(
            f"{where}: {uri.partition(':')[0]} URIs are read through the mlflow package: "
            "pip install 'mlproj[mlflow]'"
        ) from None
    try:
        from pathlib import Path

        return Path(download_artifacts(artifact_uri=uri, dst_path=str(target), tracking_uri=tracking_uri))
    except Exception as exc:  # noqa: BLE001 - whatever an artifact repository raises, the value is bad
        text = str(getattr(exc, "message", None) or exc).strip().splitlines()
        raise ParameterError(f"{where}: {text[0] if text else type(exc).__name__}") from None


def _from_server(where: str, uri: str, target: Path, tracking_uri: str) -> Path:
    """`runs:/<run_id>/<path>` from an http(s) tracking server: the file, or the folder's files."""
    from mlproj.tracking.rest import RestTracker

    run_id, _, path = uri[len("runs:") :].lstrip("/").partition("/")
    path = path.strip("/")
    if not run_id:
        raise ParameterError(f"{where}: expected runs:/<run_id>/<path>")
    _check_relative(where, path)
    tracker = RestTracker(tracking_uri)
    try:
        root = str((tracker.get_run(run_id).get("info") or {}).get("artifact_uri") or "")
        files, single = _files(tracker, run_id, path)
        if not files:
            raise ParameterError(f"{where}: run {run_id} has no artifact {path or '(any)'}")
        for file in files:
            _check_relative(where, file)
            inner = os.path.basename(file) if single else os.path.relpath(file, path or ".")
            destination = os.path.join(target, inner)
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            with open(destination, "wb") as out:
                out.write(tracker.read_artifact(root, file))
    except TrackingError as exc:
        raise ParameterError(f"{where}: {exc}") from None
    finally:
        tracker.close()
    return target / os.path.basename(path) if single else target


MAX_FILES = 100_000  # a listing that goes on longer than this is not a run's artifacts


def _files(tracker: RestTracker, run_id: str, path: str) -> tuple[list[str], bool]:
    """Every file at or under `path` among the run's artifacts, and whether `path` is one file. Entries
    the server lists outside the folder asked for are refused (they would land outside the copy)."""
    listed = tracker.list_artifacts(run_id, path)
    if not listed and path:  # a file, or nothing: its folder says which
        siblings = tracker.list_artifacts(run_id, os.path.dirname(path))
        is_file = any(entry.get("path") == path and not entry.get("is_dir") for entry in siblings)
        return ([path], True) if is_file else ([], False)
    found: list[str] = []
    seen: set[str] = {path}
    while listed:
        entry = listed.pop()
        name = str(entry.get("path") or "")
        if path and not name.startswith(path + "/"):
            raise TrackingError(f"run {run_id}: the server listed {name!r} under {path!r}")
        if entry.get("is_dir"):
            if name in seen:
                continue
            seen.add(name)
            listed.extend(tracker.list_artifacts(run_id, name))
        else:
            found.append(name)
        if len(found) + len(seen) > MAX_FILES:
            raise TrackingError(f"run {run_id}: more than {MAX_FILES} artifacts under {path or '(all)'}")
    return sorted(found), False


def _check_relative(where: str, path: str) -> None:
    if os.path.isabs(path) or ".." in path.split("/"):
        raise ParameterError(f"{where}: an artifact path outside the run's artifacts: {path}")
