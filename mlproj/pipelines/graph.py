"""A pipeline's DAG as text, Mermaid, Graphviz dot or JSON (`mlproj graph`)."""

from __future__ import annotations

import json

from mlproj.pipelines.model import Pipeline

FORMATS = ("text", "mermaid", "dot", "json")


def render(pipeline: Pipeline, fmt: str) -> str:
    nodes = pipeline.order()
    edges = pipeline.edges()
    if fmt == "json":
        return json.dumps({"nodes": nodes, "edges": [list(edge) for edge in edges]}, indent=2)
    if fmt == "mermaid":
        ids = _mermaid_ids(nodes)
        lines = ["graph TD"]
        lines += [f"  {ids[n]}[{json.dumps(n)}]" for n in nodes]
        lines += [f"  {ids[a]} --> {ids[b]}" for a, b in edges]
        return "\n".join(lines)
    if fmt == "dot":
        lines = [f"digraph {json.dumps(pipeline.name)} {{", "  rankdir=LR;"]
        lines += [f"  {json.dumps(n)};" for n in nodes]
        lines += [f"  {json.dumps(a)} -> {json.dumps(b)};" for a, b in edges]
        return "\n".join([*lines, "}"])
    width = max((len(n) for n in nodes), default=0)
    lines = []
    for name in nodes:
        upstream = sorted(pipeline.steps[name].upstream())
        lines.append(f"{name.ljust(width)}  <- {', '.join(upstream)}" if upstream else name)
    return "\n".join(lines)


def _mermaid_ids(names: list[str]) -> dict[str, str]:
    """A Mermaid node ID per step, from its name; names that read the same once made an ID
    (`prep-data`, `prep_data`) get a suffix, so that no two steps share a node."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = "s_" + "".join(c if c.isalnum() else "_" for c in name)
        made, suffix = base, 2
        while made in taken:
            made, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(made)
        ids[name] = made
    return ids
