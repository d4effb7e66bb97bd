"""The MLflow run of an mlproj run: made before its workload starts, ended after it (design.md §8).

A run's end is written to the store with its final status (`tracking_pending`, see `Store.transition`)
and sent from there: by the supervisor at once, or, when the tracking server could not be reached then,
by the next command that reads runs (`send_pending`). Nothing is lost while the server is away.
"""

from __future__ import annotations

import json
import os
import time

from mlproj.errors import InputError, TrackingError, TrackingUnreachable
from mlproj.runs.status import MLFLOW_STATUS
from mlproj.structs import dataclass
from mlproj.tracking import open_tracker
from mlproj.urls import strip_credentials

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store
    from mlproj.tracking.base import TrackedRun, Tracker

DEFAULT_EXPERIMENT_ID = "0"  # MLflow's `Default` experiment
LOG_ARTIFACT = "mlproj/output.log"
MAX_LOG_BYTES = 64 * 1024 * 1024  # a log larger than this is sent as its last 64 MiB
PENDING_TIMEOUT = 10.0  # seconds a command that reads runs waits for a tracking server that is away
SUPERVISOR_TIMEOUT = 30.0  # seconds a supervisor waits for the tracking store at a run's end
# What a tracking store says of a run that is gone for good: its end is not worth keeping.
REFUSED_FOR_GOOD = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_STATE"})
_AWAY: set[str] = set()  # the tracking stores found away by this process: not tried again by it


@dataclass(frozen=True)
class Experiment:
    id: str
    name: str


def resolve_experiment(tracker: Tracker, name: str | None, experiment_id: str | None) -> Experiment:
    """The MLflow experiment named (created when missing) or given by ID; MLflow's `Default` (ID 0)
    when neither is given. Both given is an input error, as in MLflow."""
    if name and experiment_id:
        raise InputError("give an experiment name or an experiment ID, not both (as MLflow)")
    if experiment_id:
        return Experiment(id=str(experiment_id), name=tracker.experiment_name(str(experiment_id)))
    if not name:
        return Experiment(id=DEFAULT_EXPERIMENT_ID, name="Default")
    found = tracker.experiment_id_by_name(name)
    if found is None:
        try:
            found = tracker.create_experiment(name)
        except TrackingError as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":  # made meanwhile by another run
                raise
            found = tracker.experiment_id_by_name(name) or ""
    return Experiment(id=found, name=name)


def user_name() -> str:
    """`mlflow.user`, as MLflow finds it (getpass.getuser's variables, then the password database)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return "unknown"


def start_run(
    tracker: Tracker,
    experiment: Experiment,
    *,
    run_name: str | None,
    tags: Mapping[str, str],
    params: Mapping[str, str],
    start_time: float | None = None,
    defer_params: bool = False,
) -> TrackedRun:
    """Create the MLflow run (RUNNING) with its tags, then log its parameters. `defer_params`: they are
    sent now, and their answer read by `settle()` (the workload starts meanwhile)."""
    tags = {"mlflow.user": user_name(), **tags}
    if run_name:
        tags["mlflow.runName"] = run_name
    created = tracker.create_run(
        experiment.id,
        run_name=run_name,
        start_time=int((start_time or time.time()) * 1000),
        user=tags["mlflow.user"],
        tags=tags,
    )
    if params and defer_params:
        later = tracker.log_batch_later(created.run_id, params)
        _UNSETTLED.append(lambda: _settle_params(later, tracker.uri, created.run_id, dict(params)))
    elif params:
        tracker.log_batch(created.run_id, params=params)
    return created


_UNSETTLED: list[Callable[[], None]] = []


def settle() -> None:
    """Read the answers to what was sent without waiting (a run's parameters): once its workload has
    started, or before a detached supervisor takes the run over."""
    while _UNSETTLED:
        _UNSETTLED.pop(0)()


def abandon(uri: str, run_id: str) -> None:
    """End, FAILED, an MLflow run whose mlproj run could not be recorded (best effort)."""
    settle()
    try:
        tracker = _open(uri, PENDING_TIMEOUT)
        try:
            tracker.end_run(run_id, "FAILED", int(time.time() * 1000))
        finally:
            tracker.close()
    except (TrackingError, InputError):
        pass


def tag_image(record: RunRecord, image_id: str) -> None:
    """`mlflow.docker.image.id` on a run whose container started (MLflow tags its docker runs so); a
    tracking store away now only loses this tag, said in the run's folder."""
    if record.tracking_uri is None or record.mlflow_run_id is None:
        return
    try:
        tracker = _open(record.tracking_uri, PENDING_TIMEOUT)
        try:
            tracker.log_batch(record.mlflow_run_id, tags={"mlflow.docker.image.id": image_id})
        finally:
            tracker.close()
    except (TrackingError, InputError) as exc:
        _note(record, f"the run's image was not tagged in MLflow: {exc}")


def _settle_params(later: Callable[[], None], uri: str, run_id: str, params: dict[str, str]) -> None:
    try:
        later()
    except TrackingError:
        pass
    else:
        return
    try:  # once more, the usual way
        tracker = open_tracker(uri)
        try:
            tracker.log_batch(run_id, params=params)
        finally:
            tracker.close()
    except (TrackingError, InputError) as exc:
        from mlproj.notices import warn

        warn(f"the parameters of MLflow run {run_id} were not logged: {exc}")


def workload_env(uri: str, run_id: str, experiment_id: str) -> dict[str, str]:
    """The variables that make the workload's `mlflow.log_metric` land on its MLflow run."""
    # MLflow's credentials are not among them: a run's request is recorded, and they must not be; the
    # workload inherits them (backends carry process.CREDENTIAL_VARIABLES where it does not).
    return {"MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_ID": experiment_id}


def begin(
    uri: str,
    *,
    experiment_name: str | None,
    experiment_id: str | None,
    run_name: str | None,
    tags: Mapping[str, str],
    params: Mapping[str, str],
    defer_params: bool = False,
) -> dict[str, Any]:
    """The MLflow run of a run being submitted, made now, before anything starts: the record's tracking
    fields, with "experiment" (the experiment's name) and "env" (the workload's variables). A store
    that cannot take it is an input error: nothing is started. `defer_params`: see `start_run`."""
    tracker = open_tracker(uri)
    try:
        experiment = resolve_experiment(tracker, experiment_name, experiment_id)
        run = start_run(
            tracker, experiment, run_name=run_name, tags=tags, params=params, defer_params=defer_params
        )
    except TrackingError as exc:
        raise submit_error(uri, exc) from None
    finally:
        tracker.close()
    return {
        "experiment": experiment.name,
        "tracking_uri": uri,
        "mlflow_run_id": run.run_id,
        "mlflow_experiment_id": run.experiment_id,
        "mlflow_artifact_uri": run.artifact_uri,
        "env": workload_env(uri, run.run_id, run.experiment_id),
    }


def begin_nested(
    store: Store,
    parent: RunRecord,
    step: RunRecord,
    params: Mapping[str, str],
    *,
    reused_from: str | None = None,
) -> dict[str, str]:
    """A pipeline step's nested MLflow run, recorded on the step's run; the workload's variables. A
    tracking server away now does not fail the step: it runs untracked, and its folder says so."""
    if parent.tracking_uri is None or parent.mlflow_run_id is None or parent.mlflow_experiment_id is None:
        return {}
    tags = {
        "mlflow.parentRunId": parent.mlflow_run_id,
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": strip_credentials(step.uri or parent.uri or ""),
        "mlproj.run_id": step.run_id,
        "mlproj.pipeline_run_id": parent.run_id,
        "mlproj.step": step.step or "",
        **dict(step.tags),
    }
    if step.entry_point:
        tags["mlflow.project.entryPoint"] = step.entry_point
    if step.commit:
        tags["mlflow.source.git.commit"] = step.commit
    if reused_from:
        tags["mlproj.reused_from"] = reused_from
    experiment = Experiment(id=parent.mlflow_experiment_id, name=parent.experiment)
    try:
        tracker = _open(parent.tracking_uri, PENDING_TIMEOUT)
        try:
            run = start_run(tracker, experiment, run_name=step.step, tags=tags, params=params)
        finally:
            tracker.close()
    except (TrackingError, InputError) as exc:
        _note(step, f"the step runs without its MLflow run: {exc}")
        return {}
    store.update(
        step.run_id,
        tracking_uri=parent.tracking_uri,
        mlflow_run_id=run.run_id,
        mlflow_experiment_id=run.experiment_id,
        mlflow_artifact_uri=run.artifact_uri,
    )
    current = store.get(step.run_id)
    if current.is_final and current.tracking_pending is None and current.status in MLFLOW_STATUS:
        # Ended (canceled) while its MLflow run was being made: the end the store did not write.
        ended = int((current.ended_at or time.time()) * 1000)
        pending = json.dumps({"status": MLFLOW_STATUS[current.status], "end_time": ended})
        store.update(step.run_id, tracking_pending=pending)
    return workload_env(parent.tracking_uri, run.run_id, run.experiment_id)


def report_end(store: Store, record: RunRecord, others: Iterable[RunRecord] = ()) -> RunRecord:
    """After a supervisor ended a run (and `others`, a pipeline's steps): their MLflow runs' ends,
    sent now or kept for later."""
    waiting = [r for r in (record, *others) if r.tracking_pending is not None]
    if not waiting:
        return record
    send_pending(store, waiting, timeout=SUPERVISOR_TIMEOUT)
    return store.get(record.run_id)


def submit_error(uri: str, exc: TrackingError) -> InputError:
    """A tracking store that cannot take a run when it is submitted: an input error, nothing started."""
    from mlproj.tracking import display_uri

    message = str(exc)
    if isinstance(exc, TrackingUnreachable) and display_uri(uri) not in message:
        message = f"tracking server {display_uri(uri)}: {message}"
    return InputError(f"{message} (nothing was started; --no-tracking runs without MLflow tracking)")


def send_pending(
    store: Store, records: Iterable[RunRecord] | None = None, *, timeout: float = PENDING_TIMEOUT
) -> int:
    """Send the final updates that wait in the store (of `records`, else of every run); each tracking
    store is tried once. Returns how many were sent; what cannot be sent now stays for later."""
    waiting = [r for r in records if r.tracking_pending] if records is not None else store.tracking_pending()
    sent = 0
    away = _AWAY
    trackers: dict[str, Tracker] = {}
    try:
        for record in waiting:
            uri = record.tracking_uri
            if not uri or not record.mlflow_run_id or uri in away or record.tracking_pending is None:
                continue
            try:
                tracker = trackers.get(uri) or trackers.setdefault(uri, _open(uri, timeout))
                send_end(tracker, record)
            except TrackingError as exc:
                if exc.code not in REFUSED_FOR_GOOD:  # away, not authorized here, a proxy's page…: kept
                    away.add(uri)
                    continue
                _note(record, f"MLflow did not take the run's end: {exc}")  # the run deleted in MLflow
            except InputError:  # the store's package missing here: kept
                away.add(uri)
                continue
            store.tracking_sent(record.run_id, record.tracking_pending)
            sent += 1
    finally:
        for tracker in trackers.values():
            tracker.close()
    return sent


def send_end(tracker: Tracker, record: RunRecord) -> None:
    """The run's log as the artifact mlproj/output.log, then its end status and time."""
    if record.mlflow_run_id is None or record.tracking_pending is None:
        return
    pending = json.loads(record.tracking_pending)
    artifact = None
    if record.mlflow_artifact_uri and record.log_path:
        data = _read_log(record.log_path)
        if data is not None:
            artifact = (record.mlflow_artifact_uri, LOG_ARTIFACT, data)
    problem = tracker.finish(record.mlflow_run_id, str(pending["status"]), int(pending["end_time"]), artifact)
    if problem is not None:  # an artifact root mlproj cannot write: the run still ends
        _note(record, f"the log was not uploaded to MLflow: {problem}")


def latest_metrics(tracker: Tracker, run_id: str) -> dict[str, float]:
    """The latest value of each metric of an MLflow run."""
    got = tracker.get_run(run_id)
    return {str(m["key"]): m["value"] for m in (got.get("data") or {}).get("metrics") or []}


def describe(record: RunRecord) -> tuple[str, str]:
    """How `status` shows a tracked run: its MLflow run (a link for a server), and its latest metrics
    (or why they cannot be shown now)."""
    from mlproj.tracking import display_uri, run_link

    if record.mlflow_run_id is None or record.tracking_uri is None:
        return "", ""
    where = run_link(record.tracking_uri, record.mlflow_experiment_id or "0", record.mlflow_run_id)
    where = where or f"run {record.mlflow_run_id} in {display_uri(record.tracking_uri)}"
    if record.tracking_pending is not None:
        where += " (its end waits for the tracking server)"
    try:
        tracker = _open(record.tracking_uri, PENDING_TIMEOUT)
        try:
            metrics = latest_metrics(tracker, record.mlflow_run_id)
        finally:
            tracker.close()
    except (TrackingError, InputError) as exc:
        return where, f"(not available: {exc})"
    return where, " ".join(f"{k}={format_number(v)}" for k, v in sorted(metrics.items())) or "(none)"


def metrics_of(records: Iterable[RunRecord]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """The latest metrics of the tracked runs among `records`, by mlproj run ID (one search per
    tracking store), and why some could not be read."""
    by_uri: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.tracking_uri and record.mlflow_run_id:
            by_uri.setdefault(record.tracking_uri, []).append(record)
    found: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    for uri, group in by_uri.items():
        experiments = sorted({r.mlflow_experiment_id or DEFAULT_EXPERIMENT_ID for r in group})
        try:
            tracker = _open(uri, PENDING_TIMEOUT)
            try:
                runs = tracker.search_runs(experiments, [r.mlflow_run_id or "" for r in group])
            finally:
                tracker.close()
        except (TrackingError, InputError) as exc:
            problems.append(f"metrics not shown: {exc}")
            continue
        latest = {
            str((run.get("info") or {}).get("run_id")): {
                str(m["key"]): m["value"] for m in (run.get("data") or {}).get("metrics") or []
            }
            for run in runs
        }
        for record in group:
            found[record.run_id] = latest.get(record.mlflow_run_id or "", {})
    return found, problems


def side_by_side(
    records: list[RunRecord], *, show_all: bool = False
) -> tuple[dict[str, list[object]], list[str]]:
    """`mlproj compare` and the UI's comparison: `params.NAME` and `metrics.NAME` → each run's value
    (None where it has none), only the rows that differ unless `show_all`; and why metrics are missing."""
    metrics, problems = metrics_of(records)
    table: dict[str, list[object]] = {}
    for kind, values_of in (
        ("params", lambda r: r.parameters),
        ("metrics", lambda r: metrics.get(r.run_id, {})),
    ):
        names = sorted({name for record in records for name in values_of(record)})
        for name in names:
            row = [values_of(record).get(name) for record in records]
            if show_all or len({repr(value) for value in row}) > 1:
                table[f"{kind}.{name}"] = row
    return table, problems


def format_number(value: object) -> str:
    """A metric as people read it: `0.125`, `1.5e+06`; anything else as it is."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _open(uri: str, timeout: float) -> Tracker:
    tracker = open_tracker(uri)
    session = getattr(tracker, "session", None)
    if session is not None:
        session.timeout = timeout
    return tracker


def _read_log(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_LOG_BYTES:
                file.seek(size - MAX_LOG_BYTES)
            return file.read()
    except OSError:
        return None


def _note(record: RunRecord, message: str) -> None:
    """A note in the run's folder (core modules do not print): what happened to its MLflow run."""
    if not record.run_dir:
        return
    try:
        with open(os.path.join(record.run_dir, "tracking.log"), "a", encoding="utf-8") as file:
            file.write(message + "\n")
    except OSError:
        pass
