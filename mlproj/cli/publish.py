"""`mlproj publish` and `mlproj published list | show | disable | enable | submit` (design.md §10)."""

from __future__ import annotations

from mlproj.cli.common import open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.runs.catalog import Published
    from mlproj.ui.console import Console


def publish(
    app: Console,
    *,
    uri: str,
    name: str | None,
    version: str | None,
    description: str | None,
    continue_on_step_failure: bool,
    overrides: tuple[str, ...],
    asset_map: str | None,
) -> int:
    from pathlib import Path

    from mlproj.errors import InputError
    from mlproj.publish import publish as publish_pipeline

    if name is None:
        raise InputError("publish: --name is required (the name the pipeline is published under)")
    published = publish_pipeline(
        open_store(reading=False),
        uri,
        name=name,
        version=version,
        description=description,
        continue_on_step_failure=continue_on_step_failure,
        overrides=overrides,
        asset_map=Path(asset_map).absolute() if asset_map else None,
    )
    if app.as_json:
        app.json(published.to_dict())
    else:
        app.print(published.id)
        app.note(f"Published {published.name}; run it with: mlproj published submit {published.id}")
    return 0


def list_published(app: Console) -> int:
    found = open_store().catalog().all_published()
    if app.as_json:
        app.json([p.to_dict() for p in found])
        return 0
    if not found:
        app.print("Nothing is published.")
        return 0
    from mlproj.cli.render import table_lines

    rows = [
        [p.id[:12], p.status, p.name, p.version or "", _when(p.created_at), p.source_uri or ""] for p in found
    ]
    for line in table_lines(app.out, ["ID", "STATUS", "NAME", "VERSION", "PUBLISHED", "SOURCE"], rows):
        app.print(line)
    return 0


def show_published(app: Console, *, pipeline_id: str) -> int:
    store = open_store()
    published = store.catalog().published(pipeline_id)
    runs = store.list_runs(published=published.id, limit=20)
    if app.as_json:
        app.json({**published.to_dict(), "runs": [r.to_dict() for r in runs]})
        return 0
    _show(app, published)
    if runs:
        from mlproj.cli.render import runs_lines

        app.print()
        for line in runs_lines(app.out, runs):
            app.print(line)
    return 0


def disable_published(app: Console, *, pipeline_id: str) -> int:
    return _set_status(app, pipeline_id, "Disabled")


def enable_published(app: Console, *, pipeline_id: str) -> int:
    return _set_status(app, pipeline_id, "Active")


def _set_status(app: Console, pipeline_id: str, status: str) -> int:
    published = open_store(reading=False).catalog().set_published_status(pipeline_id, status)
    if app.as_json:
        app.json(published.to_dict())
    else:
        app.print(f"Published pipeline {published.id} ({published.name}) is now {published.status}")
    return 0


def submit_published(
    app: Console, *, pipeline_id: str, params: tuple[str, ...], experiment_name: str | None, detach: bool
) -> int:
    from mlproj.cli.run import run_and_show
    from mlproj.params import parse_assignments
    from mlproj.publish import published_options

    options = published_options(
        open_store(reading=False),
        pipeline_id,
        parameters=parse_assignments(params, "-P"),
        experiment=experiment_name,
    )
    return run_and_show(app, options, detach=detach)


def _show(app: Console, published: Published) -> None:
    for key, value in (
        ("id", published.id),
        ("name", published.name),
        ("status", published.status),
        ("version", published.version or ""),
        ("description", published.description or ""),
        ("published", _when(published.created_at)),
        ("source", published.source_uri or ""),
        ("commit", published.commit or ""),
        ("snapshot", published.pipeline_file),
        ("inputs", ", ".join(f"{k}={v}" for k, v in published.inputs.items())),
    ):
        app.print(f"{key:<12}{value}")


def _when(timestamp: float) -> str:
    from mlproj.runs.record import iso_utc

    return (iso_utc(timestamp) or "")[:19].replace("T", " ")
