from __future__ import annotations

import sqlite3
import threading

import pytest

from mlproj.errors import MlprojError, RunNotFoundError
from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.status import FINAL, TRANSITIONS, RunStatus, predecessors
from mlproj.runs.store import SCHEMA_VERSION, Store, new_run_id


@pytest.fixture
def store(home: Home) -> Store:
    return Store.open(home)


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
    times = [r.created_at for r in store.list_runs()]
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
