"""The web UI's pages of what is published (design.md §10, §11): published pipelines, endpoints and
schedules, listed, and each on a page of its own with its runs (newest first), an endpoint's versions
and a schedule's last ticks (the run each started, or why it could not)."""

from __future__ import annotations

from mlproj.server.ui.frame import PageCall, when

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from starlette.responses import Response

    from mlproj.runs.record import RunRecord

RUNS = 50  # the runs a page lists (the runs page, filtered, has them all)
FIRES = 20


def cell(
    text: object, href: str | None = None, *, mono: bool = False, status: bool = False
) -> dict[str, object]:
    """A table cell: its text, where it links to, how it looks (a status is told in words and colour)."""
    return {"text": "" if text is None else str(text), "href": href, "mono": mono, "status": status}


def published_page(call: PageCall) -> Response:
    store = call.store
    rows = [
        [
            cell(p.name, f"/published/{p.id}"),
            cell(p.status, status=True),
            cell(p.version or ""),
            cell(p.id, f"/published/{p.id}", mono=True),
            cell(store.count_runs(published=p.id), f"/?published={p.id}"),
        ]
        for p in store.catalog().all_published()
    ]
    headers = ["Name", "Status", "Version", "ID", "Runs"]
    return call.render("catalog.html", what="Published pipelines", headers=headers, rows=rows)


def endpoints_page(call: PageCall) -> Response:
    rows = [
        [
            cell(e.name, f"/endpoints/{e.name}"),
            cell(e.status, status=True),
            cell(e.default_version),
            cell(e.pipeline_id(), f"/published/{e.pipeline_id()}", mono=True),
            cell(e.description or ""),
        ]
        for e in call.store.catalog().endpoints()
    ]
    headers = ["Name", "Status", "Default", "Pipeline", "Description"]
    return call.render("catalog.html", what="Endpoints", headers=headers, rows=rows)


def schedules_page(call: PageCall) -> Response:
    from mlproj.publish.cron import describe

    rows = [
        [
            cell(s.name, f"/schedules/{s.name}"),
            cell(s.status, status=True),
            cell(describe(s.cron, s.every_s)),
            _target(s.endpoint, s.pipeline_id),
            cell(when(s.last_tick)),
        ]
        for s in call.store.catalog().schedules()
    ]
    headers = ["Name", "Status", "When", "Runs", "Last tick (UTC)"]
    return call.render("catalog.html", what="Schedules", headers=headers, rows=rows)


def _target(endpoint: str | None, pipeline_id: str | None) -> dict[str, object]:
    if endpoint:
        return cell(f"endpoint {endpoint}", f"/endpoints/{endpoint}")
    return cell(pipeline_id or "", f"/published/{pipeline_id}", mono=True)


# --- one of each -------------------------------------------------------------------------------------


def published_one(call: PageCall) -> Response:
    published = call.store.catalog().published(call.path["pipeline_id"])
    fields = [
        ("ID", published.id),
        ("status", published.status),
        ("version", published.version or ""),
        ("description", published.description or ""),
        ("published (UTC)", when(published.created_at)),
        ("from", published.source_uri or ""),
        ("commit", published.commit or ""),
        ("continue on step failure", "yes" if published.continue_on_step_failure else ""),
        ("inputs", ", ".join(f"{k}={v}" for k, v in published.inputs.items())),
    ]
    runs = call.store.list_runs(published=published.id, limit=RUNS)
    return _one(call, f"Published pipeline {published.name}", fields, runs, f"/?published={published.id}")


def endpoint_one(call: PageCall) -> Response:
    endpoint = call.store.catalog().endpoint(call.path["name"])
    fields = [
        ("status", endpoint.status),
        ("default version", endpoint.default_version),
        ("description", endpoint.description or ""),
        ("created (UTC)", when(endpoint.created_at)),
    ]
    versions = [
        [
            cell(version + (" (default)" if version == endpoint.default_version else "")),
            cell(pipeline_id, f"/published/{pipeline_id}", mono=True),
        ]
        for version, pipeline_id in endpoint.versions
    ]
    runs = call.store.list_runs(endpoint=endpoint.name, limit=RUNS)
    table = ("Versions", ["Version", "Published pipeline"], versions)
    return _one(call, f"Endpoint {endpoint.name}", fields, runs, f"/?endpoint={endpoint.name}", table)


def schedule_one(call: PageCall) -> Response:
    from mlproj.publish.cron import describe

    catalog = call.store.catalog()
    schedule = catalog.schedule(call.path["name"])
    fields = [
        ("status", schedule.status),
        ("when", describe(schedule.cron, schedule.every_s)),
        ("runs", f"endpoint {schedule.endpoint}" if schedule.endpoint else schedule.pipeline_id or ""),
        ("parameters", ", ".join(f"{k}={v}" for k, v in schedule.parameters.items())),
        ("experiment", schedule.experiment or ""),
        ("created (UTC)", when(schedule.created_at)),
        ("last tick (UTC)", when(schedule.last_tick)),
    ]
    fires = [
        [
            cell(when(fire.tick)),
            cell(fire.run_id[:12], f"/runs/{fire.run_id}", mono=True) if fire.run_id else cell(""),
            cell(fire.error or ""),
        ]
        for fire in catalog.fires(schedule.name, limit=FIRES)
    ]
    runs = call.store.list_runs(schedule=schedule.name, limit=RUNS)
    table = ("Last ticks", ["Tick (UTC)", "Run", "Why not"], fires)
    return _one(call, f"Schedule {schedule.name}", fields, runs, f"/?schedule={schedule.name}", table)


def _one(
    call: PageCall,
    title: str,
    fields: list[tuple[str, str]],
    runs: list[RunRecord],
    all_runs: str,
    table: tuple[str, list[str], list[list[dict[str, object]]]] | None = None,
) -> Response:
    from mlproj.execution.reconcile import reconcile

    runs = [run if run.is_final else reconcile(call.store, run) for run in runs]
    return call.render(
        "catalog_one.html",
        title=title,
        fields=[(key, value) for key, value in fields if value],
        table=table,
        runs=runs,
        more=all_runs if len(runs) == RUNS else None,
    )
