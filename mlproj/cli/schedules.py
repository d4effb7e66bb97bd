"""`mlproj schedules create | list | show | enable | disable | delete | trigger` (design.md §10)."""

from __future__ import annotations

from mlproj.cli.common import open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.runs.catalog import Schedule
    from mlproj.ui.console import Console


def create(
    app: Console,
    *,
    name: str,
    pipeline_id: str | None,
    endpoint: str | None,
    cron: str | None,
    every: str | None,
    params: tuple[str, ...],
    experiment_name: str | None,
) -> int:
    from mlproj.params import parse_assignments
    from mlproj.publish import create_schedule

    schedule = create_schedule(
        open_store(reading=False),
        name,
        pipeline_id=pipeline_id,
        endpoint=endpoint,
        cron=cron,
        every=every,
        parameters=parse_assignments(params, "-P"),
        experiment=experiment_name,
    )
    _print(app, schedule)
    if not app.as_json:
        app.note("It fires while `mlproj serve` runs.")
    return 0


def list_schedules(app: Console) -> int:
    found = open_store().catalog().schedules()
    if app.as_json:
        app.json([s.to_dict() for s in found])
        return 0
    if not found:
        app.print("No schedules.")
        return 0
    from mlproj.cli.render import table_lines
    from mlproj.publish.cron import describe

    rows = [[s.name, s.status, describe(s.cron, s.every_s), _target(s), _when(s.last_tick)] for s in found]
    for line in table_lines(app.out, ["NAME", "STATUS", "WHEN", "RUNS", "LAST TICK"], rows):
        app.print(line)
    return 0


def show(app: Console, *, name: str) -> int:
    catalog = open_store().catalog()
    schedule = catalog.schedule(name)
    fires = catalog.fires(schedule.name)
    if app.as_json:
        app.json({**schedule.to_dict(), "fires": [f.to_dict() for f in fires]})
        return 0
    _print(app, schedule)
    for fire in fires:
        app.print(f"  {_when(fire.tick)}  {fire.run_id or ''}{fire.error or ''}")
    return 0


def enable(app: Console, *, name: str) -> int:
    from mlproj.publish import enable_schedule

    return _print(app, enable_schedule(open_store(reading=False), name))


def disable(app: Console, *, name: str) -> int:
    return _print(app, open_store(reading=False).catalog().set_schedule_status(name, "Disabled"))


def delete(app: Console, *, name: str) -> int:
    open_store(reading=False).catalog().delete_schedule(name)
    if app.as_json:
        app.json({"name": name, "deleted": True})
    else:
        app.print(f"Schedule {name} deleted")
    return 0


def trigger(app: Console, *, name: str) -> int:
    from mlproj.publish.schedules import trigger as fire_now

    fired = fire_now(open_store(reading=False), name)
    if app.as_json:
        app.json(fired.to_dict())
        return 0 if fired.run_id else 1
    if fired.run_id:
        app.print(fired.run_id)
        return 0
    app.note(f"mlproj: schedule {name} could not start a run: {fired.error}")
    return 1


def _print(app: Console, schedule: Schedule) -> int:
    if app.as_json:
        app.json(schedule.to_dict())
        return 0
    from mlproj.publish.cron import describe

    app.print(f"schedule  {schedule.name}  ({schedule.status})")
    app.print(f"when      {describe(schedule.cron, schedule.every_s)}")
    app.print(f"runs      {_target(schedule)}")
    if schedule.parameters:
        app.print("params    " + ", ".join(f"{k}={v}" for k, v in schedule.parameters.items()))
    app.print(f"last tick {_when(schedule.last_tick) or '-'}")
    return 0


def _target(schedule: Schedule) -> str:
    return f"endpoint {schedule.endpoint}" if schedule.endpoint else f"published {schedule.pipeline_id}"


def _when(timestamp: float | None) -> str:
    from mlproj.runs.record import iso_utc

    return (iso_utc(timestamp) or "")[:19].replace("T", " ")
