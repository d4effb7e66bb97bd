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
        lines = ["graph TD"]
        lines += [f"  {_mermaid_id(n)}[{json.dumps(n)}]" for n in nodes]
        lines += [f"  {_mermaid_id(a)} --> {_mermaid_id(b)}" for a, b in edges]
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


def _mermaid_id(name: str) -> str:
    return "s_" + "".join(c if c.isalnum() else "_" for c in name)
