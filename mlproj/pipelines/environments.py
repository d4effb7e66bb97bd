"""A pipeline's environments, built before its first step starts: each distinct one once (or found in the
cache), their builds' output in the pipeline's log, cancelable like a step. The steps then find them in
the cache. Environments a cluster builds itself (Ray's runtime_env) are left to it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mlproj import process
from mlproj.execution.builds import run_build_step
from mlproj.execution.ladder import Stop, rungs
from mlproj.execution.signals import Canceled

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from mlproj.home import Home
    from mlproj.pipelines.plan import PipelinePlan, StepPlan


def wanted(plan: PipelinePlan) -> list[StepPlan]:
    """One step per distinct environment to build here (by fingerprint), in step order."""
    from mlproj.backends import get_backend
    from mlproj.envs import get_manager

    found: dict[str, StepPlan] = {}
    for step_plan in plan.steps.values():
        spec = step_plan.env_spec
        manager = get_manager(step_plan.env_manager)
        if spec is None or not manager.cached:
            continue
        if not get_backend(step_plan.backend).prepares_environment:
            continue  # the cluster builds it
        found.setdefault(manager.fingerprint(spec), step_plan)
    return list(found.values())


def build_environments(
    home: Home,
    plan: PipelinePlan,
    log_path: Path,
    cgroup: Path | None,
    *,
    stop_reason: Callable[[], str | None],
    on_build: Callable[[], None],
    on_status: Callable[[str | None], None],
    log_event: Callable[[str], None],
) -> None:
    """Build what `wanted` says. `stop_reason` says why the pipeline is being stopped (a build is then
    ended and `Canceled` raised); `on_build` is called before the first build or wait."""
    from mlproj.envs.build import prepare_environment

    base_env = {**os.environ, process.RUN_ID_VARIABLE: plan.run_id}

    def check_cancel() -> None:
        reason = stop_reason()
        if reason is not None:
            raise Canceled(reason)

    def build_stop() -> Stop | None:
        reason = stop_reason()
        return None if reason is None else Stop(reason, rungs(process.LEFTOVER_GRACE))

    for step_plan in wanted(plan):
        spec = step_plan.env_spec
        if spec is None:  # pragma: no cover - `wanted` keeps steps with an environment
            continue
        prepared = prepare_environment(
            home,
            step_plan.env_manager,
            spec,
            base_env,
            run_step=lambda step: run_build_step(
                plan.run_id, step, base_env, log_path, on_status, build_stop, cgroup
            ),
            on_build=on_build,
            on_status=on_status,
            check_cancel=check_cancel,
            rebuild=plan.options.rebuild_env,
        )
        what = "reused" if prepared.reused else "built"
        log_event(f"environment {step_plan.env_manager} {prepared.fingerprint} {what}")
