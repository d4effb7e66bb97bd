from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlproj.errors import MlprojError, RunNotFoundError
from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.schema import SCHEMA_VERSION
from mlproj.runs.status import FINAL, TRANSITIONS, RunStatus, predecessors
from mlproj.runs.store import Store, new_run_id
from tests.helpers import mlproj, mlproj_json


def test_schema_version_and_wal(store: Store, home: Home) -> None:
    db = sqlite3.connect(home.db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(store: Store, home: Home) -> None:
    db = sqlite3.connect(home.db_path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    with pytest.raises(MlprojError, match="newer than this mlproj"):
        Store.open(home)


def test_reopen_keeps_runs(store: Store, home: Home) -> None:
    record = store.insert(RunRecord(run_id=new_run_id(), parameters={"a": "1"}, tags={"t": "x"}))
    again = Store.open(home).get(record.run_id)
    assert again == record
    assert again.parameters == {"a": "1"}
    assert again.experiment_id == 0  # the Default experiment


def test_final_statuses_have_no_way_out() -> None:
    for status in FINAL:
        assert TRANSITIONS[status] == frozenset()
        assert status.is_final
    assert RunStatus.RUNNING in predecessors(RunStatus.FINISHED)
    assert RunStatus.FINISHED not in predecessors(RunStatus.RUNNING)


def test_transition_is_compare_and_set(store: Store) -> None:
    run_id = store.insert(RunRecord(run_id=new_run_id(), status=RunStatus.QUEUED)).run_id
    assert store.transition(run_id, RunStatus.RUNNING, pid=123)
    assert store.get(run_id).pid == 123
    assert not store.transition(run_id, RunStatus.QUEUED)
    assert store.transition(run_id, RunStatus.FAILED, error="boom")
    for status in RunStatus:
        assert not store.transition(run_id, status)
    assert store.get(run_id).status is RunStatus.FAILED


def test_only_one_of_many_concurrent_finishers_wins(store: Store, home: Home) -> None:
    run_id = store.insert(RunRecord(run_id=new_run_id(), status=RunStatus.RUNNING)).run_id
    results: list[bool] = []
    targets = [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELED] * 4

    def finish(status: RunStatus) -> None:
        results.append(Store.open(home).transition(run_id, status))

    threads = [threading.Thread(target=finish, args=(s,)) for s in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1


def test_prefix_resolution(store: Store) -> None:
    a = store.insert(RunRecord(run_id="abcd" + "0" * 28)).run_id
    store.insert(RunRecord(run_id="abcd" + "1" * 28))
    assert store.resolve(a).run_id == a
    assert store.resolve("abcd0").run_id == a
    assert store.resolve("ABCD0").run_id == a
    with pytest.raises(RunNotFoundError, match=r"ambiguous: abcd0+, abcd1+"):
        store.resolve("abcd")
    with pytest.raises(RunNotFoundError, match="at least 4"):
        store.resolve("abc")
    with pytest.raises(RunNotFoundError, match="at least 4"):
        store.resolve("zzzz")
    with pytest.raises(RunNotFoundError, match="no run with ID 'ffff'"):
        store.resolve("ffff")


def test_list_filters_and_order(store: Store) -> None:
    for i in range(5):
        store.insert(
            RunRecord(
                run_id=new_run_id(),
                created_at=1000.0 + i,
                experiment="a" if i % 2 else "b",
                status=RunStatus.FAILED if i == 3 else RunStatus.FINISHED,
            )
        )
    times = [r.created_at or 0.0 for r in store.list_runs()]
    assert times == sorted(times, reverse=True)
    assert {r.experiment for r in store.list_runs(experiment="a")} == {"a"}
    assert [r.created_at for r in store.list_runs(status=RunStatus.FAILED)] == [1003.0]
    assert len(store.list_runs(limit=2)) == 2


def test_experiments_get_ids(store: Store) -> None:
    first = store.experiment_id("taxi")
    assert store.experiment_id("taxi") == first
    assert store.experiment_name(first) == "taxi"
    with pytest.raises(RunNotFoundError):
        store.experiment_name(999)


def test_duplicate_run_id_is_refused(store: Store) -> None:
    run_id = new_run_id()
    store.insert(RunRecord(run_id=run_id))
    with pytest.raises(MlprojError, match="already in use"):
        store.insert(RunRecord(run_id=run_id))


# --- a home or a store that cannot be used: one line, naming it, saying what to do --------------------


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlproj: error: ")
    return line


def test_mlproj_home_that_is_a_file(tmp_path: Path) -> None:
    home_file = tmp_path / "home"
    home_file.write_text("not a folder")
    done = mlproj("runs", env={"MLPROJ_HOME": str(home_file)})
    assert done.returncode == 2
    assert (
        one_error_line(done)
        == f"mlproj: error: MLPROJ_HOME {home_file}: not a folder; point MLPROJ_HOME at a folder"
    )


def test_mlproj_home_below_a_file_or_where_nothing_can_be_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for home in (tmp_path / "file" / "home", Path("/proc/mlproj-home")):
        done = mlproj("run", str(tmp_path), "-e", "x.sh", env={"MLPROJ_HOME": str(home)})
        assert done.returncode == 2
        line = one_error_line(done)
        assert line.startswith(f"mlproj: error: MLPROJ_HOME {home}: cannot create the folder (")
        assert line.endswith("point MLPROJ_HOME at a folder you can write")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_is_named_with_what_to_do(tmp_path: Path, home: Home, damage: str) -> None:
    store = Store.open(home)
    for _ in range(200):
        store.insert(RunRecord(run_id=new_run_id(), tags={"pad": "x" * 500}))
    store.close()
    sqlite3.connect(home.db_path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    data = home.db_path.read_bytes()
    home.db_path.write_bytes(b"this is not SQLite" * 100 if damage == "garbage" else data[: len(data) // 2])
    done = mlproj("runs", "--limit", "500")
    assert done.returncode == 1
    line = one_error_line(done)
    assert line.startswith(f"mlproj: error: {home.db_path}: the run store failed (")
    assert line.endswith(
        f"it is damaged; move it aside (mv {home.db_path} {home.db_path}.damaged) to start an empty run store"
    )


def test_a_full_disk_is_one_line_and_the_run_is_not_left_running(tmp_path: Path, home: Home) -> None:
    """A file size limit stands in for a full disk: every write past it fails as ENOSPC would."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "x.sh").write_text("echo hi\n")
    assert mlproj("run", str(project), "-e", "x.sh").returncode == 0
    limit = home.db_path.stat().st_size

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "mlproj", "run", str(project), "-e", "x.sh", "--run-name", "x" * 20000],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        check=False,
    )
    assert done.returncode == 1
    line = one_error_line(done)
    assert line.startswith(f"mlproj: error: {home.db_path}: the run store failed (")
    assert "full" in line
    for record in mlproj_json("runs"):  # whatever was recorded has ended, one way or another
        assert record["status"] in ("Finished", "Failed")


def test_run_ids_are_version_4_uuids() -> None:
    import uuid

    from mlproj.runs.store import new_run_id

    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    for run_id in ids:
        parsed = uuid.UUID(hex=run_id)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, run_id)
