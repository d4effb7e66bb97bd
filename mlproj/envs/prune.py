"""`envs prune`: remove cached environments that no unfinished run uses."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from mlproj.envs.cache import EnvCache
from mlproj.home import Home


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


def prune(home: Home, unused_since: float | None) -> PruneResult:
    """Remove environments last used before `unused_since` (all when None), and failed builds."""
    from mlproj.runs.control import reconcile
    from mlproj.runs.store import Store

    cache = EnvCache(home)
    in_use: set[str] = set()
    if home.db_path.exists():
        store = Store.open(home)
        for record in store.unfinished():
            if not reconcile(store, record).is_final and record.env_fingerprint:
                in_use.add(record.env_fingerprint)
        store.close()
    result = PruneResult()
    for env in list(cache.entries()):
        if unused_since is not None and env.last_used >= unused_since:
            continue
        if env.fingerprint in in_use:
            result.kept_in_use.append(env.fingerprint)
            continue
        lock = cache.lock(env.fingerprint)
        if not lock.acquire(timeout=0):  # being built or rebuilt right now
            result.kept_in_use.append(env.fingerprint)
            continue
        try:
            freed = env.size_bytes()
            cache.remove(env.fingerprint)
        finally:
            lock.release()
        result.removed.append(Removed(env.fingerprint, env.manager, env.python, freed))
    orphans = 0
    for folder in cache.orphans():
        fingerprint = folder.name.rsplit("-", 1)[0]
        lock = cache.lock(fingerprint)
        if lock.acquire(timeout=0):
            try:
                if folder in cache.orphans():
                    shutil.rmtree(folder, ignore_errors=True)
                    orphans += 1
            finally:
                lock.release()
    return PruneResult(result.removed, result.kept_in_use, orphans)
