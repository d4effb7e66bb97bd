"""Getting a run its environment: reuse the cached one, or build it once, under a lock, cancellably.

The build's programs are started by the caller's `StepRunner` (the run's supervisor), which appends
their output to the run log and stops them if the run is canceled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mlproj.envs import get_manager
from mlproj.envs.base import BuildStep, PreparedEnv, count_packages
from mlproj.envs.cache import CachedEnv, EnvCache
from mlproj.errors import EnvironmentBuildError
from mlproj.home import Home
from mlproj.runs.envspec import EnvSpec
from mlproj.structs import dataclass, replace

LOCK_POLL = 0.2  # seconds between attempts to take an environment's lock (cancel checks in between)
ENV_FOLDER = "env"  # the environment inside its cache folder; files used to build it sit beside it


@dataclass(frozen=True)
class StepResult:
    returncode: int
    tail: str  # the step's last lines of output


StepRunner = Callable[[BuildStep], StepResult]
StatusCallback = Callable[[str], None]


def prepare_environment(
    home: Home,
    manager_name: str,
    spec: EnvSpec | None,
    base_env: Mapping[str, str],
    *,
    run_step: StepRunner,
    on_build: Callable[[], None],
    on_status: StatusCallback,
    check_cancel: Callable[[], None],
    rebuild: bool = False,
) -> PreparedEnv:
    """The environment for a run, built if needed. `on_build` is called once before any waiting or
    building (the run becomes `Preparing`); `check_cancel` raises to abandon a wait."""
    manager = get_manager(manager_name)
    if not manager.builds or spec is None:
        return PreparedEnv(manager=manager_name, variables=manager.activate(Path(), base_env))
    if not manager.cached:
        steps = manager.build_steps(spec, Path(spec.project_dir))
        if steps:
            on_build()
        started = time.monotonic()
        for step in steps:
            on_status(step.description)
            _check(manager_name, step, run_step(step))
        built_in = time.monotonic() - started if steps else None
        return PreparedEnv(
            manager=manager_name, variables=manager.activate(Path(), base_env), built_in=built_in
        )
    cache = EnvCache(home)
    fingerprint = manager.fingerprint(spec)
    if not rebuild:
        hit = cache.lookup(fingerprint)
        if hit is not None:
            cache.touch(fingerprint)
            return _activate(hit, base_env, reused=True)
    on_build()
    lock = cache.lock(fingerprint)
    if not cache.try_lock(lock, 0):
        on_status(f"waiting for another run building this {manager_name} environment")
        while not cache.try_lock(lock, LOCK_POLL):
            check_cancel()
    try:
        hit = cache.lookup(fingerprint)
        if hit is not None and not rebuild:  # built by another run while we waited
            cache.touch(fingerprint)
            return _activate(hit, base_env, reused=True)
        started = time.monotonic()
        built = _build(cache, manager_name, spec, fingerprint, run_step, on_status)
    finally:
        lock.release()
    prepared = _activate(built, base_env, reused=False)
    packages = count_packages(Path(prepared.prefix)) if prepared.prefix else None
    return replace(prepared, built_in=time.monotonic() - started, packages=packages)


def _build(
    cache: EnvCache,
    manager_name: str,
    spec: EnvSpec,
    fingerprint: str,
    run_step: StepRunner,
    on_status: StatusCallback,
) -> CachedEnv:
    manager = get_manager(manager_name)
    folder = cache.new_build_dir(fingerprint)
    try:
        for step in manager.build_steps(spec, folder / ENV_FOLDER):
            on_status(step.description)
            _check(manager_name, step, run_step(step))
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    return cache.publish(fingerprint, folder, manager_name, spec.python_version, spec.source_file)


def _check(manager_name: str, step: BuildStep, result: StepResult) -> None:
    if result.returncode != 0:
        raise EnvironmentBuildError(
            f"building the {manager_name} environment failed ({step.description}, exit code "
            f"{result.returncode}): {result.tail.strip() or 'no output'}"
        )


def _activate(env: CachedEnv, base_env: Mapping[str, str], *, reused: bool) -> PreparedEnv:
    manager = get_manager(env.manager)
    target = Path(env.path) / ENV_FOLDER
    return PreparedEnv(
        manager=env.manager,
        variables=manager.activate(target, base_env),
        prefix=str(target),
        fingerprint=env.fingerprint,
        reused=reused,
    )
