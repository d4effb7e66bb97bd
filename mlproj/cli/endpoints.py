"""`mlproj endpoints create | add | set-default | list | show | disable | enable | submit` (design.md §10)."""

from __future__ import annotations

from mlproj.cli.common import open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.runs.catalog import Endpoint
    from mlproj.ui.console import Console


def create(app: Console, *, name: str, pipeline_id: str | None, description: str | None) -> int:
    from mlproj.publish import create_endpoint

    return _print(app, create_endpoint(open_store(reading=False), name, _required(pipeline_id), description))


def add(app: Console, *, name: str, pipeline_id: str | None, set_default: bool) -> int:
    from mlproj.publish import add_version

    endpoint = add_version(open_store(reading=False), name, _required(pipeline_id), set_default=set_default)
    return _print(app, endpoint)


def set_default(app: Console, *, name: str, version: str) -> int:
    return _print(app, open_store(reading=False).catalog().set_default_version(name, version))


def list_endpoints(app: Console) -> int:
    found = open_store().catalog().endpoints()
    if app.as_json:
        app.json([e.to_dict() for e in found])
        return 0
    if not found:
        app.print("No endpoints.")
        return 0
    from mlproj.cli.render import table_lines

    rows = [[e.name, e.status, e.default_version, str(len(e.versions)), e.description or ""] for e in found]
    for line in table_lines(app.out, ["NAME", "STATUS", "DEFAULT", "VERSIONS", "DESCRIPTION"], rows):
        app.print(line)
    return 0


def show(app: Console, *, name: str) -> int:
    return _print(app, open_store().catalog().endpoint(name))


def disable(app: Console, *, name: str) -> int:
    return _print(app, open_store(reading=False).catalog().set_endpoint_status(name, "Disabled"))


def enable(app: Console, *, name: str) -> int:
    return _print(app, open_store(reading=False).catalog().set_endpoint_status(name, "Active"))


def submit(
    app: Console,
    *,
    name: str,
    version: str | None,
    params: tuple[str, ...],
    experiment_name: str | None,
    detach: bool,
) -> int:
    from mlproj.cli.run import run_and_show
    from mlproj.params import parse_assignments
    from mlproj.publish import endpoint_options

    options = endpoint_options(
        open_store(reading=False),
        name,
        version=version,
        parameters=parse_assignments(params, "-P"),
        experiment=experiment_name,
    )
    return run_and_show(app, options, detach=detach)


def _required(pipeline_id: str | None) -> str:
    if not pipeline_id:
        from mlproj.errors import InputError

        raise InputError("--pipeline ID is required (a published pipeline: mlproj published list)")
    return pipeline_id


def _print(app: Console, endpoint: Endpoint) -> int:
    if app.as_json:
        app.json(endpoint.to_dict())
        return 0
    app.print(f"endpoint    {endpoint.name}  ({endpoint.status})")
    if endpoint.description:
        app.print(f"description {endpoint.description}")
    for version, pipeline_id in endpoint.versions:
        mark = "  (default)" if version == endpoint.default_version else ""
        app.print(f"version {version:<4}{pipeline_id}{mark}")
    return 0
