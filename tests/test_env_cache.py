"""The environment cache's bookkeeping without building anything: metadata files and build folders made by
hand under MLPROJ_HOME/envs, what `prune` removes and keeps, and how a run's environment manager is chosen
for project folders written in tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlproj.backends.local import LocalBackend
from mlproj.backends.slurm import SlurmBackend
from mlproj.envs import get_manager
from mlproj.envs.cache import BUILDING, CachedEnv, EnvCache
from mlproj.envs.prune import PruneResult, Removed, prune
from mlproj.envs.select import select_environment
from mlproj.errors import InputError, SpecError
from mlproj.home import Home
from mlproj.runs.envspec import EnvSpec
from mlproj.spec import load_project

OLD, RECENT = 1_000_000.0, 2_000_000.0  # last uses, as metadata modification times


def cached_env(
    home: Home,
    fingerprint: str,
    *,
    used: float = OLD,
    manager: str = "virtualenv",
    sizes: tuple[int, ...] = (100, 23),
) -> Path:
    """A published environment as the cache leaves one: `<fingerprint>-a1b2c3/env/` holding files of
    `sizes` bytes, and `<fingerprint>.json` naming it, last used at `used`."""
    folder = home.envs_dir / f"{fingerprint}-a1b2c3"
    (folder / "env" / "bin").mkdir(parents=True)
    for index, size in enumerate(sizes):
        (folder / "env" / "bin" / f"file{index}").write_bytes(b"x" * size)
    meta = home.envs_dir / f"{fingerprint}.json"
    document = {"fingerprint": fingerprint, "manager": manager, "python": "3.11.7", "path": str(folder)}
    meta.write_text(json.dumps({**document, "created_at": used - 10, "source": f"/p/{fingerprint}.yaml"}))
    os.utime(meta, (used, used))
    return folder


def build_folder(home: Home, fingerprint: str, suffix: str, *, building: bool) -> Path:
    """A folder no metadata points at: a build that died (still marked), or an environment replaced."""
    folder = home.envs_dir / f"{fingerprint}-{suffix}"
    (folder / "env").mkdir(parents=True)
    (folder / "env" / "half").write_bytes(b"x" * 7)
    if building:
        (folder / BUILDING).touch()
    return folder


# --- EnvCache --------------------------------------------------------------------------------------------


def test_an_empty_home_has_no_environments(home: Home) -> None:
    cache = EnvCache(home)
    assert (list(cache.entries()), cache.orphans(), cache.lookup("f00")) == ([], [], None)
    assert prune(home, None, set()) == PruneResult([], [], 0)
    assert not home.envs_dir.exists()


def test_entries_and_lookup_read_the_metadata(home: Home) -> None:
    second = cached_env(home, "bbb", used=RECENT, manager="uv", sizes=(5,))
    first = cached_env(home, "aaa")
    cache = EnvCache(home)
    assert [env.fingerprint for env in cache.entries()] == ["aaa", "bbb"]
    expected = CachedEnv("bbb", "uv", "3.11.7", str(second), RECENT - 10, "/p/bbb.yaml", last_used=RECENT)
    assert cache.lookup("bbb") == expected
    found = cache.lookup("aaa")
    assert found is not None
    assert (found.path, found.last_used, found.size_bytes()) == (str(first), OLD, 123)


def test_lookup_ignores_what_is_not_a_complete_environment(home: Home) -> None:
    folder = cached_env(home, "gone")
    folder.rename(folder.with_name("elsewhere"))  # its folder is not there any more
    (home.envs_dir / "broken.json").write_text('{"fingerprint": ')
    (home.envs_dir / ".temp.json.123").write_text("{}")  # a publication under way
    cache = EnvCache(home)
    assert [cache.lookup(name) for name in ("gone", "broken", "absent")] == [None, None, None]
    assert list(cache.entries()) == []


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",  # not a mapping
        '{"fingerprint": "x", "manager": "uv", "python": 3.11, "path": "/p", "created_at": 1}',
        '{"fingerprint": "x", "manager": "uv", "python": "3.11", "path": "/p", "created_at": "yesterday"}',
    ],
)
def test_a_stray_json_file_in_the_cache_is_not_an_environment(home: Home, text: str) -> None:
    """A `.json` someone left in MLPROJ_HOME/envs (or one written by another version) is skipped, as a
    malformed one is; `envs list` and `envs prune` do not fail on it."""
    kept = cached_env(home, "kept")
    (home.envs_dir / "notes.json").write_text(text)
    cache = EnvCache(home)
    assert cache.lookup("notes") is None
    assert [env.path for env in cache.entries() if env.fingerprint == "kept"] == [str(kept)]


def test_metadata_with_keys_it_does_not_know_is_still_an_environment(home: Home) -> None:
    """A key written by a later mlproj is ignored, not a reason to lose the environment."""
    folder = cached_env(home, "later")
    meta = home.envs_dir / "later.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "added_later": [1]}))
    env = EnvCache(home).lookup("later")
    assert env is not None
    assert (env.fingerprint, env.path) == ("later", str(folder))


def test_touch_records_a_use_and_remove_forgets_the_environment(home: Home) -> None:
    removed, kept = cached_env(home, "aaa"), cached_env(home, "bbb")
    cache = EnvCache(home)
    cache.touch("bbb")
    cache.touch("never-built")  # nothing to touch: no error, nothing made
    assert [env.last_used > OLD for env in cache.entries()] == [False, True]
    cache.remove("aaa")
    assert not removed.exists()
    assert not (home.envs_dir / "aaa.json").exists()
    assert [env.path for env in cache.entries()] == [str(kept)]
    cache.remove("aaa")  # again: nothing left to remove
    cache.remove("never-built")
    assert sorted(p.name for p in home.envs_dir.iterdir()) == [kept.name, "bbb.json"]


def test_a_new_build_folder_is_marked_and_clears_dead_builds_of_its_fingerprint(home: Home) -> None:
    dead = build_folder(home, "aaa", "000001", building=True)
    replaced = build_folder(home, "aaa", "000002", building=False)
    other = build_folder(home, "bbb", "000003", building=True)
    fresh = EnvCache(home).new_build_dir("aaa")
    assert (fresh.parent, fresh.name[:4], len(fresh.name)) == (home.envs_dir, "aaa-", 10)
    assert [p.name for p in fresh.iterdir()] == [BUILDING]
    assert not dead.exists()
    assert replaced.exists()  # finished: left for prune, which knows whether a run uses it
    assert (other / BUILDING).exists()  # another fingerprint's build is not this one's business


def test_publish_makes_a_build_the_environment_and_orphans_the_one_it_replaces(home: Home) -> None:
    cache = EnvCache(home)
    old = cached_env(home, "aaa")
    dead = build_folder(home, "bbb", "dead00", building=True)
    folder = cache.new_build_dir("aaa")
    published = cache.publish("aaa", folder, "uv", "3.12.1", None)
    assert not (folder / BUILDING).exists()
    assert cache.lookup("aaa") == published
    assert (published.path, published.manager, published.python, published.source) == (
        str(folder),
        "uv",
        "3.12.1",
        None,
    )
    meta = json.loads((home.envs_dir / "aaa.json").read_text())
    assert sorted(meta) == ["created_at", "fingerprint", "manager", "path", "python", "source"]
    assert sorted(cache.orphans()) == [old, dead]  # the lock file aaa.lock is no folder
    assert [p.name for p in home.envs_dir.iterdir() if p.name.startswith(".")] == []


# --- prune -----------------------------------------------------------------------------------------------


def test_prune_everything_no_run_uses(home: Home) -> None:
    cached_env(home, "aaa", manager="uv", sizes=(1000,))
    cached_env(home, "bbb", used=RECENT, sizes=(1, 2, 3))
    removed = [Removed("aaa", "uv", "3.11.7", 1000), Removed("bbb", "virtualenv", "3.11.7", 6)]
    assert prune(home, None, set()) == PruneResult(removed, [], 0)
    assert sorted(p.name for p in home.envs_dir.iterdir()) == ["aaa.lock", "bbb.lock"]


def test_prune_older_than_leaves_recent_environments_alone(home: Home) -> None:
    cached_env(home, "aaa")
    recent = cached_env(home, "bbb", used=RECENT)
    result = prune(home, (OLD + RECENT) / 2, set())
    assert result == PruneResult([Removed("aaa", "virtualenv", "3.11.7", 123)], [], 0)  # bbb: no candidate
    assert recent.is_dir()
    assert [env.fingerprint for env in EnvCache(home).entries()] == ["bbb"]
    assert prune(home, RECENT, set()) == PruneResult([], [], 0)  # used at RECENT is not before it


def test_prune_keeps_environments_in_use_and_being_built(home: Home) -> None:
    in_use = cached_env(home, "aaa")
    cached_env(home, "bbb")
    cached_env(home, "ccc")
    rebuilding = EnvCache(home).lock("ccc")
    assert rebuilding.acquire(0)
    try:
        result = prune(home, None, {"aaa", str(in_use / "env")})
    finally:
        rebuilding.release()
    assert ([env.fingerprint for env in result.removed], result.kept_in_use) == (["bbb"], ["aaa", "ccc"])
    assert [env.fingerprint for env in EnvCache(home).entries()] == ["aaa", "ccc"]
    assert [env.fingerprint for env in prune(home, None, {"aaa"}).removed] == ["ccc"]


def test_prune_removes_orphaned_folders_unless_a_run_is_inside(home: Home) -> None:
    cached_env(home, "aaa", used=RECENT)
    dead = build_folder(home, "aaa", "dead00", building=True)
    replaced = build_folder(home, "bbb", "old000", building=False)
    used = build_folder(home, "ccc", "old001", building=False)
    result = prune(home, OLD, {str(used / "env"), "ccc", "bbb"})  # fingerprints name published ones only
    assert result == PruneResult([], [], 2)
    assert (dead.exists(), replaced.exists(), used.exists()) == (False, False, True)
    assert EnvCache(home).lookup("aaa") is not None


def test_prune_leaves_the_orphans_of_a_build_under_way(home: Home) -> None:
    building = build_folder(home, "aaa", "live00", building=True)
    lock = EnvCache(home).lock("aaa")
    assert lock.acquire(0)
    try:
        assert prune(home, None, set()).orphans == 0
        assert building.exists()
    finally:
        lock.release()
    assert prune(home, None, set()).orphans == 1
    assert not building.exists()


# --- choosing the environment ----------------------------------------------------------------------------

PYTHON_ENV = "dependencies:\n  - mlprojtestpkg==1.0\n"
CONDA = "channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip:\n      - mlprojtestpkg==1.0\n"
MANAGERS = "local, virtualenv, uv, conda, docker"


@pytest.fixture(autouse=True)
def conda_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No MLPROJ_ENV_MANAGER; an executable that stands for conda (found, never run: nothing is built)."""
    monkeypatch.delenv("MLPROJ_ENV_MANAGER", raising=False)
    exe = tmp_path / "bin" / "conda"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 1\n")
    exe.chmod(0o755)
    monkeypatch.setenv("MLPROJ_CONDA_EXE", str(exe))
    return exe


def project(folder: Path, files: dict[str, str], mlproject: str = "name: p\n") -> Path:
    folder.mkdir(parents=True)
    (folder / "MLproject").write_text(mlproject + "entry_points:\n  main:\n    command: echo hi\n")
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize(
    ("files", "mlproject", "manager", "kind", "source"),
    [
        ({}, "", "local", None, None),
        ({"python_env.yaml": PYTHON_ENV}, "", "virtualenv", "python", "python_env.yaml"),
        ({"conda.yaml": CONDA}, "", "conda", "conda", "conda.yaml"),
        ({"python_env.yaml": PYTHON_ENV, "conda.yaml": CONDA}, "", "virtualenv", "python", "python_env.yaml"),
        ({"envs/e.yaml": PYTHON_ENV}, "python_env: envs/e.yaml\n", "virtualenv", "python", "envs/e.yaml"),
        ({"envs/c.yaml": CONDA}, "conda_env: envs/c.yaml\n", "conda", "conda", "envs/c.yaml"),
    ],
)
def test_the_environment_file_chooses_the_manager(
    tmp_path: Path,
    home: Home,
    files: dict[str, str],
    mlproject: str,
    manager: str,
    kind: str | None,
    source: str | None,
) -> None:
    folder = project(tmp_path / "p", files, mlproject)
    name, spec = select_environment(None, load_project(folder), home)
    assert (name, spec.kind if spec else None) == (manager, kind)
    assert (Path(spec.source_file).resolve() if spec and spec.source_file else None) == (
        (folder / source).resolve() if source else None
    )
    if spec is not None:
        assert spec.dependencies == ("mlprojtestpkg==1.0",)
    assert not home.envs_dir.exists()  # chosen and checked, nothing built


def test_no_project_runs_local_or_gets_an_empty_environment(tmp_path: Path, home: Home) -> None:
    assert select_environment(None, None, home) == ("local", None)
    empty = EnvSpec(kind="none", project_dir=str(tmp_path))
    assert select_environment("virtualenv", None, home, folder=tmp_path) == ("virtualenv", empty)


def test_a_missing_environment_file_named_by_the_mlproject_file(tmp_path: Path, home: Home) -> None:
    folder = project(tmp_path / "p", {}, "python_env: envs/missing.yaml\n")
    with pytest.raises(SpecError, match=r"MLproject: python_env: no such file: .*envs/missing\.yaml$"):
        select_environment(None, load_project(folder), home)


@pytest.mark.parametrize(
    ("given", "files", "kind"),
    [
        ("uv", {"python_env.yaml": PYTHON_ENV}, "python"),
        ("local", {"python_env.yaml": PYTHON_ENV}, None),
        ("local", {"conda.yaml": CONDA}, None),
        ("uv", {"conda.yaml": CONDA}, "conda"),
        ("virtualenv", {}, "none"),
    ],
)
def test_env_manager_overrides_the_environment_file(
    tmp_path: Path, home: Home, given: str, files: dict[str, str], kind: str | None
) -> None:
    name, spec = select_environment(given, load_project(project(tmp_path / "p", files)), home)
    assert (name, spec.kind if spec is not None else None) == (given, kind)


def test_the_variable_chooses_the_manager_and_the_flag_wins(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_project(project(tmp_path / "p", {"python_env.yaml": PYTHON_ENV}))
    monkeypatch.setenv("MLPROJ_ENV_MANAGER", "uv")
    assert select_environment(None, loaded, home)[0] == "uv"
    assert select_environment("local", loaded, home) == ("local", None)
    monkeypatch.setenv("MLPROJ_ENV_MANAGER", "")
    assert select_environment(None, loaded, home)[0] == "virtualenv"


def test_unknown_managers_are_input_errors(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_project(project(tmp_path / "p", {"python_env.yaml": PYTHON_ENV}))
    with pytest.raises(InputError) as caught:
        select_environment("pipenv", loaded, home)
    assert str(caught.value) == f"unknown --env-manager 'pipenv' (expected one of: {MANAGERS})"
    monkeypatch.setenv("MLPROJ_ENV_MANAGER", "pipenv")
    with pytest.raises(InputError) as caught:
        select_environment(None, loaded, home)
    assert str(caught.value) == f"MLPROJ_ENV_MANAGER=pipenv: expected one of: {MANAGERS}"
    assert select_environment("uv", loaded, home)[0] == "uv"  # the flag is read first


def test_conda_on_a_python_env_project_is_an_input_error(tmp_path: Path, home: Home) -> None:
    loaded = load_project(project(tmp_path / "p", {"python_env.yaml": PYTHON_ENV}))
    with pytest.raises(InputError) as caught:
        select_environment("conda", loaded, home)
    assert str(caught.value) == (
        "--env-manager conda needs a conda.yaml (this project declares a python_env.yaml); "
        "use --env-manager virtualenv or uv"
    )


def test_without_conda_a_conda_project_is_an_input_error_unless_its_environment_is_cached(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("MLPROJ_CONDA_EXE", "CONDA_EXE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "p"))  # a folder without conda, mamba or micromamba
    loaded = load_project(project(tmp_path / "p", {"conda.yaml": CONDA}))
    with pytest.raises(InputError, match=r"^conda is not installed: this project needs conda"):
        select_environment(None, loaded, home)
    spec = get_manager("conda").load_spec(loaded, {})
    cached_env(home, get_manager("conda").fingerprint(spec), manager="conda")
    assert select_environment(None, loaded, home) == ("conda", spec)  # built already: no conda needed
    with pytest.raises(InputError, match=r"^conda is not installed"):
        select_environment(None, loaded, home, rebuild=True)
    assert select_environment(None, loaded, home, rebuild=True, built_here=False) == ("conda", spec)


def test_the_backend_refuses_a_docker_project_before_anything_is_checked(tmp_path: Path, home: Home) -> None:
    loaded = load_project(project(tmp_path / "p", {}, "docker_env:\n  image: python:3.11-slim\n"))
    for given in (None, "docker", "local"):  # a docker_env runs in its container whatever is asked (MLflow)
        with pytest.raises(InputError, match=r"^backend slurm: the docker environment runs in a container"):
            select_environment(given, loaded, home, accept=SlurmBackend().accept)
    assert select_environment("local", loaded, home, accept=LocalBackend().accept, check_tools=False) == (
        "docker",
        get_manager("docker").load_spec(loaded, {}),
    )
