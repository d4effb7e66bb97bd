"""Hyperparameter sweeps (design.md §9), as azure-ai-ml writes them: the search space and its
sampling, the early termination policies, and the trials' objective read from their MLflow metrics.

Search space: `choice {values}`, `randint {upper}`, `uniform`/`loguniform {min_value, max_value}`,
`quniform`/`qloguniform` (and `q`), `normal`/`lognormal {mu, sigma}`, `qnormal`/`qlognormal` (and
`q`). `loguniform` draws exp(uniform(min_value, max_value)), as Azure ML's (and Hyperopt's) do.
Sampling: `grid` (every combination; choice only), `random` (seeded: the same seed gives the same
trials), `sobol` (a scrambled-free Sobol sequence, up to 8 parameters).
"""

from __future__ import annotations

import itertools
import math
import random
import statistics

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

DISTRIBUTIONS = {
    "choice": ("values",),
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "loguniform": ("min_value", "max_value"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"),
    "qlognormal": ("mu", "sigma", "q"),
}
SAMPLINGS = ("random", "grid", "sobol")
LOG_LIMIT = 700  # exp(700) is about the largest a float holds
GOALS = ("maximize", "minimize")
POLICIES = {
    "bandit": ("evaluation_interval", "delay_evaluation", "slack_factor", "slack_amount"),
    "median_stopping": ("evaluation_interval", "delay_evaluation"),
    "truncation_selection": (
        "evaluation_interval",
        "delay_evaluation",
        "truncation_percentage",
        "exclude_finished_jobs",
    ),
}
# Sobol direction numbers (Joe and Kuo, new-joe-kuo-6.21201): (degree s, coefficients a, m_1..m_s).
_SOBOL = [
    (1, 0, (1,)),
    (2, 1, (1, 3)),
    (3, 1, (1, 3, 1)),
    (3, 2, (1, 1, 1)),
    (4, 1, (1, 1, 3, 3)),
    (4, 4, (1, 3, 5, 13)),
    (5, 2, (1, 1, 5, 5, 17)),
]
_BITS = 30
SOBOL_DIMENSIONS = len(_SOBOL) + 1


def space_problems(space: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, problem) for each parameter of a search space that is not one of the distributions."""
    found: list[tuple[str, str]] = []
    for name, spec in space.items():
        found += _parameter_problems(str(name), spec)
    return found


def _parameter_problems(name: str, spec: Any) -> list[tuple[str, str]]:
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("type"), str)
        or spec["type"] not in DISTRIBUTIONS
    ):
        return [(name, f"expected {{type: KIND, ...}} with KIND one of: {', '.join(DISTRIBUTIONS)}")]
    kind = spec["type"]
    expected = DISTRIBUTIONS[kind]
    found = [
        (f"{name}.{key}", f"unknown key for {kind} (expected: {', '.join(expected)})")
        for key in spec
        if key != "type" and key not in expected
    ]
    for key in expected:
        value = spec.get(key)
        if key == "values" and (not isinstance(value, list) or not value):
            found.append((f"{name}.values", "expected a non-empty list"))
        elif key != "values" and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            found.append((f"{name}.{key}", f"expected a number, got {value!r}"))
    if found:
        return found
    if "min_value" in expected and spec["min_value"] >= spec["max_value"]:
        found.append((name, "expected min_value below max_value"))
    if (
        "log" in kind
        and max(spec.get("max_value", 0), spec.get("mu", 0) + 8 * spec.get("sigma", 0)) > LOG_LIMIT
    ):
        found.append(
            (name, f"exp() of it overflows: keep it below {LOG_LIMIT} (values are exp of the range)")
        )
    if kind == "randint" and (not isinstance(spec["upper"], int) or spec["upper"] < 1):
        found.append((f"{name}.upper", "expected a whole number of at least 1"))
    if "q" in expected and spec["q"] <= 0:
        found.append((f"{name}.q", "expected a positive number"))
    if "sigma" in expected and spec["sigma"] <= 0:
        found.append((f"{name}.sigma", "expected a positive number"))
    return found


def grid_size(space: Mapping[str, Any]) -> int:
    return math.prod(len(spec["values"]) for spec in space.values())


def sample(space: Mapping[str, Any], sampling: str, count: int, seed: int | None) -> list[dict[str, Any]]:
    """The trials' parameter values: every combination (grid), or `count` points."""
    names = sorted(space)
    if sampling == "grid":
        combos = itertools.product(*(space[name]["values"] for name in names))
        return [dict(zip(names, combo, strict=True)) for combo in itertools.islice(combos, count)]
    if sampling == "sobol":
        points = sobol(len(names), count)
    else:
        rng = random.Random(seed)  # noqa: S311 - sampling, not secrets: a seed must give the same trials
        points = [[rng.random() for _ in names] for _ in range(count)]
    return [{name: draw(space[name], u) for name, u in zip(names, point, strict=True)} for point in points]


def draw(spec: Mapping[str, Any], u: float) -> Any:
    """The value of a distribution at the point `u` of [0, 1) (its inverse distribution function)."""
    kind = spec["type"]
    u = min(max(u, 1e-12), 1 - 1e-12)
    if kind == "choice":
        values = spec["values"]
        return values[min(int(u * len(values)), len(values) - 1)]
    if kind == "randint":
        return min(int(u * spec["upper"]), spec["upper"] - 1)
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        value = spec["min_value"] + u * (spec["max_value"] - spec["min_value"])
    else:
        value = statistics.NormalDist(spec["mu"], spec["sigma"]).inv_cdf(u)
    if "log" in kind:
        value = math.exp(value)
    if kind.startswith("q"):
        value = round(value / spec["q"]) * spec["q"]
    return value


def sobol(dimensions: int, count: int) -> list[list[float]]:
    """The first `count` points of the Sobol sequence in `dimensions` dimensions (after the origin)."""
    if dimensions > SOBOL_DIMENSIONS:
        raise ValueError(f"sobol sampling takes at most {SOBOL_DIMENSIONS} parameters")
    directions = [[1 << (_BITS - 1 - i) for i in range(_BITS)]]
    for degree, coefficients, initial in _SOBOL[: dimensions - 1]:
        v = [m << (_BITS - 1 - i) for i, m in enumerate(initial)]
        for i in range(degree, _BITS):
            value = v[i - degree] ^ (v[i - degree] >> degree)
            for k in range(1, degree):
                if (coefficients >> (degree - 1 - k)) & 1:
                    value ^= v[i - k]
            v.append(value)
        directions.append(v)
    points, state = [], [0] * dimensions
    for index in range(1, count + 1):
        bit = ((index - 1) ^ index).bit_length() - 1  # the lowest zero bit of index - 1
        state = [s ^ directions[d][bit] for d, s in enumerate(state)]
        points.append([s / (1 << _BITS) for s in state])
    return points


# --- early termination --------------------------------------------------------------------------------


def to_stop(
    policy: Mapping[str, Any],
    goal: str,
    running: Mapping[str, Sequence[float]],
    others: Sequence[Sequence[float]],
) -> dict[str, str]:
    """Running trials (by name) the policy ends now, with why. `running`: their primary metric as
    reported so far; `others`: every other trial's (ended ones included)."""
    interval = int(policy.get("evaluation_interval") or 1)
    delay = int(policy.get("delay_evaluation") or 0)
    better = max if goal == "maximize" else min
    sign = 1 if goal == "maximize" else -1
    stop: dict[str, str] = {}
    everyone = [*running.values(), *others]
    for name, values in running.items():
        reports = len(values)
        if reports <= delay or (reports - delay) % interval:
            continue
        at = reports - 1  # compared at the same report with every trial that got that far
        peers = [history[: at + 1] for history in everyone if len(history) > at]
        current = values[at]
        kind = policy["type"]
        if kind == "bandit":
            best = better(history[at] for history in peers)
            if "slack_amount" in policy:
                limit = best - sign * float(policy["slack_amount"])
            else:
                factor = float(policy.get("slack_factor") or 0)
                limit = best / (1 + factor) if goal == "maximize" else best * (1 + factor)
            if sign * (current - limit) < 0:
                stop[name] = (
                    f"bandit: {current:g} at report {reports} is outside the slack of the best {best:g}"
                )
        elif kind == "median_stopping":
            averages = [statistics.fmean(history) for history in peers]
            median = statistics.median(averages)
            best_so_far = better(values[: at + 1])
            if len(peers) > 1 and sign * (best_so_far - median) < 0:
                stop[name] = (
                    f"median_stopping: best {best_so_far:g} is worse than the median {median:g} "
                    f"at report {reports}"
                )
        elif kind == "truncation_selection":
            percentage = float(policy.get("truncation_percentage") or 0)
            ranked = sorted(sign * history[at] for history in peers)
            cut = int(len(ranked) * percentage / 100)
            if cut and len(peers) > 1 and sign * current <= ranked[cut - 1]:
                stop[name] = (
                    f"truncation_selection: {current:g} at report {reports} is in the lowest {percentage:g}%"
                )
    return stop


# --- the trials' metric ---------------------------------------------------------------------------------


def local_history(database: str, metric: str) -> list[float]:
    """A metric's values, in the order logged, from the MLflow SQLite store a trial logged to when no
    tracking server was configured (read only; the store's `metrics` table)."""
    import sqlite3
    from pathlib import Path

    if not Path(database).is_file():
        return []
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return []
    try:
        rows = connection.execute(
            "SELECT value FROM metrics WHERE key = ? ORDER BY timestamp, step", (metric,)
        ).fetchall()
    except sqlite3.Error:  # not created yet (the trial's MLflow makes its tables on first use)
        return []
    finally:
        connection.close()
    return [float(value) for (value,) in rows]
