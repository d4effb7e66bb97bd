"""The REST API's application (design.md §10): every route written once, in `ROUTES`, from which both
Starlette's routing and the OpenAPI document (`/api/v1/openapi.json`) are made.

Each route names the role it needs (`read` < `submit` < `admin`); `/health` alone needs no token.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from mlproj.server import published as pub
from mlproj.server import runs
from mlproj.server.http import Routes, error, ok
from mlproj.server.openapi import BOOLEAN, PARAMETERS, STRING, Spec, object_schema

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from starlette.requests import Request
    from starlette.responses import Response

    from mlproj.home import Home
    from mlproj.server.http import Call

PREFIX = "/api/v1"

SUBMIT = object_schema(
    (),
    experiment_name=STRING,
    parameters=PARAMETERS,
    ExperimentName=STRING,
    ParameterAssignments=PARAMETERS,
)
ENDPOINT_SUBMIT = object_schema(
    (),
    experiment_name=STRING,
    parameters=PARAMETERS,
    ExperimentName=STRING,
    ParameterAssignments=PARAMETERS,
    version=STRING,
    PipelineVersion=STRING,
)
PAGE = ("limit", "cursor")
ROUTES = (
    Spec(
        "GET",
        "/runs",
        "read",
        runs.list_runs,
        "List runs, newest first",
        None,
        ("status", "experiment", "kind", "published", *PAGE),
    ),
    Spec(
        "POST",
        "/runs",
        "admin",
        runs.submit_run,
        "Run a project or pipeline URI",
        object_schema(
            ("uri",),
            uri=STRING,
            parameters=PARAMETERS,
            experiment_name=STRING,
            entry_point=STRING,
            version=STRING,
        ),
    ),
    Spec("GET", "/runs/{run_id}", "read", runs.get_run, "A run's record"),
    Spec(
        "GET",
        "/runs/{run_id}/logs",
        "read",
        runs.get_logs,
        "A run's log; follow=1: server-sent events",
        None,
        ("step", "follow"),
    ),
    Spec("POST", "/runs/{run_id}/cancel", "submit", runs.cancel_run, "Cancel a run"),
    Spec("GET", "/published", "read", pub.list_published, "List published pipelines"),
    Spec(
        "POST",
        "/published",
        "admin",
        pub.create_published,
        "Publish a pipeline",
        object_schema(
            ("uri", "name"),
            uri=STRING,
            name=STRING,
            version=STRING,
            description=STRING,
            continue_on_step_failure=BOOLEAN,
        ),
    ),
    Spec("GET", "/published/{pipeline_id}", "read", pub.get_published, "A published pipeline"),
    Spec("GET", "/published/{pipeline_id}/runs", "read", runs.published_runs, "Its runs", None, PAGE),
    Spec("POST", "/published/{pipeline_id}/submit", "submit", pub.submit_published_route, "Run it", SUBMIT),
    Spec("POST", "/published/{pipeline_id}/disable", "admin", pub.disable_published, "Disable it"),
    Spec("POST", "/published/{pipeline_id}/enable", "admin", pub.enable_published, "Enable it"),
    Spec("GET", "/endpoints", "read", pub.list_endpoints, "List pipeline endpoints"),
    Spec(
        "POST",
        "/endpoints",
        "admin",
        pub.create_endpoint_route,
        "Create an endpoint",
        object_schema(("name", "pipeline_id"), name=STRING, pipeline_id=STRING, description=STRING),
    ),
    Spec("GET", "/endpoints/{name}", "read", pub.get_endpoint, "An endpoint and its versions"),
    Spec(
        "POST",
        "/endpoints/{name}/versions",
        "admin",
        pub.add_endpoint_version,
        "Add a version",
        object_schema(("pipeline_id",), pipeline_id=STRING, set_default=BOOLEAN),
    ),
    Spec(
        "POST",
        "/endpoints/{name}/default",
        "admin",
        pub.set_endpoint_default,
        "Set the default version",
        object_schema(("version",), version=STRING),
    ),
    Spec("POST", "/endpoints/{name}/disable", "admin", pub.disable_endpoint, "Disable it"),
    Spec("POST", "/endpoints/{name}/enable", "admin", pub.enable_endpoint, "Enable it"),
    Spec(
        "POST",
        "/endpoints/{name}/submit",
        "submit",
        pub.submit_endpoint_route,
        "Run a version of it",
        ENDPOINT_SUBMIT,
    ),
    Spec("GET", "/schedules", "read", pub.list_schedules, "List schedules"),
    Spec(
        "POST",
        "/schedules",
        "admin",
        pub.create_schedule_route,
        "Create a schedule",
        object_schema(
            ("name",),
            name=STRING,
            pipeline_id=STRING,
            endpoint=STRING,
            cron=STRING,
            every=STRING,
            parameters=PARAMETERS,
            experiment_name=STRING,
        ),
    ),
    Spec("GET", "/schedules/{name}", "read", pub.get_schedule, "A schedule and its last fires"),
    Spec("POST", "/schedules/{name}/disable", "admin", pub.disable_schedule, "Disable it"),
    Spec("POST", "/schedules/{name}/enable", "admin", pub.enable_schedule_route, "Enable it"),
)


def build_app(
    home: Home, lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None
) -> Starlette:
    routes = Routes(home)
    table: list[Route | Mount] = [
        Route(
            PREFIX + spec.path,
            routes.route(spec.role, spec.function, body=spec.body is not None),
            methods=[spec.method],
        )
        for spec in ROUTES
    ]
    table.append(Route(PREFIX + "/openapi.json", routes.route("read", _openapi), methods=["GET"]))
    table.append(Route("/health", _health, methods=["GET"]))
    table += ui_routes(home)
    app = Starlette(routes=table, lifespan=lifespan)
    app.add_exception_handler(404, _not_found)
    app.add_exception_handler(405, _not_allowed)
    app.add_exception_handler(Exception, _failed)
    return app


def _answer(routes: Routes, spec: Spec) -> Callable[[Request], Awaitable[Response]]:
    return routes.route(spec.role, spec.function, body=spec.body is not None)


def ui_routes(home: Home) -> list[Route | Mount]:
    """The web UI's pages (design.md §11), at `/`."""
    from starlette.staticfiles import StaticFiles

    from mlproj.server.ui import STATIC, catalog, pipeline
    from mlproj.server.ui import pages as ui
    from mlproj.server.ui.compare import compare_page
    from mlproj.server.ui.frame import Frame

    frame = Frame(home)
    login = ui.login_routes(frame)
    return [
        Route("/", frame.page("read", ui.runs_page), methods=["GET"]),
        Route("/ui/rows", frame.page("read", ui.runs_rows), methods=["GET"]),
        Route("/runs/{run_id}", frame.page("read", ui.run_page), methods=["GET"]),
        Route("/runs/{run_id}/stream", ui.stream(frame), methods=["GET"]),
        Route("/runs/{run_id}/outputs/{name}", frame.page("read", ui.output), methods=["GET"]),
        Route("/ui/pipeline/{run_id}", frame.page("read", pipeline.pipeline_part), methods=["GET"]),
        Route("/ui/step/{run_id}", frame.page("read", pipeline.step_panel), methods=["GET"]),
        Route("/runs/{run_id}/cancel", frame.page("submit", ui.cancel_action, action=True), methods=["POST"]),
        Route("/runs/{run_id}/rerun", frame.page("submit", ui.rerun_action, action=True), methods=["POST"]),
        Route("/compare", frame.page("read", compare_page), methods=["GET"]),
        Route("/published", frame.page("read", catalog.published_page), methods=["GET"]),
        Route("/published/{pipeline_id}", frame.page("read", catalog.published_one), methods=["GET"]),
        Route("/endpoints", frame.page("read", catalog.endpoints_page), methods=["GET"]),
        Route("/endpoints/{name}", frame.page("read", catalog.endpoint_one), methods=["GET"]),
        Route("/schedules", frame.page("read", catalog.schedules_page), methods=["GET"]),
        Route("/schedules/{name}", frame.page("read", catalog.schedule_one), methods=["GET"]),
        Route("/login", login["login_form"], methods=["GET"]),
        Route("/login", login["login"], methods=["POST"]),
        Route("/logout", login["logout"], methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]


async def _health(_request: Request) -> Response:
    return ok({"status": "ok"})


def _openapi(_call: Call) -> Response:
    from mlproj.server.openapi import document

    return ok(document(ROUTES, PREFIX))


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return error(404, "no such route")


async def _not_allowed(_request: Request, _exc: Exception) -> Response:
    return error(405, "this route does not take that method")


async def _failed(_request: Request, _exc: Exception) -> Response:
    return JSONResponse({"error": "the server failed to answer; see its log"}, status_code=500)
