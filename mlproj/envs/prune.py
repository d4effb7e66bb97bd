"""`envs prune`: remove cached environments that no unfinished run uses."""

from __future__ import annotations

import shutil

from mlproj.envs.cache import EnvCache
from mlproj.home import Home
from mlproj.structs import dataclass, field


@dataclass(frozen=True)
class Removed:
    fingerprint: str
    manager: str
    python: str
    freed: int


@dataclass(frozen=True)
class PruneResult:
    removed: list[Removed] = field(default_factory=list)
    kept_in_use: list[str] = field(default_factory=list)
    orphans: int = 0


def prune(home: Home, unused_since: float | None, in_use: set[str]) -> PruneResult:
    """Remove environments last used before `unused_since` (all when None), and failed builds; never
    those `in_use` (fingerprints and paths of the environments of unfinished runs)."""
    cache = EnvCache(home)
    result = PruneResult()
    for env in list(cache.entries()):
        if unused_since is not None and env.last_used >= unused_since:
            continue
        lock = cache.lock(env.fingerprint)
        # Used by an unfinished run, or being built or rebuilt right now.
        if env.fingerprint in in_use or not cache.try_lock(lock, 0):
            result.kept_in_use.append(env.fingerprint)
            continue
        try:
            freed = env.size_bytes()
            cache.remove(env.fingerprint)
        finally:
            lock.release()
        result.removed.append(Removed(env.fingerprint, env.manager, env.python, freed))
    return PruneResult(result.removed, result.kept_in_use, _remove_orphans(cache, in_use))


def _remove_orphans(cache: EnvCache, in_use: set[str]) -> int:
    """Folders no metadata points at: failed or killed builds, and replaced environments no run uses."""
    removed = 0
    for folder in cache.orphans():
        if any(path.startswith(f"{folder}/") for path in in_use):
            continue
        lock = cache.lock(folder.name.rsplit("-", 1)[0])
        if not cache.try_lock(lock, 0):
            continue
        try:
            if folder in cache.orphans():
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        finally:
            lock.release()
    return removed
