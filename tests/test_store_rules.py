"""The run store's rules in-process: every status transition, records to rows and back (any text), the JSON
record's fields, updates of JSON columns, listing, and run ID prefixes."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlproj.runs.record
from mlproj.errors import MlprojError, RunNotFoundError
from mlproj.home import Home
from mlproj.runs.record import RunRecord, iso_utc
from mlproj.runs.request import PipelineRequest, RunRequest
from mlproj.runs.status import FINAL, TRANSITIONS, RunKind, RunStatus, predecessors
from mlproj.runs.store import MIN_PREFIX, Store, is_run_id, new_run_id
from tests.fakes import record_run

S = RunStatus


# --- statuses --------------------------------------------------------------------------------------------


def test_parse_takes_any_case_and_surrounding_space() -> None:
    for status in RunStatus:
        for text in (status.value, status.value.lower(), status.value.upper(), f"  {status.value}\n"):
            assert RunStatus.parse(text) is status


@pytest.mark.parametrize("text", ["", "done", "Cancelled", "not started", "Queued!"])
def test_parse_refuses_other_names_and_lists_the_known_ones(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        RunStatus.parse(text)
    assert str(caught.value) == (
        f"unknown status {text!r} (expected one of: NotStarted, Queued, Preparing, Running, "
        "CancelRequested, Finished, Failed, Canceled, Skipped)"
    )


def test_statuses_and_kinds_print_as_their_values() -> None:
    assert [str(status) for status in RunStatus] == [status.value for status in RunStatus]
    assert [str(kind) for kind in RunKind] == ["project", "pipeline", "step"]
    assert {status for status in RunStatus if status.is_final} == FINAL
    assert {S.FINISHED, S.FAILED, S.CANCELED, S.SKIPPED} == FINAL


def test_predecessors_of_every_status() -> None:
    before_start = {S.NOT_STARTED, S.QUEUED, S.PREPARING}
    assert {target: predecessors(target) for target in RunStatus} == {
        S.NOT_STARTED: frozenset(),
        S.QUEUED: {S.NOT_STARTED, S.PREPARING},
        S.PREPARING: {S.NOT_STARTED, S.QUEUED},
        S.RUNNING: before_start,
        S.CANCEL_REQUESTED: before_start | {S.RUNNING},
        S.FINISHED: before_start | {S.RUNNING, S.CANCEL_REQUESTED},
        S.FAILED: before_start | {S.RUNNING, S.CANCEL_REQUESTED},
        S.CANCELED: before_start | {S.RUNNING, S.CANCEL_REQUESTED},
        S.SKIPPED: {S.NOT_STARTED, S.QUEUED},
    }
    assert set(TRANSITIONS) == set(RunStatus)


@pytest.mark.parametrize("source", list(RunStatus))
def test_a_transition_succeeds_exactly_when_the_table_allows_it(store: Store, source: RunStatus) -> None:
    moved: dict[RunStatus, bool] = {}
    for target in RunStatus:
        run_id = store.insert(RunRecord(run_id=new_run_id(), status=source)).run_id
        moved[target] = store.transition(run_id, target, error="why", exit_code=3)
        after = store.get(run_id)
        if moved[target]:
            assert (after.status, after.error, after.exit_code) == (target, "why", 3)
        else:  # nothing changes, not even the other columns
            assert (after.status, after.error, after.exit_code) == (source, None, None)
    assert moved == {target: target in TRANSITIONS[source] for target in RunStatus}


@pytest.mark.parametrize("final", sorted(FINAL))
def test_a_final_status_never_changes(store: Store, final: RunStatus) -> None:
    run_id = store.insert(RunRecord(run_id=new_run_id(), status=final, exit_code=0)).run_id
    for target in [*RunStatus, *RunStatus]:
        assert not store.transition(run_id, target, exit_code=9)
    assert (store.get(run_id).status, store.get(run_id).exit_code) == (final, 0)


def test_a_transition_of_an_unknown_run_changes_nothing(store: Store) -> None:
    assert not store.transition(new_run_id(), RunStatus.RUNNING)
    assert store.list_runs(top_level=False) == []


# --- records and rows ------------------------------------------------------------------------------------

# Any text: control characters, NUL, other scripts, emoji, line separators (surrogates aside: not UTF-8).
ANY_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.sampled_from(["", "\x00", "\n\r\t\x1b[31m", "é✓🚀", "\u2028\u2029", "'; DROP TABLE runs; --", "١٢"]),
)
TEXT_MAPS = st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=5)
TEXT_OR_NONE = st.none() | ANY_TEXT
REQUESTS = st.builds(RunRequest, command=ANY_TEXT, cwd=ANY_TEXT, env=TEXT_MAPS, backend_config=TEXT_MAPS)
records = st.builds(
    RunRecord,
    run_id=st.builds(new_run_id),
    kind=st.sampled_from([RunKind.PROJECT, RunKind.STEP]),
    status=st.sampled_from(RunStatus),
    **dict.fromkeys(["error", "run_name", "command", "uri", "reason"], TEXT_OR_NONE),
    **dict.fromkeys(["parameters", "tags", "outputs"], TEXT_MAPS),
    experiment=ANY_TEXT,
    reuse_parts=st.none() | TEXT_MAPS,
    created_at=st.floats(0, 4e9),
    env_reused=st.none() | st.booleans(),
    exit_code=st.none() | st.integers(-255, 255),
    request=st.none() | REQUESTS,
)


@settings(max_examples=50, deadline=None)
@given(records)
def test_a_record_survives_its_row(record: RunRecord) -> None:
    row = record.to_row()
    assert set(row) == set(mlproj.runs.record.COLUMNS)
    for name in ("parameters", "tags", "outputs"):
        assert json.loads(row[name]) == dict(getattr(record, name))
    assert RunRecord.from_row(row) == record


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records)
def test_a_record_survives_the_store(store: Store, record: RunRecord) -> None:
    inserted = store.insert(record)
    assert inserted.experiment_id == store.experiment_id(record.experiment)
    assert store.get(record.run_id) == inserted
    assert store.resolve(record.run_id[:12]) == inserted


def test_an_empty_row_reads_back_as_empty_mappings() -> None:
    row = RunRecord(run_id="a" * 32).to_row()
    row.update(parameters=None, tags="", outputs=None, request=None, reuse_parts=None)
    record = RunRecord.from_row(row)
    assert (record.parameters, record.tags, record.outputs) == ({}, {}, {})
    assert (record.request, record.reuse_parts) == (None, None)


def test_a_pipeline_row_reads_back_its_pipeline_request() -> None:
    request = PipelineRequest(file="p.yaml", snapshot="/runs/x/p.yaml", uri="p.yaml", inputs={"n": "3"})
    record = RunRecord(run_id="b" * 32, kind=RunKind.PIPELINE, request=request)
    back = RunRecord.from_row(record.to_row())
    assert isinstance(back.request, PipelineRequest)
    assert back == record


# --- the JSON record ------------------------------------------------------------------------------------

RECORD_KEYS = [
    "run_id", "kind", "status", "exit_code", "error", "experiment", "experiment_id", "run_name", "uri",
    "version", "commit", "entry_point", "parameters", "env_manager", "backend", "created_at", "started_at",
    "ended_at", "duration_s", "log_path", "parent_run_id", "step", "reused_from", "tags", "command",
    "work_dir", "run_dir", "timeout", "pid", "env_path", "env_fingerprint", "env_reused", "outputs",
    "attempt", "reason", "backend_config", "job_id", "backend_state", "tracking_uri", "mlflow_run_id",
    "mlflow_experiment_id", "tracking_pending", "published_pipeline_id", "endpoint", "schedule",
]  # fmt: skip


def test_to_dict_of_a_complete_record(store: Store, tmp_path: Path) -> None:
    record = record_run(store, tmp_path, "echo hi", created_at=1_700_000_000.25, parameters={"lr": "0.1"})
    assert store.transition(record.run_id, S.RUNNING, started_at=1_700_000_001.0, pid=4321, supervisor_pid=9)
    assert store.transition(record.run_id, S.FINISHED, ended_at=1_700_000_003.5004, exit_code=0)
    document = store.get(record.run_id).to_dict()
    assert list(document) == RECORD_KEYS  # not the supervisor, nor the request (backend_config aside)
    assert document["run_id"] == record.run_id
    assert (document["kind"], document["status"], document["exit_code"]) == ("project", "Finished", 0)
    assert (document["experiment"], document["experiment_id"], document["backend"]) == ("Default", 0, "fake")
    times = [document[key] for key in ("created_at", "started_at", "ended_at", "duration_s")]
    assert times == ["2023-11-14T22:13:20.250Z", "2023-11-14T22:13:21.000Z", "2023-11-14T22:13:23.500Z", 2.5]
    assert (document["parameters"], document["tags"], document["outputs"], document["backend_config"]) == (
        {"lr": "0.1"}, {}, {}, {}
    )  # fmt: skip
    assert (document["pid"], document["log_path"]) == (
        4321,
        f"{store.home.run_dir(record.run_id)}/output.log",
    )
    assert json.loads(json.dumps(document)) == document  # plain JSON all through


def test_to_dict_takes_the_backend_config_from_the_request() -> None:
    request = RunRequest(command="x", cwd="/", backend="slurm", backend_config={"partition": "debug"})
    assert RunRecord(run_id="c" * 32, request=request).to_dict()["backend_config"] == {"partition": "debug"}
    pipeline = RunRecord("c" * 32, RunKind.PIPELINE, request=PipelineRequest(file="p", snapshot="s", uri="p"))
    assert (
        pipeline.to_dict()["backend_config"] == RunRecord(run_id="c" * 32).to_dict()["backend_config"] == {}
    )


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        (None, None),
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1.0005, "1970-01-01T00:00:01.000Z"),  # 1.0005 is 1.000499999… as a double
        (59.9999996, "1970-01-01T00:01:00.000Z"),  # microseconds round up into the next second
        (1_764_412_200.123, "2025-11-29T10:30:00.123Z"),
    ],
)
def test_iso_utc(timestamp: float | None, text: str | None) -> None:
    assert iso_utc(timestamp) == text


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 4e9))
def test_iso_utc_writes_what_datetime_writes(timestamp: float) -> None:
    expected = datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")
    assert iso_utc(timestamp) == expected.replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("status", "started", "ended", "duration"),
    [
        (S.QUEUED, None, None, None),
        (S.FINISHED, None, 10.0, None),
        (S.FINISHED, 10.0, 12.34567, 2.346),
        (S.FAILED, 10.0, 9.0, 0.0),  # a clock stepped back: never negative
        (S.CANCELED, 10.0, None, None),  # ended without an end time: unknown
        (S.RUNNING, 10.0, None, 90.0),  # still running: until now
        (S.CANCEL_REQUESTED, 10.0, None, 90.0),
    ],
)
def test_duration(
    monkeypatch: pytest.MonkeyPatch,
    status: RunStatus,
    started: float | None,
    ended: float | None,
    duration: float | None,
) -> None:
    monkeypatch.setattr(mlproj.runs.record, "time", SimpleNamespace(time=lambda: 100.0))
    record = RunRecord(run_id="d" * 32, status=status, started_at=started, ended_at=ended)
    assert record.duration_s == duration


def test_display_name_is_the_run_name_else_the_step_else_the_id_prefix() -> None:
    run_id = "0123456789abcdef" * 2
    assert RunRecord(run_id=run_id, run_name="nightly", step="train").display_name == "nightly"
    assert RunRecord(run_id=run_id, step="train").display_name == "train"
    assert RunRecord(run_id=run_id).display_name == "01234567"
    assert RunRecord(run_id=run_id, run_name="").display_name == "01234567"


# --- Store.update ----------------------------------------------------------------------------------------


def test_update_writes_json_columns_as_json(store: Store, tmp_path: Path, home: Home) -> None:
    run_id = record_run(store, tmp_path, "echo hi").run_id
    request = RunRequest(command="echo hé", cwd="/w", env={"A": "1"}, backend_config={"num_cpus": 2})
    store.update(
        run_id,
        parameters={"p": "é\x00"},
        tags={"t": "1"},
        outputs={"m": "/o/m.pkl"},
        reuse_parts={"c": "a"},
        request=request,
        reason="inputs changed",
    )
    record = store.get(run_id)
    assert (record.parameters, record.tags, record.outputs) == ({"p": "é\x00"}, {"t": "1"}, {"m": "/o/m.pkl"})
    assert record.reuse_parts == {"c": "a"}
    assert (record.request, record.reason, record.status) == (request, "inputs changed", RunStatus.QUEUED)
    db = sqlite3.connect(home.db_path)
    raw = db.execute("SELECT outputs, reuse_parts, request FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    assert [json.loads(text) for text in raw] == [{"m": "/o/m.pkl"}, {"c": "a"}, request.to_dict()]
    store.update(run_id, reuse_parts=None, request=None, outputs={})
    record = store.get(run_id)
    assert (record.reuse_parts, record.request, record.outputs) == (None, None, {})


def test_update_with_nothing_changes_nothing(store: Store, tmp_path: Path) -> None:
    record = record_run(store, tmp_path, "echo hi")
    store.update(record.run_id)
    assert store.get(record.run_id) == record


def test_a_run_id_is_recorded_once(store: Store) -> None:
    record = store.insert(RunRecord(run_id=new_run_id()))
    with pytest.raises(MlprojError, match=f"^run ID {record.run_id} is already in use$"):
        store.insert(RunRecord(run_id=record.run_id))


# --- Store.list_runs -------------------------------------------------------------------------------------


@pytest.fixture
def listed(store: Store) -> dict[str, RunRecord]:
    """Runs in two experiments, created one second apart (`a` first), a pipeline with two steps."""
    made: dict[str, RunRecord] = {}
    plan = [
        ("a", "exp1", S.FINISHED, None),
        ("b", "exp2", S.FAILED, None),
        ("pipe", "exp1", S.RUNNING, None),
        ("step1", "exp1", S.FINISHED, "pipe"),
        ("step2", "exp1", S.RUNNING, "pipe"),
        ("c", "exp1", S.FAILED, None),
    ]
    for created, (name, experiment, status, parent) in enumerate(plan, start=1):
        parent_id = made[parent].run_id if parent else None
        record = RunRecord(
            new_run_id(), status=status, experiment=experiment, run_name=name, parent_run_id=parent_id
        )
        made[name] = store.insert(record.evolve(created_at=float(created)))
    return made


def names(runs: list[RunRecord]) -> list[str | None]:
    return [run.run_name for run in runs]


def test_list_runs_newest_first_top_level_by_default(store: Store, listed: dict[str, RunRecord]) -> None:
    assert names(store.list_runs()) == ["c", "pipe", "b", "a"]
    assert names(store.list_runs(top_level=False)) == ["c", "step2", "step1", "pipe", "b", "a"]


def test_list_runs_filters(store: Store, listed: dict[str, RunRecord]) -> None:
    assert names(store.list_runs(experiment="exp1")) == ["c", "pipe", "a"]
    assert names(store.list_runs(experiment="exp2")) == ["b"]
    assert names(store.list_runs(experiment="nope")) == []
    assert names(store.list_runs(status=S.FAILED)) == ["c", "b"]
    assert names(store.list_runs(status=S.RUNNING, top_level=False)) == ["step2", "pipe"]
    assert names(store.list_runs(experiment="exp1", status=S.FINISHED)) == ["a"]
    assert names(store.list_runs(experiment="exp1", status=S.FINISHED, top_level=False)) == ["step1", "a"]
    assert names(store.list_runs(parent_run_id=listed["pipe"].run_id)) == ["step2", "step1"]
    assert names(store.list_runs(parent_run_id=listed["pipe"].run_id, status=S.FINISHED)) == ["step1"]
    assert names(store.steps_of(listed["pipe"].run_id)) == ["step1", "step2"]  # oldest first


def test_list_runs_limit(store: Store, listed: dict[str, RunRecord]) -> None:
    assert names(store.list_runs(limit=2)) == ["c", "pipe"]
    assert names(store.list_runs(limit=0)) == []
    assert names(store.list_runs(limit=100)) == ["c", "pipe", "b", "a"]


# --- run IDs and prefixes ---------------------------------------------------------------------------------


def test_new_run_ids_are_version_4_uuids_in_hex() -> None:
    made = {new_run_id() for _ in range(200)}
    assert len(made) == 200
    assert all(is_run_id(run_id) and run_id[12] == "4" and run_id[16] in "89ab" for run_id in made)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("0" * 32, True), ("abcdef0123456789" * 2, True)],
        *[("A" * 32, False), ("a" * 31, False), ("a" * 33, False), ("g" * 32, False), ("", False)],
        *[(" " + "a" * 31, False)],
    ],
)
def test_is_run_id(text: str, expected: bool) -> None:
    assert is_run_id(text) is expected


@pytest.fixture
def prefixed(store: Store) -> list[str]:
    ids = ["abcd0000" + "0" * 24, "abcd1111" + "0" * 24, "abce0000" + "0" * 24, "ffff" + "0" * 28]
    for run_id in ids:
        store.insert(RunRecord(run_id=run_id))
    return ids


def test_resolve_by_a_unique_prefix_in_any_case(store: Store, prefixed: list[str]) -> None:
    assert MIN_PREFIX == 4
    assert store.resolve("abce").run_id == prefixed[2]
    assert store.resolve(" ABCD1 ").run_id == prefixed[1]
    assert store.resolve("ffff").run_id == prefixed[3]
    assert store.resolve(prefixed[0]).run_id == prefixed[0]


@pytest.mark.parametrize("prefix", ["abc", "", "   ", "abcz", "ab-cd", "abcd0000x"])
def test_resolve_refuses_what_is_not_a_prefix(store: Store, prefixed: list[str], prefix: str) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        store.resolve(prefix)
    assert str(caught.value) == (
        f"run {prefix!r}: no run has this name; expected a run ID (or a prefix of at least 4 hex "
        "characters), a run name or last"
    )


def test_resolve_names_an_ambiguous_prefix_and_an_unknown_one(
    store: Store, prefixed: list[str], home: Home
) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        store.resolve("abcd")
    assert str(caught.value) == f"run ID prefix 'abcd' is ambiguous: {prefixed[0]}, {prefixed[1]}"
    with pytest.raises(RunNotFoundError) as caught:
        store.resolve("0123")
    assert str(caught.value) == f"no run with ID '0123' in {home.db_file}"


def test_resolve_shows_five_of_many_matches(store: Store) -> None:
    ids = [f"beef{i:028x}" for i in range(7)]
    for run_id in ids:
        store.insert(RunRecord(run_id=run_id))
    with pytest.raises(RunNotFoundError) as caught:
        store.resolve("BEEF")
    assert str(caught.value) == f"run ID prefix 'BEEF' is ambiguous: {', '.join(ids[:5])}, …"


def test_resolve_by_a_unique_run_name_or_last(store: Store, home: Home) -> None:
    def add(run_id: str, name: str | None, created: float, parent: str | None = None) -> None:
        store.insert(RunRecord(run_id=run_id, run_name=name, created_at=created, parent_run_id=parent))

    add("1" * 32, "baseline", 1.0)
    add("2" * 32, "tuned", 2.0)
    add("3" * 32, "tuned", 3.0)
    add("4" * 32, "beef", 4.0)  # a name that looks like an ID prefix: no ID starts so, the name wins
    add("5" * 32, "baseline", 5.0, parent="1" * 32)  # a step's name is not a run's
    add("6" * 32, None, 6.0)
    assert store.resolve("baseline").run_id == "1" * 32
    assert store.resolve(" beef ").run_id == "4" * 32
    assert store.resolve("last").run_id == "6" * 32 and store.resolve("LAST").run_id == "6" * 32
    with pytest.raises(RunNotFoundError) as caught:
        store.resolve("tuned")
    assert (
        str(caught.value)
        == "run name 'tuned' is used by several runs (333333333333, 222222222222): give an ID"
    )
    with pytest.raises(RunNotFoundError, match="no run has this name"):
        store.resolve("nobody")


def test_last_in_an_empty_store_says_so(store: Store, home: Home) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        store.resolve("last")
    assert str(caught.value) == f"last: there are no runs in {home.db_file} yet"
