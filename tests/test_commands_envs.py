"""`mlproj envs list` and `mlproj envs prune`, run in this process: the cache under MLPROJ_HOME/envs is
filled through `EnvCache` itself (a folder and its metadata, as a build leaves them), nothing is built, and
the runs that use an environment are records in the store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mlproj import process
from mlproj.envs.build import ENV_FOLDER
from mlproj.envs.cache import EnvCache
from mlproj.home import Home
from mlproj.runs.record import RunRecord, iso_utc
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store, new_run_id
from tests.helpers import assert_input_error, invoke

DAY = 86_400.0


@pytest.fixture(autouse=True)
def plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def cached(home: Home, fingerprint: str, manager: str, size: int, days_unused: float) -> Path:
    """An environment in the cache, `size` bytes, last used `days_unused` days ago; its folder."""
    cache = EnvCache(home)
    folder = cache.new_build_dir(fingerprint)
    (folder / ENV_FOLDER).mkdir()
    (folder / ENV_FOLDER / "lib.bin").write_bytes(b"x" * size)
    cache.publish(fingerprint, folder, manager, "3.11.4", f"/projects/{fingerprint}/python_env.yaml")
    used = time.time() - days_unused * DAY
    os.utime(home.envs_dir / f"{fingerprint}.json", (used, used))
    return folder


def using(home: Home, status: RunStatus, env_folder: Path, fingerprint: str, **fields: Any) -> RunRecord:
    """A run of the store that uses the environment in `env_folder`, as its supervisor records it."""
    store = Store.open(home)
    try:
        record = RunRecord(
            run_id=new_run_id(),
            status=status,
            created_at=time.time() - 60,
            env_fingerprint=fingerprint,
            env_path=str(env_folder / ENV_FOLDER),
            **fields,
        )
        return store.insert(record)
    finally:
        store.close()


def me() -> dict[str, Any]:
    return {"supervisor_pid": os.getpid(), "supervisor_identity": process.identity(os.getpid())}


def listed(*args: str) -> Any:
    done = invoke("envs", "list", "--json", *args)
    assert (done.returncode, done.stderr) == (0, ""), done
    return json.loads(done.stdout)


def test_envs_list_of_an_empty_cache(home: Home) -> None:
    done = invoke("envs", "list")
    assert (done.returncode, done.stdout, done.stderr) == (0, "No cached environments.\n", "")
    assert listed() == []
    home.envs_dir.mkdir(parents=True)  # the folder exists, with nothing in it
    assert invoke("envs", "list").stdout == "No cached environments.\n"
    assert listed() == []


def test_envs_prune_with_nothing_to_prune(home: Home) -> None:
    for _ in range(2):  # without a store, then with an empty one
        done = invoke("envs", "prune")
        assert (done.returncode, done.stdout, done.stderr) == (0, "Nothing to prune.\n", "")
        Store.open(home).close()


def test_envs_list_shows_the_most_recently_used_first(home: Home) -> None:
    old = cached(home, "aaaa1111", "virtualenv", 2048, days_unused=40)
    new = cached(home, "bbbb2222", "uv", 10, days_unused=1)
    envs = listed()
    assert [env["fingerprint"] for env in envs] == ["bbbb2222", "aaaa1111"]
    first = envs[0]
    assert {key: first[key] for key in ("manager", "python", "size_bytes", "source", "path")} == {
        "manager": "uv",
        "python": "3.11.4",
        "size_bytes": 10,
        "source": "/projects/bbbb2222/python_env.yaml",
        "path": str(new),
    }
    assert envs[1]["path"] == str(old) and envs[1]["size_bytes"] == 2048
    meta = home.envs_dir / "aaaa1111.json"
    assert envs[1]["last_used"] == iso_utc(meta.stat().st_mtime)
    assert envs[1]["created_at"] == iso_utc(json.loads(meta.read_text())["created_at"])
    lines = invoke("envs", "list").stdout.splitlines()
    assert lines[0].split() == ["FINGERPRINT", "MANAGER", "PYTHON", "SIZE", "LAST", "USED", "SOURCE"]
    assert lines[1].split()[:5] == ["bbbb2222", "uv", "3.11.4", "10", "B"]
    assert lines[2].split()[:5] == ["aaaa1111", "virtualenv", "3.11.4", "2.0", "KB"]
    assert lines[2].endswith("/projects/aaaa1111/python_env.yaml")


def test_envs_prune_older_than_removes_only_those_unused_that_long(home: Home) -> None:
    old = cached(home, "aaaa1111", "virtualenv", 2048, days_unused=40)
    cached(home, "bbbb2222", "uv", 10, days_unused=1)
    done = invoke("envs", "prune", "--older-than", "30")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "removed aaaa1111 (virtualenv, Python 3.11.4, 2.0 KB)\n"
    assert not old.exists() and not (home.envs_dir / "aaaa1111.json").exists()
    assert [env["fingerprint"] for env in listed()] == ["bbbb2222"]
    assert invoke("envs", "prune", "--older-than", "30").stdout == "Nothing to prune.\n"
    # Without --older-than, every environment no run uses.
    assert invoke("envs", "prune").stdout == "removed bbbb2222 (uv, Python 3.11.4, 10 B)\n"
    assert listed() == []


def test_envs_prune_keeps_what_a_supervised_unfinished_run_uses(home: Home) -> None:
    folder = cached(home, "aaaa1111", "uv", 10, days_unused=5)
    run = using(home, RunStatus.RUNNING, folder, "aaaa1111", **me())
    using(home, RunStatus.FINISHED, cached(home, "bbbb2222", "uv", 10, days_unused=5), "bbbb2222")
    done = invoke("envs", "prune")
    assert done.stdout.splitlines() == [
        "removed bbbb2222 (uv, Python 3.11.4, 10 B)",
        "kept aaaa1111: an unfinished run uses it",
    ]
    assert folder.is_dir()
    store = Store.open(home)
    try:
        assert store.get(run.run_id).status is RunStatus.RUNNING
    finally:
        store.close()


def test_envs_prune_reconciles_a_run_whose_supervisor_is_gone_and_removes_its_environment(home: Home) -> None:
    folder = cached(home, "aaaa1111", "uv", 10, days_unused=5)
    run = using(
        home, RunStatus.RUNNING, folder, "aaaa1111", supervisor_pid=999_999_999, supervisor_identity="b:1"
    )
    assert invoke("envs", "prune").stdout == "removed aaaa1111 (uv, Python 3.11.4, 10 B)\n"
    assert not folder.exists()
    store = Store.open(home)
    try:
        lost = store.get(run.run_id)
    finally:
        store.close()
    assert lost.status is RunStatus.FAILED
    assert (lost.error or "").startswith("the supervising process (pid 999999999) is gone")


def test_envs_prune_removes_failed_builds_and_replaced_folders_no_run_uses(home: Home) -> None:
    cache = EnvCache(home)
    replaced = cached(home, "aaaa1111", "uv", 10, days_unused=0)
    kept_for_a_run = cached(home, "bbbb2222", "uv", 10, days_unused=0)
    current = cached(home, "aaaa1111", "uv", 10, days_unused=0)
    cached(home, "bbbb2222", "uv", 10, days_unused=0)
    failed = cache.new_build_dir("cccc3333")  # a build that died half-way: still marked as building
    using(home, RunStatus.RUNNING, kept_for_a_run, "bbbb2222", **me())
    done = invoke("envs", "prune", "--older-than", "1")
    assert done.stdout.splitlines() == ["removed 2 unfinished build folder(s)"]
    assert not replaced.exists() and not failed.exists()
    assert current.is_dir() and kept_for_a_run.is_dir()
    assert sorted(env["fingerprint"] for env in listed()) == ["aaaa1111", "bbbb2222"]


@pytest.mark.parametrize("days", ["-1", "nan", "inf", "old"])
def test_envs_prune_older_than_must_be_zero_or_more_days(home: Home, days: str) -> None:
    folder = cached(home, "aaaa1111", "uv", 10, days_unused=40)
    assert_input_error(
        invoke("envs", "prune", "--older-than", days),
        f"--older-than {days}: expected a number of days, 0 or more",
    )
    assert folder.is_dir()
