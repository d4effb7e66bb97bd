"""MLflow tracking (design.md §8): which tracking store a run reports to, and a client for it.

An `http(s)` server is spoken to through its REST API (`mlproj.tracking.rest`, no `mlflow` import on
the run's path); any other store (`sqlite:`, `file:`, `postgresql:`, `databricks`…) through the
`mlflow` package (`mlproj.tracking.package`), installed with `mlproj[mlflow]`.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlproj.errors import InputError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from mlproj.tracking.base import Tracker

URI_VARIABLE = "MLFLOW_TRACKING_URI"


def tracking_uri(
    given: str | None,
    *,
    enabled: bool,
    caller_dir: Path,
    folders: tuple[Path, ...] = (),
    home: str | None = None,
) -> str | None:
    """The tracking URI of a run: `--tracking-uri`, else MLFLOW_TRACKING_URI, else `tracking_uri` in a
    config file (of `folders`, then the user's in `home`; see mlproj.config); None when tracking is off
    (`--no-tracking`, or no URI known). Local stores are made absolute (against `caller_dir`, or the
    config file's folder), so that a workload started elsewhere writes to the same one."""
    if not enabled:
        return None
    uri = given or os.environ.get(URI_VARIABLE) or ""
    base = caller_dir
    if not uri and home is not None:
        from mlproj.config import setting

        found = setting("tracking_uri", folders=folders, home=home)
        if found is not None:
            value, path = found
            if not isinstance(value, str):
                raise InputError(f"{path}: tracking_uri: expected a string, got {value!r}")
            uri, base = value, Path(os.path.dirname(path))
    if any(ch in uri for ch in "\n\r\0"):
        raise InputError(f"tracking URI {uri!r}: has a line break or NUL character")
    uri = uri.strip()
    return absolute_uri(uri, base) if uri else None


def check_experiment_flags(name: str | None, experiment_id: str | None, uri: str | None) -> None:
    """`--experiment-name` with `--experiment-id`, or an ID without tracking: input errors."""
    if not experiment_id:
        return
    if name:
        raise InputError("--experiment-name and --experiment-id: give one, not both (as MLflow)")
    if uri is None:
        raise InputError(
            f"--experiment-id {experiment_id}: an MLflow experiment, and MLflow tracking is off (give "
            "--tracking-uri or set MLFLOW_TRACKING_URI)"
        )


def is_rest(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


def absolute_uri(uri: str, caller_dir: Path) -> str:
    """`sqlite:///rel.db`, `file:rel` and plain paths, made absolute; other URIs as they are."""
    if is_rest(uri) or uri == "databricks" or uri.startswith("databricks:"):
        return uri
    for prefix in ("sqlite:///", "file://", "file:"):
        if uri.startswith(prefix):
            rest = uri[len(prefix) :]
            if prefix == "file://" and not rest.startswith("/"):
                return uri  # file://host/…: someone else's path
            if rest.startswith("/"):
                return uri
            path = os.path.normpath(os.path.join(caller_dir, os.path.expanduser(rest)))
            return ("sqlite:///" if prefix == "sqlite:///" else "file://") + path
    scheme = uri.partition(":")[0]
    if "://" in uri or (scheme.isalpha() and len(scheme) > 1 and ":" in uri):
        return uri  # postgresql://…, databricks, databricks://profile, …
    return "file://" + os.path.normpath(os.path.join(caller_dir, os.path.expanduser(uri)))


def open_tracker(uri: str) -> Tracker:
    """A client of the tracking store at `uri`; an input error when it needs the missing `mlflow`."""
    if is_rest(uri):
        from mlproj.tracking.rest import RestTracker

        return RestTracker(uri)
    from mlproj.tracking.package import PackageTracker

    return PackageTracker(uri)


def display_uri(uri: str) -> str:
    """The URI without credentials, as it may be shown."""
    from mlproj.urls import strip_credentials

    return strip_credentials(uri)


def run_link(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The MLflow UI page of a run, for a tracking server."""
    if not is_rest(uri):
        return None
    return f"{display_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
