"""The publishing routes of the REST API (design.md §10): published pipelines, endpoints and schedules.

A submit's body is mlproj's `{"experiment_name", "parameters"}` or Azure ML's `{"ExperimentName",
"ParameterAssignments"}` (an endpoint's may add `version`, or Azure's `PipelineVersion`); the answer is
201 with the new run's record (design.md §5), the run started in the background.
"""

from __future__ import annotations

from mlproj.publish import (
    DISABLED,
    add_version,
    create_endpoint,
    create_schedule,
    enable_schedule,
    publish,
    submit_endpoint,
    submit_published,
)
from mlproj.runs.catalog import ACTIVE
from mlproj.server.http import HttpError, ok

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from starlette.responses import Response

    from mlproj.server.http import Call


def submit_body(call: Call) -> tuple[str | None, dict[str, Any]]:
    """(experiment, parameters) from either body form."""
    azure = any(key in (call.body or {}) for key in ("ExperimentName", "ParameterAssignments"))
    experiment = call.field("ExperimentName" if azure else "experiment_name", str)
    parameters = call.field("ParameterAssignments" if azure else "parameters", dict) or {}
    if experiment is not None and not experiment.strip():
        raise HttpError(422, "body: the experiment name is empty")
    return experiment, parameters


# --- published pipelines ------------------------------------------------------------------------------


def list_published(call: Call) -> Response:
    return ok({"published": [p.to_dict() for p in call.store.catalog().all_published()]})


def get_published(call: Call) -> Response:
    return ok(call.store.catalog().published(call.path["pipeline_id"]).to_dict())


def create_published(call: Call) -> Response:
    """Publish a pipeline file or Git URI (admin): `uri`, `name`, `version`, `description`,
    `continue_on_step_failure`."""
    published = publish(
        call.store,
        call.field("uri", str, required=True),
        name=call.field("name", str, required=True),
        version=call.field("version", str),
        description=call.field("description", str),
        continue_on_step_failure=bool(call.field("continue_on_step_failure", bool)),
        caller_dir=call.store.home.root,
    )
    return ok(published.to_dict(), 201)


def submit_published_route(call: Call) -> Response:
    experiment, parameters = submit_body(call)
    record = submit_published(
        call.store,
        call.path["pipeline_id"],
        parameters=parameters,
        experiment=experiment,
        caller_dir=call.store.home.root,
    )
    return ok(record.to_dict(), 201)


def disable_published(call: Call) -> Response:
    return ok(call.store.catalog().set_published_status(call.path["pipeline_id"], DISABLED).to_dict())


def enable_published(call: Call) -> Response:
    return ok(call.store.catalog().set_published_status(call.path["pipeline_id"], ACTIVE).to_dict())


# --- endpoints -----------------------------------------------------------------------------------------


def list_endpoints(call: Call) -> Response:
    return ok({"endpoints": [e.to_dict() for e in call.store.catalog().endpoints()]})


def get_endpoint(call: Call) -> Response:
    return ok(call.store.catalog().endpoint(call.path["name"]).to_dict())


def create_endpoint_route(call: Call) -> Response:
    """`name`, `pipeline_id` (version "0", the default), `description`."""
    endpoint = create_endpoint(
        call.store,
        call.field("name", str, required=True),
        call.field("pipeline_id", str, required=True),
        call.field("description", str),
    )
    return ok(endpoint.to_dict(), 201)


def add_endpoint_version(call: Call) -> Response:
    """`pipeline_id`, `set_default`."""
    endpoint = add_version(
        call.store,
        call.path["name"],
        call.field("pipeline_id", str, required=True),
        set_default=bool(call.field("set_default", bool)),
    )
    return ok(endpoint.to_dict(), 201)


def set_endpoint_default(call: Call) -> Response:
    version = call.field("version", str, required=True)
    return ok(call.store.catalog().set_default_version(call.path["name"], version).to_dict())


def disable_endpoint(call: Call) -> Response:
    return ok(call.store.catalog().set_endpoint_status(call.path["name"], DISABLED).to_dict())


def enable_endpoint(call: Call) -> Response:
    return ok(call.store.catalog().set_endpoint_status(call.path["name"], ACTIVE).to_dict())


def submit_endpoint_route(call: Call) -> Response:
    experiment, parameters = submit_body(call)
    version = call.field("version", str)
    if version is None:
        given = call.field("PipelineVersion", (str, int))
        version = None if given is None else str(given)
    record = submit_endpoint(
        call.store,
        call.path["name"],
        version=version,
        parameters=parameters,
        experiment=experiment,
        caller_dir=call.store.home.root,
    )
    return ok(record.to_dict(), 201)


# --- schedules -------------------------------------------------------------------------------------------


def list_schedules(call: Call) -> Response:
    return ok({"schedules": [s.to_dict() for s in call.store.catalog().schedules()]})


def get_schedule(call: Call) -> Response:
    catalog = call.store.catalog()
    schedule = catalog.schedule(call.path["name"])
    return ok({**schedule.to_dict(), "fires": [f.to_dict() for f in catalog.fires(schedule.name)]})


def create_schedule_route(call: Call) -> Response:
    """`name`, `pipeline_id` or `endpoint`, `cron` or `every` (`15m`), `parameters`, `experiment_name`."""
    schedule = create_schedule(
        call.store,
        call.field("name", str, required=True),
        pipeline_id=call.field("pipeline_id", str),
        endpoint=call.field("endpoint", str),
        cron=call.field("cron", str),
        every=call.field("every", str),
        parameters=call.field("parameters", dict) or {},
        experiment=call.field("experiment_name", str),
    )
    return ok(schedule.to_dict(), 201)


def disable_schedule(call: Call) -> Response:
    return ok(call.store.catalog().set_schedule_status(call.path["name"], DISABLED).to_dict())


def enable_schedule_route(call: Call) -> Response:
    return ok(enable_schedule(call.store, call.path["name"]).to_dict())
