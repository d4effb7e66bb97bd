"""The OpenAPI document of the REST API (design.md §10), made from the route table of
`mlproj.server.app`, so that it cannot say something the server does not do."""

from __future__ import annotations

import re

from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from starlette.responses import Response

    from mlproj.server.http import Call


@dataclass(frozen=True)
class Spec:
    """A route: its method, path, the role it needs, what answers it, a summary, the schema of its
    JSON body (None: it takes none) and its query parameters."""

    method: str
    path: str
    role: str
    function: Callable[[Call], Response]
    summary: str
    body: dict[str, Any] | None = None
    query: tuple[str, ...] = ()


def object_schema(required: tuple[str, ...], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


STRING, BOOLEAN = {"type": "string"}, {"type": "boolean"}
PARAMETERS = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
JSON: dict[str, Any] = {"application/json": {"schema": {}}}
ERROR = {
    "description": "An error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
QUERY = {
    "status": {"type": "string"},
    "experiment": {"type": "string"},
    "kind": {"type": "string", "enum": ["project", "pipeline", "step"]},
    "published": {"type": "string"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 500},
    "cursor": {"type": "string"},
    "step": {"type": "string"},
    "follow": {"type": "string", "enum": ["0", "1"]},
}
ANSWERS = {"GET": "200", "POST": "200"}
CREATED = ("submit", "/runs", "/published", "/endpoints", "/schedules", "/versions")


def document(routes: Sequence[Spec], prefix: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        method, path, role, function = spec.method, spec.path, spec.role, spec.function
        summary, body, query = spec.summary, spec.body, spec.query
        operation: dict[str, Any] = {
            "operationId": function.__name__,
            "summary": summary,
            "description": f"Needs a {role} token."
            + (f" {function.__doc__.strip()}" if function.__doc__ else ""),
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", path)
            ]
            + [{"name": name, "in": "query", "required": False, "schema": QUERY[name]} for name in query],
            "responses": {
                _success(method, path): {
                    "description": "Done",
                    "content": {"application/json": {"schema": {}}},
                },
                **dict.fromkeys(("400", "401", "403", "404", "409", "413", "415", "422"), ERROR),
            },
            "security": [{"bearer": []}],
        }
        if body is not None:
            operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
        if path.endswith("/logs"):
            operation["responses"]["200"]["content"] = {
                "text/plain": {"schema": {"type": "string"}},
                "text/event-stream": {"schema": {"type": "string"}},
            }
        if path.endswith("/cancel"):
            operation["responses"] = {"202": operation["responses"].pop("200"), **operation["responses"]}
        paths.setdefault(prefix + path, {})[method.lower()] = operation
    paths[prefix + "/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "The OpenAPI document"}, "401": ERROR},
        }
    }
    paths["/health"] = {
        "get": {
            "operationId": "health",
            "summary": "Whether the server answers (no token needed)",
            "security": [],
            "responses": {
                "200": {"description": "It answers", "content": {"application/json": {"schema": {}}}}
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlproj", "version": _version()},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                }
            },
        },
    }


def _success(method: str, path: str) -> str:
    if method == "POST" and (path.endswith(CREATED) and not path.endswith("/default")):
        return "201"
    return ANSWERS[method]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlproj")
    except PackageNotFoundError:
        return "unknown"
