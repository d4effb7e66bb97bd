"""The environment cache under `MLPROJ_HOME/envs/`.

Each environment is built in a folder of its own, `<fingerprint>-<token>/`, and becomes visible only
when its metadata `<fingerprint>.json` is written (atomically, after the build succeeded). A build
that failed or was killed half-way leaves a folder no metadata points at: it is never used, and it is
removed by the next build of that fingerprint or by `prune`. `<fingerprint>.lock` makes concurrent
runs that need the same environment build it once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mlproj.home import Home
from mlproj.locks import FileLock
from mlproj.structs import asdict, dataclass

BUILDING = ".building"  # present in a build folder until its environment is published


@dataclass(frozen=True)
class CachedEnv:
    fingerprint: str
    manager: str
    python: str
    path: str
    created_at: float
    source: str | None = None
    last_used: float = 0.0

    def size_bytes(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                try:
                    total += (Path(root) / name).lstat().st_size
                except OSError:
                    continue
        return total


class EnvCache:
    def __init__(self, home: Home) -> None:
        self.root = home.envs_dir

    def _meta(self, fingerprint: str) -> Path:
        return self.root / f"{fingerprint}.json"

    def lookup(self, fingerprint: str) -> CachedEnv | None:
        """The complete environment with this fingerprint, or None."""
        meta = self._meta(fingerprint)
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            last_used = meta.stat().st_mtime
        except (OSError, ValueError):
            return None
        env = _from_metadata(data, last_used)
        return env if env is not None and Path(env.path).is_dir() else None

    def touch(self, fingerprint: str) -> None:
        """Record a use (the metadata file's modification time is the last use)."""
        try:
            os.utime(self._meta(fingerprint))
        except OSError:
            return

    def lock(self, fingerprint: str) -> FileLock:
        return FileLock(self.root / f"{fingerprint}.lock")

    @staticmethod
    def try_lock(lock: FileLock, timeout: float) -> bool:
        """Take `lock` within `timeout` seconds; False (not an exception) when another process holds it."""
        return lock.acquire(timeout)

    def new_build_dir(self, fingerprint: str) -> Path:
        """A fresh folder to build in, marked as building until published (call with the lock held).

        Folders still marked come from builds that died (a live build would hold the lock): removed.
        Finished environments that were replaced are left for `prune`, which knows whether a run
        still uses them."""
        for stale in self.root.glob(f"{fingerprint}-*"):
            if (stale / BUILDING).exists():
                import shutil

                shutil.rmtree(stale, ignore_errors=True)
        import secrets

        path = self.root / f"{fingerprint}-{secrets.token_hex(3)}"
        path.mkdir(parents=True)
        (path / BUILDING).touch()
        return path

    def publish(
        self, fingerprint: str, path: Path, manager: str, python: str, source: str | None
    ) -> CachedEnv:
        """Make a completed build the environment for `fingerprint` (replacing an older one)."""
        env = CachedEnv(
            fingerprint=fingerprint,
            manager=manager,
            python=python,
            path=str(path),
            created_at=time.time(),
            source=source,
        )
        data = asdict(env)
        data.pop("last_used")
        (path / BUILDING).unlink(missing_ok=True)
        temp = self.root / f".{fingerprint}.json.{os.getpid()}"
        temp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        temp.replace(self._meta(fingerprint))
        return self.lookup(fingerprint) or env

    def entries(self) -> Iterator[CachedEnv]:
        if not self.root.is_dir():
            return
        for meta in sorted(self.root.glob("*.json")):
            env = self.lookup(meta.stem)
            if env is not None:
                yield env

    def remove(self, fingerprint: str) -> None:
        """Forget the environment and delete its folder (older replaced folders are orphans)."""
        env = self.lookup(fingerprint)
        self._meta(fingerprint).unlink(missing_ok=True)
        if env is not None:
            import shutil

            shutil.rmtree(env.path, ignore_errors=True)

    def orphans(self) -> list[Path]:
        """Build folders no metadata points at (failed or killed builds)."""
        if not self.root.is_dir():
            return []
        published = {env.path for env in self.entries()}
        return [p for p in self.root.iterdir() if p.is_dir() and str(p) not in published]


def _from_metadata(data: object, last_used: float) -> CachedEnv | None:
    """The environment a metadata file describes, or None for a file that is not one (a stray `.json`
    someone left in the folder, a file from another version)."""
    if not isinstance(data, dict):
        return None
    texts = ("fingerprint", "manager", "python", "path")
    if not all(isinstance(data.get(key), str) for key in texts):
        return None
    created = data.get("created_at")
    source = data.get("source")
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        return None
    return CachedEnv(
        fingerprint=data["fingerprint"],
        manager=data["manager"],
        python=data["python"],
        path=data["path"],
        created_at=float(created),
        source=source if isinstance(source, str) else None,
        last_used=last_used,
    )
