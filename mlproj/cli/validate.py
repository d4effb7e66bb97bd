"""`mlproj validate URI`: what would run, resolved and checked, without running or recording it."""

from __future__ import annotations

import sys
from pathlib import Path

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
    from pathlib import Path

    from mlproj import launch
    from mlproj.home import Home
    from mlproj.params import parse_assignments
    from mlproj.pipelines.spec import is_pipeline_file
    from mlproj.ui.text import Text

    if is_pipeline_file(Path(uri)):
        return _validate_pipeline(Path(uri), as_json)
    options = launch.RunOptions(
        uri=uri,
        entry_point=entry_point,
        version=version,
        parameters=parse_assignments(params),
        env_manager=env_manager,
    )
    planned = launch.plan(options, Home.from_env(), materialize=False)
    document = {
        "uri": planned.uri,
        "version": options.version,
        "commit": planned.commit,
        "project_dir": str(planned.project.directory),
        "entry_point": planned.entry_point.name,
        "parameters": dict(planned.parameters.values),
        "command": planned.command,
        "env_manager": planned.env_manager,
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


def _validate_pipeline(path: Path, as_json: bool) -> int:
    from mlproj.pipelines.spec import load_pipeline
    from mlproj.ui.text import Text

    pipeline = load_pipeline(path)
    order = pipeline.order()
    if as_json:
        print_json(
            {"pipeline": pipeline.name, "file": str(pipeline.file), "steps": order, "edges": pipeline.edges()}
        )
        return 0
    out = Text(sys.stdout)
    out.print(f"pipeline {pipeline.name} ({pipeline.file}): {len(order)} steps")
    for name in order:
        step = pipeline.steps[name]
        upstream = sorted(step.upstream())
        out.print(f"  {name} ({step.type})" + (f" after {', '.join(upstream)}" if upstream else ""))
    out.print(out.style("valid: nothing was run", "32"))
    return 0
