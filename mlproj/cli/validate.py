"""`mlproj validate URI`: what would run, resolved and checked, without running or recording it."""

from __future__ import annotations

import sys

import click

from mlproj.cli.common import print_json


@click.command("validate")
@click.argument("uri")
@click.option("-e", "--entry-point", default="main", show_default=True)
@click.option("-v", "--version", help="Git branch, tag or commit.")
@click.option("-P", "--param", "params", multiple=True, metavar="KEY=VALUE")
@click.option("--env-manager", help="local, virtualenv, uv or conda.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved run as JSON.")
def validate_command(
    uri: str,
    entry_point: str,
    version: str | None,
    params: tuple[str, ...],
    env_manager: str | None,
    as_json: bool,
) -> int:
    """Check the project at URI and show the command it would run."""

    from mlproj.home import Home
    from mlproj.params import parse_assignments
    from mlproj.pipelines import names_pipeline
    from mlproj.submit.project import RunOptions, plan_project
    from mlproj.ui.console import Text

    if names_pipeline(uri):
        return _validate_pipeline(uri, version, parse_assignments(params), env_manager, as_json)
    options = RunOptions(
        uri=uri,
        entry_point=entry_point,
        version=version,
        parameters=parse_assignments(params),
        env_manager=env_manager,
    )
    planned = plan_project(options, Home.from_env(), materialize=False)
    document = {
        "uri": planned.uri,
        "version": options.version,
        "commit": planned.commit,
        "project_dir": str(planned.project.directory),
        "entry_point": planned.entry_point.name,
        "parameters": dict(planned.parameters.values),
        "command": planned.request.command,
        "env_manager": planned.request.env_manager,
    }
    if as_json:
        print_json(document)
        return 0
    out = Text(sys.stdout)
    width = max(len(key) for key in document)
    for key, value in document.items():
        if value not in (None, {}, ""):
            shown = " ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value
            out.print(f"{out.style(key.replace('_', ' ').ljust(width), '2')}  {shown}")
    out.print(out.style("valid: nothing was run", "32"))
    return 0


def _validate_pipeline(
    uri: str, version: str | None, inputs: dict[str, str], env_manager: str | None, as_json: bool
) -> int:
    """Plan the whole pipeline (every step's project, parameters and environment) without running."""
    from mlproj.home import Home
    from mlproj.pipelines.plan import PipelineOptions, plan_run
    from mlproj.ui.console import Text

    options = PipelineOptions(uri=uri, version=version, inputs=inputs, env_manager=env_manager)
    plan = plan_run(options, Home.from_env(), materialize=False)
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
            }
        )
    if as_json:
        print_json(
            {
                "pipeline": pipeline.name,
                "file": str(pipeline.file),
                "inputs": dict(plan.recorded_inputs),
                "steps": order,
                "edges": pipeline.edges(),
                "plan": steps,
            }
        )
        return 0
    out = Text(sys.stdout)
    out.print(f"pipeline {pipeline.name} ({pipeline.file}): {len(order)} steps")
    if plan.recorded_inputs:
        out.print("inputs: " + " ".join(f"{k}={v}" for k, v in plan.recorded_inputs.items()))
    for item in steps:
        after = f" after {', '.join(item['after'])}" if item["after"] else ""
        where = f" {item['uri']}" if item["uri"] else ""
        entry = f" -e {item['entry_point']}" if item["entry_point"] else ""
        out.print(f"  {item['name']} ({item['type']}{where}{entry}, {item['env_manager']}){after}")
    out.print(out.style("valid: nothing was run", "32"))
    return 0
