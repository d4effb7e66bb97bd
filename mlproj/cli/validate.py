"""`mlproj validate URI`: what would run, resolved and checked, without running or recording it."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.pipelines.plan import PipelinePlan
    from mlproj.ui.console import Console


def validate(
    app: Console,
    *,
    uri: str,
    entry_point: str,
    version: str | None,
    params: tuple[str, ...],
    strict_params: bool,
    env_manager: str | None,
    backend: str | None,
    backend_config: str | None,
    experiment_name: str | None,
    max_parallel: int | None,
    overrides: tuple[str, ...],
    asset_map: str | None,
) -> int:
    from mlproj.backends import load_backend_config
    from mlproj.cli.run import FLAGS, _absolute
    from mlproj.home import Home
    from mlproj.params import parse_assignments
    from mlproj.submit import options_for, plan
    from mlproj.submit.project import ProjectPlan

    options = options_for(  # what `run` would be given, refused as `run` refuses it
        uri,
        FLAGS,
        entry_point=None if entry_point == "main" else entry_point,
        version=version,
        parameters=parse_assignments(params, "-P"),
        strict_params=strict_params or None,
        env_manager=env_manager,
        backend=backend,
        backend_config=load_backend_config(backend_config),
        experiment=experiment_name,
        max_parallel=max_parallel,
        overrides=overrides,
        asset_map=_absolute(asset_map),
    )
    planned = plan(options, Home.from_env(), materialize=False)
    if not isinstance(planned, ProjectPlan):
        return _show_pipeline(app, planned)
    document = {
        "uri": planned.uri,
        "version": version,
        "commit": planned.commit,
        "project_dir": str(planned.project.directory),
        "entry_point": planned.entry_point.name,
        "parameters": dict(planned.parameters.values),
        "command": planned.request.command,
        "env_manager": planned.request.env_manager,
        "backend": planned.request.backend,
        "backend_config": dict(planned.request.backend_config),
        "experiment": planned.experiment,
    }
    if app.as_json:
        app.json(document)
        return 0
    out = app.out
    width = max(len(key) for key in document)
    for key, value in document.items():
        if value not in (None, {}, ""):
            shown = " ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value
            app.print(f"{out.style(key.replace('_', ' ').ljust(width), '2')}  {shown}")
    app.print(out.style("valid: nothing was run", "32"))
    return 0


def _show_pipeline(app: Console, plan: PipelinePlan) -> int:
    """The whole pipeline, planned (every step's project, parameters and environment), not run."""
    pipeline = plan.pipeline
    order = pipeline.order()
    steps = []
    for name in order:
        step_plan = plan.steps[name]
        steps.append(
            {
                "name": name,
                "type": step_plan.step.type,
                "after": sorted(step_plan.step.upstream()),
                "uri": step_plan.uri,
                "entry_point": step_plan.entry_point.name if step_plan.entry_point else None,
                "env_manager": step_plan.env_manager,
                "backend": step_plan.backend,
            }
        )
    if app.as_json:
        app.json(
            {
                "pipeline": pipeline.name,
                "file": str(pipeline.file),
                "inputs": dict(plan.recorded_inputs),
                "experiment": plan.experiment,
                "max_parallel": plan.max_parallel,
                "steps": order,
                "edges": pipeline.edges(),
                "plan": steps,
            }
        )
        return 0
    out = app.out
    app.print(f"pipeline {pipeline.name} ({pipeline.file}): {len(order)} steps")
    if plan.recorded_inputs:
        app.print("inputs: " + " ".join(f"{k}={v}" for k, v in plan.recorded_inputs.items()))
    for item in steps:
        after = f" after {', '.join(item['after'])}" if item["after"] else ""
        where = f" {item['uri']}" if item["uri"] else ""
        entry = f" -e {item['entry_point']}" if item["entry_point"] else ""
        app.print(f"  {item['name']} ({item['type']}{where}{entry}, {item['env_manager']}){after}")
    app.print(out.style("valid: nothing was run", "32"))
    return 0
