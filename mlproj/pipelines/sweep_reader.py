"""A sweep node's keys read and checked (design.md §9), as azure-ai-ml writes a sweep job in a
pipeline:

```yaml
tune:
  type: sweep
  trial: ./train.yml                 # the command component each trial runs
  inputs: {data: ${{parent.jobs.prep.outputs.clean}}}
  search_space: {lr: {type: loguniform, min_value: -6, max_value: -1}, depth: {type: choice, values: [2, 4]}}
  sampling_algorithm: {type: random, seed: 7}      # random, grid or sobol
  objective: {goal: maximize, primary_metric: accuracy}
  limits: {max_total_trials: 20, max_concurrent_trials: 4, timeout: 3600, trial_timeout: 600}
  early_termination: {type: bandit, evaluation_interval: 1, delay_evaluation: 2, slack_factor: 0.1}
```

The trial is a template (`tune.trial`) whose iterations are the trials `tune.0`, `tune.1`, …"""

from __future__ import annotations

from mlproj.pipelines.sweeps import GOALS, POLICIES, SAMPLINGS, SOBOL_DIMENSIONS, grid_size, space_problems

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.pipelines.problems import Job
    from mlproj.pipelines.reader import Reader

LIMIT_KEYS = ("max_total_trials", "max_concurrent_trials", "timeout", "trial_timeout")
MAX_TRIALS = 1000


def sweep_control(reader: Reader, job: Job) -> dict[str, Any]:
    """The sweep's `control`: space, sampling, seed, goal, metric, max_trials, max_concurrency,
    timeout, policy."""
    body = job.body

    def problem(key: str, message: str) -> None:
        reader.problems.add(job.error(key, message))

    space = reader.mapping(body.get("search_space"), job.where, "search_space")
    if not space:
        problem("search_space", "expected {INPUT: {type: KIND, ...}}")
    for key, message in space_problems(space):
        problem(f"search_space.{key}", message)
    sampling, seed = _sampling(reader, job)
    if sampling == "grid" and any(isinstance(s, dict) and s.get("type") != "choice" for s in space.values()):
        problem("sampling_algorithm", "grid sampling takes choice parameters only")
    if sampling == "sobol" and len(space) > SOBOL_DIMENSIONS:
        problem("sampling_algorithm", f"sobol sampling takes at most {SOBOL_DIMENSIONS} parameters")
    objective = reader.mapping(body.get("objective"), job.where, "objective")
    goal, metric = objective.get("goal"), objective.get("primary_metric")
    if goal not in GOALS:
        problem("objective.goal", f"expected one of: {', '.join(GOALS)}, got {goal!r}")
    if not isinstance(metric, str) or not metric.strip():
        problem("objective.primary_metric", "expected the name of an MLflow metric the trials log")
    limits = reader.mapping(body.get("limits"), job.where, "limits")
    for key in limits:
        if key not in LIMIT_KEYS:
            problem(f"limits.{key}", f"unknown key (expected one of: {', '.join(LIMIT_KEYS)})")
    where = job.where.at("limits")
    trials = reader.positive_int(limits, "max_total_trials", where)
    if trials is None and sampling != "grid" and "max_total_trials" not in limits:
        problem("limits", f"{sampling} sampling needs limits.max_total_trials")
    all_choice = all(isinstance(spec, dict) and spec.get("type") == "choice" for spec in space.values())
    if sampling == "grid" and space and all_choice and not space_problems(space):
        trials = min(trials or MAX_TRIALS, grid_size(space))
    if trials is not None and trials > MAX_TRIALS:
        problem("limits.max_total_trials", f"expected at most {MAX_TRIALS}, got {trials}")
    return {
        "space": dict(space),
        "sampling": sampling,
        "seed": seed,
        "goal": goal if goal in GOALS else "maximize",
        "metric": metric.strip() if isinstance(metric, str) else "",
        "max_trials": trials or 1,
        "max_concurrency": reader.positive_int(limits, "max_concurrent_trials", where),
        "timeout": reader.positive_number(limits, "timeout", where),
        "policy": _policy(reader, job),
    }


def _sampling(reader: Reader, job: Job) -> tuple[str, int | None]:
    value = job.body.get("sampling_algorithm", "random")
    seed = None
    if isinstance(value, dict):
        for key in value:
            if key not in ("type", "seed", "rule"):
                reader.problems.add(
                    job.error(f"sampling_algorithm.{key}", "unknown key (expected type, seed, rule)")
                )
        seed = reader.positive_int(value, "seed", job.where.at("sampling_algorithm"), minimum=0)
        kind = value.get("type")
        if kind == "random" and value.get("rule") == "sobol":
            kind = "sobol"
        value = kind
    if value not in SAMPLINGS:
        message = f"expected one of: {', '.join(SAMPLINGS)}, got {value!r}"
        if value == "bayesian":
            message = "bayesian sampling is not run by mlproj (random, grid and sobol are)"
        reader.problems.add(job.error("sampling_algorithm", message))
        return "random", seed
    return str(value), seed


def _policy(reader: Reader, job: Job) -> dict[str, Any] | None:
    raw = job.body.get("early_termination")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or raw["type"] not in POLICIES:
        message = f"expected {{type: KIND, ...}} with KIND one of: {', '.join(POLICIES)}"
        reader.problems.add(job.error("early_termination", message))
        return None
    kind = raw["type"]
    where = job.where.at("early_termination")
    for key in raw:
        if key != "type" and key not in POLICIES[kind]:
            message = f"unknown key for {kind} (expected one of: {', '.join(POLICIES[kind])})"
            reader.problems.add(job.error(f"early_termination.{key}", message))
    for key in ("evaluation_interval", "delay_evaluation"):
        reader.positive_int(raw, key, where, minimum=1 if key == "evaluation_interval" else 0)
    for key in ("slack_factor", "slack_amount", "truncation_percentage"):
        value = raw.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            reader.problems.add(
                job.error(f"early_termination.{key}", f"expected a positive number, got {value!r}")
            )
    if kind == "bandit" and "slack_factor" not in raw and "slack_amount" not in raw:
        reader.problems.add(job.error("early_termination", "bandit needs slack_factor or slack_amount"))
    percentage = raw.get("truncation_percentage")
    valid = isinstance(percentage, (int, float)) and not isinstance(percentage, bool) and 0 < percentage < 100
    if kind == "truncation_selection" and not valid:
        reader.problems.add(
            job.error("early_termination.truncation_percentage", "expected a percentage between 0 and 100")
        )
    return dict(raw)
