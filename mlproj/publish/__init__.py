"""Published pipelines, endpoints, schedules and tokens (design.md §10): what `mlproj publish`, the
`published`/`endpoints`/`schedules`/`tokens` commands, the Python API and the server all do, once.

A publication is an immutable snapshot (mlproj.publish.snapshot); submitting it runs that snapshot
through the one submit flow, recording where the run came from (`published_pipeline_id`, `endpoint`,
`schedule`). Disabled pipelines and endpoints refuse submits (ConflictError: the server's 409).
"""

from __future__ import annotations

import time
from pathlib import Path

from mlproj.errors import InputError
from mlproj.runs.catalog import ACTIVE, DISABLED, ConflictError, Published, Schedule, check_name

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from mlproj.pipelines.options import PipelineOptions
    from mlproj.runs.access import Token
    from mlproj.runs.catalog import Endpoint
    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store

__all__ = [
    "ACTIVE",
    "DISABLED",
    "ConflictError",
    "add_version",
    "create_endpoint",
    "create_schedule",
    "create_token",
    "enable_schedule",
    "endpoint_options",
    "publish",
    "published_options",
    "submit_endpoint",
    "submit_published",
    "text_values",
]


def publish(
    store: Store,
    uri: str,
    *,
    name: str,
    version: str | None = None,
    description: str | None = None,
    continue_on_step_failure: bool = False,
    caller_dir: Path | None = None,
    overrides: Sequence[str] = (),
    asset_map: Path | None = None,
) -> Published:
    """Snapshot the pipeline at `uri` (a file, or a Git URI naming one) and record it as published.
    Everything is checked first, as `mlproj validate` checks it: bad input leaves nothing behind."""
    import shutil

    from mlproj.pipelines.options import PipelineOptions
    from mlproj.pipelines.plan import plan_run
    from mlproj.publish.snapshot import snapshot

    check_name(name, "published pipeline")
    caller_dir = caller_dir or Path.cwd()
    options = PipelineOptions(
        uri=uri, caller_dir=caller_dir, overrides=tuple(overrides), asset_map=asset_map, tracking=False
    )
    planned = plan_run(options, store.home, materialize=False)  # every problem, before anything is kept
    pipeline = planned.pipeline
    import uuid

    publication = uuid.uuid4().hex
    target = snapshot(store.home, pipeline, publication)
    try:
        from mlproj.pipelines.loader import load_pipeline

        load_pipeline(target)  # what a submit will read
        return store.catalog().add_published(
            Published(
                id=publication,
                name=name,
                pipeline_file=str(target),
                version=version,
                description=description,
                status=ACTIVE,
                created_at=time.time(),
                source_uri=planned.uri,
                commit=planned.commit,
                continue_on_step_failure=continue_on_step_failure or pipeline.continue_on_step_failure,
                inputs={key: item.default for key, item in pipeline.inputs.items()},
            )
        )
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise


def published_options(
    store: Store,
    pipeline_id: str,
    *,
    parameters: Mapping[str, object] | None = None,
    experiment: str | None = None,
    endpoint: str | None = None,
    schedule: str | None = None,
    caller_dir: Path | None = None,
) -> PipelineOptions:
    """How a published pipeline runs: its snapshot, its inputs given `parameters`, where the run came
    from; refused when the pipeline is disabled."""
    from mlproj.pipelines.options import PipelineOptions

    published = store.catalog().published(pipeline_id)
    if published.status != ACTIVE:
        raise ConflictError(f"published pipeline {published.id} ({published.name}) is disabled")
    origin = {"published_pipeline_id": published.id, "endpoint": endpoint, "schedule": schedule}
    return PipelineOptions(
        uri=published.pipeline_file,
        inputs=text_values(parameters or {}),
        experiment=experiment,
        continue_on_step_failure=published.continue_on_step_failure,
        caller_dir=caller_dir or Path.cwd(),
        origin={key: value for key, value in origin.items() if value is not None},
    )


def endpoint_options(
    store: Store,
    name: str,
    *,
    version: str | None = None,
    parameters: Mapping[str, object] | None = None,
    experiment: str | None = None,
    schedule: str | None = None,
    caller_dir: Path | None = None,
) -> PipelineOptions:
    """How an endpoint's default version (or `version`) runs; refused when the endpoint is disabled."""
    endpoint = store.catalog().endpoint(name)
    if endpoint.status != ACTIVE:
        raise ConflictError(f"endpoint {endpoint.name!r} is disabled")
    return published_options(
        store,
        endpoint.pipeline_id(version),
        parameters=parameters,
        experiment=experiment,
        endpoint=endpoint.name,
        schedule=schedule,
        caller_dir=caller_dir,
    )


def submit_published(store: Store, pipeline_id: str, **given: Any) -> RunRecord:
    """Start a published pipeline's run in the background (`published_options` says what `given` is)."""
    from mlproj.submit import submit

    return submit(store, published_options(store, pipeline_id, **given), detach=True)


def submit_endpoint(store: Store, name: str, **given: Any) -> RunRecord:
    """Start an endpoint's run in the background (`endpoint_options` says what `given` is)."""
    from mlproj.submit import submit

    return submit(store, endpoint_options(store, name, **given), detach=True)


def text_values(parameters: Mapping[Any, object]) -> dict[str, str]:
    """Parameters as `-P` gives them: text (JSON bodies may carry numbers and booleans)."""
    from mlproj.pipelines.model import text_of

    found = {}
    for key, value in parameters.items():
        if not isinstance(key, str) or isinstance(value, (dict, list)):
            raise InputError(f"parameter {str(key)[:80]!r}: expected a name and a text, number or boolean")
        found[key] = text_of(value)
    return found


# --- endpoints --------------------------------------------------------------------------------------


def create_endpoint(store: Store, name: str, pipeline_id: str, description: str | None = None) -> Endpoint:
    catalog = store.catalog()
    published = catalog.published(pipeline_id)
    return catalog.create_endpoint(name, published.id, description)


def add_version(store: Store, name: str, pipeline_id: str, *, set_default: bool = False) -> Endpoint:
    catalog = store.catalog()
    published = catalog.published(pipeline_id)
    return catalog.add_version(name, published.id, set_default=set_default)


# --- schedules --------------------------------------------------------------------------------------


def create_schedule(
    store: Store,
    name: str,
    *,
    pipeline_id: str | None = None,
    endpoint: str | None = None,
    cron: str | None = None,
    every: str | None = None,
    parameters: Mapping[str, str] | None = None,
    experiment: str | None = None,
) -> Schedule:
    """A schedule of a published pipeline or an endpoint; its first tick is the first after now."""
    from mlproj.publish.cron import Cron, latest_tick, parse_interval

    check_name(name, "schedule")
    if (pipeline_id is None) == (endpoint is None):
        raise InputError(f"schedule {name!r}: expected one of --pipeline ID and --endpoint NAME")
    if (cron is None) == (every is None):
        raise InputError(f"schedule {name!r}: expected one of --cron EXPR and --every DURATION")
    catalog = store.catalog()
    if pipeline_id is not None:
        pipeline_id = catalog.published(pipeline_id).id
    if endpoint is not None:
        catalog.endpoint(endpoint)
    if cron is not None:
        Cron(cron)
    every_s = parse_interval(every) if every is not None else None
    now = time.time()
    return catalog.create_schedule(
        Schedule(
            name=name,
            pipeline_id=pipeline_id,
            endpoint=endpoint,
            cron=cron,
            every_s=every_s,
            parameters=text_values(parameters or {}),
            experiment=experiment,
            status=ACTIVE,
            created_at=now,
            last_tick=latest_tick(cron, every_s, now, now),  # a tick at creation is not fired
        )
    )


def enable_schedule(store: Store, name: str) -> Schedule:
    """Enable a schedule; the ticks it had while disabled are not fired."""
    from mlproj.publish.cron import latest_tick

    schedule = store.catalog().schedule(name)
    now = time.time()
    tick = latest_tick(schedule.cron, schedule.every_s, schedule.created_at, now)
    return store.catalog().set_schedule_status(name, ACTIVE, last_tick=tick if tick is not None else now)


# --- tokens --------------------------------------------------------------------------------------------


def create_token(store: Store, name: str, role: str) -> tuple[str, Token]:
    """(the token, shown once; its record)."""
    from mlproj.publish.tokens import new_token

    token, digest = new_token()
    return token, store.access().create_token(name, role, digest)
