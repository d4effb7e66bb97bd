"""A pipeline's DAG as text, Mermaid, Graphviz dot or JSON (`mlproj graph`). Control nodes are drawn as
what they are (an if_else as a decision, a loop or a sweep with its body), and for a run, a loop's
iterations and a sweep's trials under it."""

from __future__ import annotations

import json

from mlproj.pipelines.model import Pipeline, Step

FORMATS = ("text", "mermaid", "dot", "json")
SHOWN = ("body", "true_block", "false_block")  # what json shows of a control node


def describe(step: Step) -> str | None:
    """What a control node is, in a few words (None for a plain step)."""
    control = step.control or {}
    if step.type == "if_else":
        blocks = [
            f"{key.split('_')[0]}: {', '.join(control.get(key) or []) or '-'}"
            for key in ("true_block", "false_block")
        ]
        return f"if_else ({'; '.join(blocks)})"
    if step.is_control:
        return f"{step.type} of {control.get('body')}"
    return None


def render(pipeline: Pipeline, fmt: str, iterations: dict[str, list[str]] | None = None) -> str:
    """The DAG; `iterations`: for a run, each loop's iterations (or sweep's trials) by node."""
    nodes = pipeline.order()
    edges = pipeline.edges()
    iterations = iterations or {}
    kinds = {name: pipeline.steps[name] for name in nodes if pipeline.steps[name].is_control}
    if fmt == "json":
        document: dict[str, object] = {"nodes": nodes, "edges": [list(edge) for edge in edges]}
        if kinds:
            document["controls"] = {
                name: {"type": step.type, **{k: v for k, v in (step.control or {}).items() if k in SHOWN}}
                for name, step in kinds.items()
            }
        if iterations:
            document["iterations"] = iterations
        return json.dumps(document, indent=2)
    if fmt == "mermaid":
        ids = _mermaid_ids([*nodes, *(i for names in iterations.values() for i in names)])
        lines = ["graph TD"]
        for name in nodes:
            label = json.dumps(name)
            shape = (
                f"{{{label}}}"
                if name in kinds and kinds[name].type == "if_else"
                else f"[[{label}]]"
                if name in kinds
                else f"[{label}]"
            )
            lines.append(f"  {ids[name]}{shape}")
        lines += [f"  {ids[a]} --> {ids[b]}" for a, b in edges]
        for node, names in iterations.items():
            lines += [f"  {ids[i]}[{json.dumps(i)}]" for i in names]
            lines += [f"  {ids[node]} -.- {ids[i]}" for i in names]
        return "\n".join(lines)
    if fmt == "dot":
        lines = [f"digraph {json.dumps(pipeline.name)} {{", "  rankdir=LR;"]
        for name in nodes:
            shape = (
                ""
                if name not in kinds
                else " [shape=diamond]"
                if kinds[name].type == "if_else"
                else " [shape=box3d]"
            )
            lines.append(f"  {json.dumps(name)}{shape};")
        lines += [f"  {json.dumps(a)} -> {json.dumps(b)};" for a, b in edges]
        for node, names in iterations.items():
            lines += [f"  {json.dumps(node)} -> {json.dumps(i)} [style=dashed];" for i in names]
        return "\n".join([*lines, "}"])
    width = max((len(n) for n in nodes), default=0)
    lines = []
    for name in nodes:
        upstream = sorted(pipeline.steps[name].upstream())
        line = f"{name.ljust(width)}  <- {', '.join(upstream)}" if upstream else name
        what = describe(pipeline.steps[name])
        lines.append(f"{line}  [{what}]" if what else line)
        lines += [f"  {member}" for member in iterations.get(name, [])]
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
