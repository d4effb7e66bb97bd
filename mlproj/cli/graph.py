"""`mlproj graph URI_OR_RUN_ID`: a pipeline's steps and what they depend on."""

from __future__ import annotations

from pathlib import Path

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def graph(app: Console, *, uri_or_run_id: str, fmt: str) -> int:
    from mlproj.errors import InputError
    from mlproj.pipelines import is_pipeline_file, names_pipeline
    from mlproj.pipelines.graph import render
    from mlproj.pipelines.loader import load_pipeline
    from mlproj.sources import is_git_uri

    path = Path(uri_or_run_id)
    if is_pipeline_file(path):
        app.print(render(load_pipeline(path), fmt))
        return 0
    if path.exists():
        raise InputError(f"{uri_or_run_id}: expected a pipeline file (.yml/.yaml with `type: pipeline`)")
    if is_git_uri(uri_or_run_id.partition("#")[0]) and names_pipeline(uri_or_run_id):
        from mlproj.home import Home
        from mlproj.sources import fetch

        source = fetch(uri_or_run_id, None, Home.from_env(), Path.cwd())
        app.print(render(load_pipeline(source.path), fmt))
        return 0
    if path.suffix in (".yml", ".yaml") or "/" in uri_or_run_id:
        raise InputError(f"{uri_or_run_id}: no such pipeline file")
    from mlproj.cli.common import find, open_store
    from mlproj.pipelines.records import load_recorded

    store = open_store()
    record = find(store, uri_or_run_id)
    pipeline = load_recorded(record)
    iterations: dict[str, list[str]] = {}
    from mlproj.pipelines.model import display_order, loop_of

    loops = {name for name, step in pipeline.steps.items() if step.is_control}
    for name in display_order([step.step or "" for step in store.steps_of(record.run_id)]):
        found = loop_of(name, loops)
        if found:
            iterations.setdefault(found[0], []).append(name)
    app.print(render(pipeline, fmt, iterations))
    return 0
