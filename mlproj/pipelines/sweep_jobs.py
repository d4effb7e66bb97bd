"""A sweep job as azure-ai-ml writes it in a pipeline (`trial:` a command component) read into the two
things mlproj runs: its trial as a template, and its control node (mlproj.pipelines.sweep_reader)."""

from __future__ import annotations

from mlproj.pipelines.problems import Job, Problems, Where
from mlproj.pipelines.scopes import OUTPUT_BINDING, job_output_binding

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    class Expanding(Protocol):
        """What reading a sweep job needs of the jobs' expander."""

        problems: Problems

        def component(
            self, value: Any, job: Job, key: str = "component"
        ) -> tuple[dict[str, Any], Where] | None: ...

        def merge(self, job: Job, component: dict[str, Any], where: Where) -> None: ...


def expand_sweep(
    expander: Expanding, job: Job, on_parent_output: Callable[[str, str, Where], None]
) -> list[Job]:
    """A sweep job: its trial component becomes the template `NAME.trial` (with the job's inputs and
    each search space input at a value of its range, for the checks), the job its control node."""
    from mlproj.pipelines.sweeps import draw

    loaded = expander.component(job.body.get("trial"), job, key="trial")
    if loaded is None:
        return []
    data, comp_where = loaded
    if data.get("type", "command") != "command":
        expander.problems.add(comp_where.error("type", "a sweep's trial is a command component"))
        return []
    space = job.body.get("search_space")
    inputs = dict(job.body.get("inputs") or {}) if isinstance(job.body.get("inputs"), dict) else {}
    for name, spec in space.items() if isinstance(space, dict) else []:
        try:
            inputs.setdefault(str(name), draw(spec, 0.5))
        except (KeyError, TypeError, ValueError, IndexError, ArithmeticError):
            continue  # the sweep's checks say what is wrong with it
    given = job.body.get("outputs")
    outputs: dict[Any, Any] = given if isinstance(given, dict) else {}
    bound = {
        out: value for out, value in outputs.items() if isinstance(value, str) and OUTPUT_BINDING.match(value)
    }
    keys = ("compute", "environment_variables", "resources", "distribution")
    trial_body = {key: job.body[key] for key in keys if key in job.body}
    trial_body["inputs"] = inputs
    trial_body["outputs"] = {out: (None if out in bound else value) for out, value in outputs.items()}
    limits = job.body.get("limits")
    if isinstance(limits, dict) and limits.get("trial_timeout") is not None:
        trial_body["limits"] = {"timeout": limits["trial_timeout"]}
    trial = Job(f"{job.name}.trial", trial_body, job.where)
    expander.merge(trial, data, comp_where)
    for out, value in bound.items():
        parent = OUTPUT_BINDING.match(value).group(1)  # type: ignore[union-attr]
        on_parent_output(parent, job_output_binding(job.name, str(out)), job.where.at(f"outputs.{out}"))
    control = {
        key: value for key, value in job.body.items() if key not in ("trial", "inputs", "outputs", *keys)
    }
    control["body"] = "${{parent.jobs." + trial.name + "}}"
    return [trial, Job(job.name, control, job.where)]
