"""The commands that only read or update the store (`status`, `runs`, `logs`, `wait`, `cancel`, `graph`,
`validate`), run in this process against a store filled directly with records in every status: no
workload is started. A run counts as supervised when its supervisor is this test process; one whose
supervisor is gone is reconciled by the command that reads it (design.md §3)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from mlproj import process
from mlproj.home import Home
from mlproj.pipelines.options import PipelineOptions
from mlproj.pipelines.plan import plan_run
from mlproj.pipelines.records import record_pipeline
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store, new_run_id
from tests.helpers import assert_input_error, invoke, write_project
from tests.pipelines import RECORD_FIELDS, write_pipeline

T0 = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z: when the runs of these tests were created
GONE: dict[str, Any] = {"supervisor_pid": 999_999_999, "supervisor_identity": "boot:1"}  # no such process
STATUS_NAMES = "NotStarted, Queued, Preparing, Running, CancelRequested, Finished, Failed, Canceled, Skipped"


def me() -> dict[str, Any]:
    """This test process as a run's supervisor: the run counts as supervised while the test runs."""
    return {"supervisor_pid": os.getpid(), "supervisor_identity": process.identity(os.getpid())}


@pytest.fixture(autouse=True)
def plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ANSI codes, whatever the environment of the test run says."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def add_run(
    store: Store,
    status: RunStatus = RunStatus.FINISHED,
    *,
    log: str | bytes | None = None,
    run_id: str | None = None,
    **fields: Any,
) -> RunRecord:
    """A run as its supervisor would have recorded it: created at T0, started a second later unless it
    was still waiting, ended 2.5 s after that if final; `log` is written to its log file."""
    run_id = run_id or new_run_id()
    run_dir = store.home.run_dir(run_id)
    waiting = status in (RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.SKIPPED)
    values: dict[str, Any] = {
        "created_at": T0,
        "started_at": None if waiting else T0 + 1,
        "ended_at": T0 + 3.5 if status.is_final else None,
        "exit_code": 0 if status is RunStatus.FINISHED else None,
        "uri": "/projects/train",
        "entry_point": "main",
        "log_path": str(run_dir / "output.log"),
        "run_dir": str(run_dir),
    }
    values.update(fields)
    if log is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        data = log.encode() if isinstance(log, str) else log
        Path(values["log_path"]).write_bytes(data)
    return store.insert(RunRecord(run_id=run_id, status=status, **values))


def add_pipeline(
    store: Store,
    status: RunStatus,
    steps: list[tuple[str, RunStatus, dict[str, Any]]],
    **fields: Any,
) -> tuple[RunRecord, list[RunRecord]]:
    """A pipeline run and its step runs (in the order given, each created after the one before)."""
    pipeline = add_run(store, status, kind=RunKind.PIPELINE, entry_point=None, run_name="shapes", **fields)
    records = []
    for index, (name, step_status, extra) in enumerate(steps):
        values: dict[str, Any] = {
            "kind": RunKind.STEP,
            "parent_run_id": pipeline.run_id,
            "step": name,
            "run_name": name,
            "attempt": 1,
            "created_at": T0 + 0.01 * (index + 1),
            **extra,
        }
        records.append(add_run(store, step_status, **values))
    return pipeline, records


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def document(*args: str) -> Any:
    """The one JSON document a command prints on stdout (nothing on stderr)."""
    done = invoke(*args)
    assert done.returncode == 0, done
    assert done.stderr == ""
    return json.loads(done.stdout)


def invoke_bytes(*args: str) -> tuple[int, bytes, str]:
    """`invoke`, with stdout a binary stream as a real one is: what a command writes as bytes is kept."""
    from mlproj.cli.main import run_cli

    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(list(args))
    out.flush()
    return code, raw.getvalue(), err.getvalue()


@contextlib.contextmanager
def meanwhile(home: Home, act: Callable[[Store], bool]) -> Iterator[None]:
    """Another shell at work while the block runs: `act` is called every 10 ms, from a thread with its
    own connection to the store, until it returns True (or 5 s pass)."""
    stop = threading.Event()

    def loop() -> None:
        other = Store.open(home)
        try:
            deadline = time.monotonic() + 5
            while not stop.is_set() and time.monotonic() < deadline:
                if act(other):
                    return
                stop.wait(0.01)
        finally:
            other.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --- status ------------------------------------------------------------------------------------------


def test_status_shows_a_failed_run_line_by_line(store: Store) -> None:
    record = add_run(
        store,
        RunStatus.FAILED,
        exit_code=3,
        error="the command exited with code 3",
        run_name="nightly",
        parameters={"lr": "0.1", "epochs": "5"},
        tags={"team": "ml"},
        env_manager="uv",
    )
    done = invoke("status", record.run_id)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == [
        f"run          {record.run_id}",
        "status       Failed (exit code 3)",
        "error        the command exited with code 3",
        "name         nightly",
        "experiment   Default",
        "uri          /projects/train",
        "entry point  main",
        "parameters   lr=0.1 epochs=5",
        "env manager  uv",
        "backend      local",
        "tags         team=ml",
        "created      2023-11-14T22:13:20.250Z",
        "started      2023-11-14T22:13:21.250Z",
        "ended        2023-11-14T22:13:23.750Z",
        "duration     2.50 s",
        f"log          {record.log_path}",
        f"folder       {record.run_dir}",
    ]


def test_status_finds_a_run_by_any_unique_prefix_of_four_characters_or_more(store: Store) -> None:
    record = add_run(store, run_id="abcd" + new_run_id()[4:])
    add_run(store, run_id="abce" + new_run_id()[4:])
    for given in (record.run_id, record.run_id[:5], "abcd", "ABCD", f" {record.run_id[:8]} "):
        assert document("status", given, "--json")["run_id"] == record.run_id, given


@pytest.mark.parametrize("given", ["abc", "xyzw1234", ""])
def test_status_refuses_a_prefix_shorter_than_four_or_not_hexadecimal(store: Store, given: str) -> None:
    add_run(store, run_id="abc0" + new_run_id()[4:])
    assert_input_error(
        invoke("status", given),
        f"run '{given}': no run has this name; expected a run ID (or a prefix of at least 4 hex characters)",
    )


def test_status_names_every_run_an_ambiguous_prefix_matches(store: Store) -> None:
    first = add_run(store, run_id="beef0" + new_run_id()[5:])
    second = add_run(store, run_id="beef1" + new_run_id()[5:])
    line = assert_input_error(invoke("status", "beef"), "run ID prefix 'beef' is ambiguous: ")
    assert line.endswith(f"ambiguous: {first.run_id}, {second.run_id}")
    # A longer prefix tells them apart.
    assert document("status", "beef1", "--json")["run_id"] == second.run_id


def test_an_ambiguous_prefix_shows_five_matches_and_says_there_are_more(store: Store) -> None:
    ids = sorted(f"cafe{index}" + new_run_id()[5:] for index in range(7))
    for run_id in ids:
        add_run(store, run_id=run_id)
    line = assert_input_error(invoke("status", "cafe"))
    assert line.endswith("is ambiguous: " + ", ".join(ids[:5]) + ", …")


def test_status_of_an_unknown_run_names_the_store(store: Store, home: Home) -> None:
    add_run(store, run_id="1234" + new_run_id()[4:])
    assert_input_error(invoke("status", "4321abcd"), f"no run with ID '4321abcd' in {home.db_file}")


def test_status_json_is_the_record_of_design_section_5(store: Store) -> None:
    record = add_run(
        store,
        RunStatus.FAILED,
        exit_code=3,
        error="the command exited with code 3",
        experiment="taxi",
        run_name="nightly",
        version="v1",
        commit="0" * 40,
        parameters={"lr": "0.1"},
        tags={"team": "ml"},
        env_manager="virtualenv",
        command="python train.py --lr 0.1",
        timeout=60.0,
        pid=4242,
    )
    doc = document("status", record.run_id[:6], "--json")
    assert set(RECORD_FIELDS) <= set(doc)
    assert "steps" not in doc
    assert {key: doc[key] for key in RECORD_FIELDS} == {
        "run_id": record.run_id,
        "kind": "project",
        "status": "Failed",
        "exit_code": 3,
        "error": "the command exited with code 3",
        "experiment": "taxi",
        "run_name": "nightly",
        "uri": "/projects/train",
        "version": "v1",
        "commit": "0" * 40,
        "entry_point": "main",
        "parameters": {"lr": "0.1"},
        "env_manager": "virtualenv",
        "backend": "local",
        "created_at": "2023-11-14T22:13:20.250Z",
        "started_at": "2023-11-14T22:13:21.250Z",
        "ended_at": "2023-11-14T22:13:23.750Z",
        "duration_s": 2.5,
        "log_path": record.log_path,
        "parent_run_id": None,
        "step": None,
        "reused_from": None,
        "tags": {"team": "ml"},
    }
    assert doc["experiment_id"] == store.experiment_id("taxi")
    assert (doc["command"], doc["timeout"], doc["pid"]) == ("python train.py --lr 0.1", 60.0, 4242)


@pytest.mark.parametrize(
    "timestamp", [T0, 1_700_000_000.0, 1_700_000_000.0019996, 1_700_000_059.9999996, 86_399.5]
)
def test_status_json_timestamps_are_iso_utc_to_the_millisecond_as_datetime_writes_them(
    store: Store, timestamp: float
) -> None:
    record = add_run(store, created_at=timestamp, started_at=timestamp, ended_at=timestamp + 1)
    doc = document("status", record.run_id, "--json")
    assert doc["created_at"] == doc["started_at"] == iso(timestamp)
    assert doc["ended_at"] == iso(timestamp + 1)
    assert doc["duration_s"] == 1.0


def test_supervised_runs_not_ended_are_shown_as_they_are(store: Store) -> None:
    queued = add_run(store, RunStatus.QUEUED, **me())
    doc = document("status", queued.run_id, "--json")
    assert (doc["status"], doc["created_at"], doc["exit_code"], doc["error"]) == (
        "Queued",
        iso(T0),
        None,
        None,
    )
    assert doc["started_at"] is None and doc["ended_at"] is None and doc["duration_s"] is None
    running = add_run(store, RunStatus.RUNNING, **me())
    doc = document("status", running.run_id, "--json")
    assert doc["status"] == "Running" and doc["error"] is None and doc["ended_at"] is None
    assert doc["duration_s"] > time.time() - T0 - 10  # measured up to now: years, not seconds
    assert [store.get(run.run_id) for run in (queued, running)] == [queued, running]


def test_status_of_a_run_whose_supervisor_is_gone_records_it_failed_with_the_reason(store: Store) -> None:
    record = add_run(store, RunStatus.RUNNING, **GONE)
    done = invoke("status", record.run_id)
    assert done.returncode == 0
    reason = (
        "the supervising process (pid 999999999) is gone: mlproj was killed or the machine restarted; "
        "what was left of the run's processes was ended"
    )
    lines = done.stdout.splitlines()
    assert lines[1] == "status       Failed"
    assert lines[2] == f"error        {reason}"
    stored = store.get(record.run_id)
    assert (stored.status, stored.error, stored.exit_code) == (RunStatus.FAILED, reason, None)
    assert stored.ended_at is not None and stored.ended_at > T0
    # Read again, it stays as recorded.
    assert document("status", record.run_id, "--json")["ended_at"] == iso(stored.ended_at)


def test_a_run_without_a_supervisor_for_long_is_reconciled_but_not_one_being_created(store: Store) -> None:
    old = add_run(store, RunStatus.NOT_STARTED)
    new = add_run(store, RunStatus.NOT_STARTED, created_at=time.time())
    assert document("status", old.run_id, "--json")["status"] == "Failed"
    assert document("status", new.run_id, "--json")["status"] == "NotStarted"


def test_status_of_a_pipeline_lists_its_steps_and_their_attempts(store: Store) -> None:
    earlier = add_run(store, kind=RunKind.STEP, step="prep")
    pipeline, steps = add_pipeline(
        store,
        RunStatus.FAILED,
        [
            ("prep", RunStatus.FINISHED, {"reused_from": earlier.run_id, "reason": "reused"}),
            ("train", RunStatus.FAILED, {"exit_code": 1, "error": "the command exited with code 1"}),
            ("report", RunStatus.SKIPPED, {"error": "train failed"}),
            ("train", RunStatus.FINISHED, {"attempt": 2, "reason": "ran: retry 2 of 2"}),
        ],
        error="step train failed",
    )
    done = invoke("status", pipeline.run_id)
    assert done.returncode == 0
    head, table = done.stdout.split("\n\n")
    assert head.splitlines()[:4] == [
        f"run         {pipeline.run_id}",
        "status      Failed",
        "error       step train failed",
        "name        shapes",
    ]
    prep, train, report, retry = (step.run_id for step in steps)
    assert table.splitlines() == [
        "STEP               STATUS    DURATION  RUN ID                            REUSED / WHY",
        f"prep               Finished  2.50 s    {prep}  reused from {earlier.run_id}",
        f"train              Failed    2.50 s    {train}  the command exited with code 1",
        f"train (attempt 2)  Finished  2.50 s    {retry}  retry 2 of 2",
        f"report             Skipped   -         {report}  train failed",
    ]


def test_status_json_of_a_pipeline_holds_every_step_record_oldest_first(store: Store) -> None:
    pipeline, steps = add_pipeline(
        store,
        RunStatus.FINISHED,
        [("prep", RunStatus.FINISHED, {}), ("train", RunStatus.FINISHED, {"outputs": {"model": "/m"}})],
        outputs={"model": "/m"},
    )
    doc = document("status", pipeline.run_id, "--json")
    assert doc["kind"] == "pipeline" and doc["outputs"] == {"model": "/m"}
    assert [step["run_id"] for step in doc["steps"]] == [step.run_id for step in steps]
    for step, name in zip(doc["steps"], ["prep", "train"], strict=True):
        assert set(RECORD_FIELDS) <= set(step)
        assert (step["kind"], step["step"], step["parent_run_id"]) == ("step", name, pipeline.run_id)
        assert "steps" not in step
    # The steps are runs of their own: their IDs give their records; `runs` lists the pipeline only.
    train = document("status", steps[1].run_id, "--json")
    assert train == doc["steps"][1]
    assert document("runs", "--json") == [doc]


def test_a_step_whose_pipeline_supervisor_is_gone_fails_and_the_steps_not_started_are_skipped(
    store: Store,
) -> None:
    pipeline, (prep, train, _) = add_pipeline(
        store,
        RunStatus.RUNNING,
        [("prep", RunStatus.FINISHED, {}), ("train", RunStatus.RUNNING, {}), ("next", RunStatus.QUEUED, {})],
        **GONE,
    )
    # Asking about one step reconciles its pipeline, and with it every step.
    doc = document("status", train.run_id, "--json")
    assert doc["status"] == "Failed"
    assert doc["error"] == "the pipeline's supervising process (pid 999999999) is gone"
    after = {step.step: step for step in store.steps_of(pipeline.run_id)}
    assert after["prep"] == prep
    assert after["next"].status is RunStatus.SKIPPED
    assert after["next"].error == f"never started: {doc['error']}"
    whole = store.get(pipeline.run_id)
    assert whole.status is RunStatus.FAILED
    assert (whole.error or "").startswith("the supervising process (pid 999999999) is gone")


def test_a_step_of_a_supervised_pipeline_is_left_as_it_is(store: Store) -> None:
    pipeline, (train,) = add_pipeline(store, RunStatus.RUNNING, [("train", RunStatus.RUNNING, {})], **me())
    assert document("status", train.run_id, "--json")["status"] == "Running"
    assert store.get(pipeline.run_id).status is RunStatus.RUNNING


def test_status_escapes_control_characters_of_a_run(store: Store) -> None:
    record = add_run(store, RunStatus.FAILED, run_name="\x1b[2Jred\x07", error="bad\x1b[31m\nline")
    shown = invoke("status", record.run_id).stdout + invoke("runs").stdout
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b[2Jred\\x07" in shown and "bad\\x1b[31m\\nline" in shown
    # The JSON document keeps the values as they are.
    assert document("status", record.run_id, "--json")["run_name"] == "\x1b[2Jred\x07"


# --- runs --------------------------------------------------------------------------------------------


def test_runs_says_so_when_there_are_none(home: Home) -> None:
    done = invoke("runs")
    assert (done.returncode, done.stdout, done.stderr) == (0, "No runs.\n", "")
    assert document("runs", "--json") == []


def test_runs_lists_newest_first_as_a_table(store: Store, central_european_time: None) -> None:
    old = add_run(store, created_at=T0 - 60, experiment="churn", run_name="baseline", uri="/p")
    new = add_run(store, RunStatus.FAILED, exit_code=1, started_at=T0 + 65, ended_at=T0 + 3725.5, uri="/p")
    done = invoke("runs")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == [
        "RUN ID        STATUS    NAME      KIND     EXPERIMENT  ENTRY  CREATED                  "
        "DURATION  URI",
        f"{new.run_id[:12]}  Failed              project  Default     main   "
        "2023-11-14 23:13:20 CET  1h01m00s  /p",
        f"{old.run_id[:12]}  Finished  baseline  project  churn       main   "
        "2023-11-14 23:12:20 CET  2.50 s    /p",
    ]


def test_runs_json_lists_records_newest_first_up_to_the_limit(store: Store) -> None:
    offsets = [7, 3, 24, 0, 11, *range(12, 24), 1, 2, 4, 5, 6, 8, 9, 10]  # recorded out of order
    by_offset = {offset: add_run(store, created_at=T0 + offset).run_id for offset in offsets}
    newest_first = [by_offset[offset] for offset in range(24, -1, -1)]
    listed = document("runs", "--json")
    assert [run["run_id"] for run in listed] == newest_first[:20]  # the default limit
    assert all(set(RECORD_FIELDS) <= set(run) for run in listed)
    assert [run["run_id"] for run in document("runs", "--json", "--limit", "3")] == newest_first[:3]
    assert len(document("runs", "--json", "--limit", "100")) == 25


@pytest.mark.parametrize("limit", ["0", "-3", "many"])
def test_runs_limit_must_be_a_whole_number_of_at_least_one(home: Home, limit: str) -> None:
    assert_input_error(invoke("runs", "--limit", limit), f"--limit {limit}: expected a whole number")


def test_runs_of_one_experiment(store: Store) -> None:
    taxi = add_run(store, experiment="taxi")
    add_run(store, experiment="churn")
    assert [run["run_id"] for run in document("runs", "--json", "--experiment-name", "taxi")] == [taxi.run_id]
    assert document("runs", "--json", "--experiment-name", "nope") == []
    assert invoke("runs", "--experiment-name", "nope").stdout == "No runs.\n"


@pytest.mark.parametrize("given", ["Failed", "failed", "FAILED", " failed "])
def test_runs_status_filter_ignores_case(store: Store, given: str) -> None:
    failed = add_run(store, RunStatus.FAILED, exit_code=2)
    add_run(store, RunStatus.FINISHED)
    add_run(store, RunStatus.CANCELED)
    assert [run["run_id"] for run in document("runs", "--json", "--status", given)] == [failed.run_id]


def test_runs_status_filter_combines_with_the_experiment_and_the_limit(store: Store) -> None:
    wanted = [add_run(store, RunStatus.CANCELED, experiment="a", created_at=T0 + i) for i in range(3)]
    add_run(store, RunStatus.CANCELED, experiment="b", created_at=T0 + 10)
    add_run(store, RunStatus.FINISHED, experiment="a", created_at=T0 + 11)
    listed = document("runs", "--json", "--status", "canceled", "--experiment-name", "a", "--limit", "2")
    assert [run["run_id"] for run in listed] == [wanted[2].run_id, wanted[1].run_id]


def test_runs_unknown_status_is_an_input_error_listing_the_names(home: Home) -> None:
    assert_input_error(
        invoke("runs", "--status", "Sleeping"),
        f"--status: unknown status 'Sleeping' (expected one of: {STATUS_NAMES})",
    )


def test_runs_filtered_by_status_reconcile_every_unfinished_run_first(store: Store) -> None:
    lost = add_run(store, RunStatus.RUNNING, created_at=T0 - 100, **GONE)
    alive = add_run(store, RunStatus.RUNNING, created_at=T0 - 50, **me())
    # Past the limit, the lost run is still brought up to date before the filter reads the statuses.
    for _ in range(3):
        add_run(store, RunStatus.FAILED)
    assert [run["run_id"] for run in document("runs", "--json", "--status", "running")] == [alive.run_id]
    assert store.get(lost.run_id).status is RunStatus.FAILED
    failed = document("runs", "--json", "--status", "Failed", "--limit", "10")
    assert failed[-1]["run_id"] == lost.run_id
    assert failed[-1]["error"].startswith("the supervising process (pid 999999999) is gone")


def test_runs_shows_listed_runs_reconciled(store: Store) -> None:
    lost = add_run(store, RunStatus.PREPARING, **GONE)
    (listed,) = document("runs", "--json")
    assert listed["run_id"] == lost.run_id and listed["status"] == "Failed"


# --- logs --------------------------------------------------------------------------------------------


def test_logs_prints_the_log_as_it_is(store: Store) -> None:
    record = add_run(store, log="first line\nsecond line\n")
    done = invoke("logs", record.run_id[:8])
    assert (done.returncode, done.stdout, done.stderr) == (0, "first line\nsecond line\n", "")
    assert invoke("logs", record.run_id, "-f").stdout == done.stdout  # a final run: nothing to follow


def test_logs_writes_the_logs_bytes_unchanged(store: Store) -> None:
    data = b"progress 10%\rprogress 100%\n\xff\xfe not utf-8 \x1b[31mred\x1b[0m\nno newline at the end"
    record = add_run(store, log=data)
    code, out, err = invoke_bytes("logs", record.run_id)
    assert (code, out, err) == (0, data, "")


def test_logs_of_a_run_without_a_log_yet_prints_nothing(store: Store) -> None:
    record = add_run(store, RunStatus.QUEUED, **me())
    done = invoke("logs", record.run_id)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_logs_of_a_pipeline_are_its_events_and_of_a_step_its_latest_attempts(store: Store) -> None:
    pipeline, _ = add_pipeline(
        store,
        RunStatus.FINISHED,
        [
            ("train", RunStatus.FAILED, {"exit_code": 1, "log": "attempt 1\n"}),
            ("report", RunStatus.FINISHED, {"log": "report\n"}),
            ("train", RunStatus.FINISHED, {"attempt": 2, "log": "attempt 2\n"}),
        ],
        log="events\n",
    )
    assert invoke("logs", pipeline.run_id).stdout == "events\n"
    assert invoke("logs", pipeline.run_id, "--step", "train").stdout == "attempt 2\n"
    assert invoke("logs", pipeline.run_id[:6], "--step", "report").stdout == "report\n"


def test_logs_of_a_reused_step_says_so_and_prints_the_log_of_the_run_it_reused(store: Store) -> None:
    producer = add_run(store, kind=RunKind.STEP, step="prep", log="made the data\n")
    pipeline, _ = add_pipeline(
        store, RunStatus.FINISHED, [("prep", RunStatus.FINISHED, {"reused_from": producer.run_id, "log": ""})]
    )
    done = invoke("logs", pipeline.run_id, "--step", "prep")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == (
        f"mlproj: step prep was reused from run {producer.run_id}; its log follows\nmade the data\n"
    )


def test_logs_of_a_reused_step_named_by_its_own_run_id_says_so_too(store: Store) -> None:
    producer = add_run(store, kind=RunKind.STEP, step="prep", log="made the data\n")
    _, steps = add_pipeline(
        store, RunStatus.FINISHED, [("prep", RunStatus.FINISHED, {"reused_from": producer.run_id, "log": ""})]
    )
    done = invoke("logs", steps[0].run_id)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"mlproj: step prep was reused from run {producer.run_id}; its log follows\nmade the data\n"
    )


def test_logs_step_of_a_run_that_is_not_a_pipeline_is_an_input_error(store: Store) -> None:
    record = add_run(store)
    assert_input_error(
        invoke("logs", record.run_id, "--step", "train"),
        f"--step train: run {record.run_id} is a project run, not a pipeline",
    )
    _, (step,) = add_pipeline(store, RunStatus.FINISHED, [("train", RunStatus.FINISHED, {})])
    assert_input_error(invoke("logs", step.run_id, "--step", "train"), "is a step run, not a pipeline")


def test_logs_of_an_unknown_step_lists_the_steps(store: Store) -> None:
    pipeline, _ = add_pipeline(
        store,
        RunStatus.FINISHED,
        [
            ("train", RunStatus.FINISHED, {}),
            ("prep", RunStatus.FINISHED, {}),
            ("train", RunStatus.FAILED, {}),
        ],
    )
    assert_input_error(
        invoke("logs", pipeline.run_id, "--step", "nope"),
        f"--step nope: pipeline run {pipeline.run_id} has no such step (prep, train)",
    )


# --- wait --------------------------------------------------------------------------------------------

# A final run, and the exit code of `run` and `wait` for it (runs/outcome.py).
EXIT_CODES: list[tuple[RunStatus, dict[str, Any], int]] = [
    (RunStatus.FINISHED, {}, 0),
    (RunStatus.FAILED, {"exit_code": 3, "error": "exited 3"}, 3),
    (RunStatus.FAILED, {"exit_code": 125, "error": "exited 125"}, 125),
    (RunStatus.FAILED, {"exit_code": 137, "error": "killed by SIGKILL"}, 1),
    (RunStatus.FAILED, {"exit_code": None, "error": "lost"}, 1),
    (RunStatus.FAILED, {"kind": RunKind.PIPELINE, "exit_code": 7, "error": "step a failed"}, 1),
    (RunStatus.FAILED, {"kind": RunKind.STEP, "exit_code": 3, "error": "exited 3"}, 1),
    (RunStatus.CANCELED, {"error": "canceled by mlproj cancel"}, 130),
    (RunStatus.CANCELED, {"error": "timed out after 5 s"}, 124),
]


@pytest.mark.parametrize(("status", "fields", "code"), EXIT_CODES)
def test_wait_for_a_final_run_exits_with_the_code_run_would_give(
    store: Store, status: RunStatus, fields: dict[str, Any], code: int
) -> None:
    record = add_run(store, status, log="the output\n", **fields)
    # The fixture's runs start 1 s after they were submitted: the summary says so apart.
    summary = f"Run {record.run_id} {status.value} in 2.50 s, after 1.00 s of preparation"
    summary += f": {fields['error']}" if fields else ""
    done = invoke("wait", record.run_id)
    assert (done.returncode, done.stdout, done.stderr) == (code, "the output\n", summary + "\n")
    quiet = invoke("wait", record.run_id[:10], "--no-show-output")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (code, "", done.stderr)


def test_wait_for_a_run_that_never_started_or_a_skipped_step_exits_1(store: Store) -> None:
    record = add_run(store, RunStatus.FAILED, exit_code=3, started_at=None, error="could not start")
    _, (step,) = add_pipeline(store, RunStatus.FAILED, [("b", RunStatus.SKIPPED, {"error": "a failed"})])
    for run, summary in ((record, "Failed in -: could not start"), (step, "Skipped in -: a failed")):
        done = invoke("wait", run.run_id, "--no-show-output")
        assert (done.returncode, done.stderr) == (1, f"Run {run.run_id} {summary}\n")


def test_wait_for_a_run_whose_supervisor_is_gone_reconciles_it_and_exits_1(store: Store) -> None:
    record = add_run(store, RunStatus.RUNNING, log="half of it\n", **GONE)
    done = invoke("wait", record.run_id)
    assert done.returncode == 1
    assert done.stdout == "half of it\n"
    assert done.stderr.startswith(f"Run {record.run_id} Failed in ")
    assert done.stderr.endswith(
        ": the supervising process (pid 999999999) is gone: mlproj was killed or the "
        "machine restarted; what was left of the run's processes was ended\n"
    )
    assert store.get(record.run_id).status is RunStatus.FAILED


def test_wait_timeout_on_a_run_that_goes_on_exits_124_and_leaves_it_running(store: Store) -> None:
    record = add_run(store, RunStatus.RUNNING, log="still going\n", **me())
    done = invoke("wait", record.run_id, "--timeout", "0.2")
    assert done.returncode == 124
    assert done.stdout == "still going\n"
    assert done.stderr == f"Run {record.run_id} is still Running after 0.2 s\n"
    quiet = invoke("wait", record.run_id, "--timeout", "0.1", "--no-show-output")
    assert (quiet.returncode, quiet.stdout) == (124, "")
    assert quiet.stderr == f"Run {record.run_id} is still Running after 0.1 s\n"
    assert store.get(record.run_id).status is RunStatus.RUNNING


def test_wait_returns_when_another_shell_records_the_end(store: Store, home: Home) -> None:
    record = add_run(store, RunStatus.RUNNING, log="line 1\n", **me())
    polls: list[int] = []

    def finish(other: Store) -> bool:
        polls.append(1)
        if len(polls) < 5:
            return False
        with Path(record.log_path or "").open("a") as log:
            log.write("line 2\n")
        other.transition(record.run_id, RunStatus.FAILED, exit_code=4, error="exited 4", ended_at=T0 + 3.5)
        return True

    with meanwhile(home, finish):
        done = invoke("wait", record.run_id)
    assert done.returncode == 4
    assert done.stdout == "line 1\nline 2\n"
    assert done.stderr == f"Run {record.run_id} Failed in 2.50 s, after 1.00 s of preparation: exited 4\n"


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "soon"])
def test_wait_timeout_must_be_a_positive_number_of_seconds(store: Store, timeout: str) -> None:
    record = add_run(store)
    assert_input_error(
        invoke("wait", record.run_id, "--timeout", timeout),
        f"--timeout {timeout}: expected a positive number of seconds",
    )


# --- cancel ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELED])
def test_cancel_of_a_run_that_had_ended_changes_nothing(store: Store, status: RunStatus) -> None:
    record = add_run(store, status, error=None if status is RunStatus.FINISHED else "why")
    done = invoke("cancel", record.run_id[:6])
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"Run {record.run_id} had already ended: {status.value}\n"
    assert store.get(record.run_id) == record


def test_cancel_of_a_run_whose_supervisor_is_gone_reports_it_ended_failed(store: Store) -> None:
    record = add_run(store, RunStatus.NOT_STARTED, **GONE)
    done = invoke("cancel", record.run_id)
    assert (done.returncode, done.stdout) == (0, f"Run {record.run_id} had already ended: Failed\n")
    stored = store.get(record.run_id)
    assert stored.status is RunStatus.FAILED
    assert (stored.error or "").startswith("the supervising process (pid 999999999) is gone")
    assert stored.grace is None  # nothing was asked of a run already ended


def test_cancel_of_a_run_not_started_with_no_supervisor_records_it_canceled(store: Store) -> None:
    record = add_run(store, RunStatus.NOT_STARTED, created_at=time.time())  # its supervisor not yet there
    done = invoke("cancel", record.run_id, "--grace", "0")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"Run {record.run_id} is now Canceled\n", "")
    stored = store.get(record.run_id)
    assert stored.status is RunStatus.CANCELED
    assert stored.error == "canceled by mlproj cancel (no supervisor had taken it over)"
    assert stored.grace == 0.0 and stored.ended_at is not None and stored.started_at is None
    assert invoke("wait", record.run_id, "--no-show-output").returncode == 130


def test_cancel_of_an_unsupervised_pipeline_cancels_the_steps_not_ended(store: Store) -> None:
    pipeline, (prep, train) = add_pipeline(
        store,
        RunStatus.QUEUED,
        [("prep", RunStatus.FINISHED, {}), ("train", RunStatus.NOT_STARTED, {})],
        created_at=time.time(),
    )
    done = invoke("cancel", pipeline.run_id, "--grace", "0")
    assert done.stdout == f"Run {pipeline.run_id} is now Canceled\n"
    assert store.get(prep.run_id) == prep
    stopped = store.get(train.run_id)
    assert (stopped.status, stopped.error) == (RunStatus.CANCELED, "canceled by mlproj cancel")
    assert store.get(pipeline.run_id).status is RunStatus.CANCELED


def test_cancel_asks_the_supervisor_and_reports_what_it_recorded(store: Store, home: Home) -> None:
    record = add_run(store, RunStatus.RUNNING, **me())
    asked: list[float | None] = []

    def supervise(other: Store) -> bool:
        current = other.get(record.run_id)
        if current.status is not RunStatus.CANCEL_REQUESTED:
            return False
        asked.append(current.grace)
        return other.transition(record.run_id, RunStatus.CANCELED, error="canceled by mlproj cancel")

    with meanwhile(home, supervise):
        done = invoke("cancel", record.run_id, "--grace", "2.5")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"Run {record.run_id} is now Canceled\n", "")
    assert asked == [2.5]  # the grace period is recorded before the request
    assert store.get(record.run_id).error == "canceled by mlproj cancel"


def test_cancel_of_a_run_that_ends_on_its_own_first_says_it_had_ended(store: Store, home: Home) -> None:
    record = add_run(store, RunStatus.RUNNING, **me())

    def finish(other: Store) -> bool:
        if other.get(record.run_id).status is not RunStatus.CANCEL_REQUESTED:
            return False
        return other.transition(record.run_id, RunStatus.FINISHED, exit_code=0, ended_at=T0 + 9)

    with meanwhile(home, finish):
        done = invoke("cancel", record.run_id)
    assert (done.returncode, done.stdout) == (0, f"Run {record.run_id} had already ended: Finished\n")


@pytest.mark.parametrize("grace", ["-1", "nan", "inf", "later"])
def test_cancel_grace_must_be_zero_or_more_seconds(store: Store, grace: str) -> None:
    record = add_run(store, RunStatus.RUNNING, **me())
    assert_input_error(
        invoke("cancel", record.run_id, "--grace", grace),
        f"--grace {grace}: expected a number of seconds, 0 or more",
    )
    assert store.get(record.run_id) == record


# --- graph -------------------------------------------------------------------------------------------

SHAPES = """
    type: pipeline
    name: shapes
    jobs:
      prep:
        command: echo prep
      left:
        command: echo left
        depends_on: [prep]
      right:
        command: echo right
        depends_on: [prep]
      join:
        command: echo join
        depends_on: [left, right]
"""


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    return write_pipeline(tmp_path / "shapes.yml", SHAPES)


GRAPHS = {
    "text": ["prep", "left   <- prep", "right  <- prep", "join   <- left, right"],
    "mermaid": [
        "graph TD",
        '  s_prep["prep"]',
        '  s_left["left"]',
        '  s_right["right"]',
        '  s_join["join"]',
        "  s_prep --> s_left",
        "  s_prep --> s_right",
        "  s_left --> s_join",
        "  s_right --> s_join",
    ],
    "dot": [
        'digraph "shapes" {',
        "  rankdir=LR;",
        '  "prep";',
        '  "left";',
        '  "right";',
        '  "join";',
        '  "prep" -> "left";',
        '  "prep" -> "right";',
        '  "left" -> "join";',
        '  "right" -> "join";',
        "}",
    ],
}
GRAPH_JSON = {
    "nodes": ["prep", "left", "right", "join"],
    "edges": [["prep", "left"], ["prep", "right"], ["left", "join"], ["right", "join"]],
}


@pytest.mark.parametrize("fmt", sorted(GRAPHS))
def test_graph_of_a_pipeline_file(home: Home, shapes: Path, fmt: str) -> None:
    done = invoke("graph", str(shapes), "--format", fmt)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == GRAPHS[fmt]


def test_graph_json_names_the_steps_and_edges(home: Home, shapes: Path) -> None:
    assert document("graph", str(shapes), "--format", "json") == GRAPH_JSON


def test_graph_of_a_recorded_run_is_the_pipeline_it_ran(store: Store, home: Home, shapes: Path) -> None:
    plan = plan_run(PipelineOptions(uri=str(shapes)), home)
    recorded = record_pipeline(store, plan)  # Queued, supervised by this process: nothing runs
    # The file changes afterwards: the run keeps its own copy.
    write_pipeline(shapes, "type: pipeline\nname: other\njobs:\n  only:\n    command: 'true'\n")
    assert invoke("graph", str(shapes)).stdout == "only\n"
    assert invoke("graph", recorded.run_id[:8]).stdout.splitlines() == GRAPHS["text"]  # text unless told
    assert document("graph", recorded.run_id, "--format", "json") == GRAPH_JSON
    # Reading it did not disturb the run.
    assert store.get(recorded.run_id).status is RunStatus.QUEUED


def test_graph_of_a_run_that_is_not_a_pipeline_is_an_input_error(store: Store) -> None:
    record = add_run(store)
    assert_input_error(
        invoke("graph", record.run_id), f"run {record.run_id} is a project run, not a pipeline run"
    )


def test_graph_of_a_file_that_is_not_a_pipeline_is_an_input_error(tmp_path: Path, home: Home) -> None:
    project = write_project(tmp_path / "proj", "entry_points:\n  main:\n    command: 'true'\n")
    other = write_pipeline(tmp_path / "config.yml", "name: settings\n")
    for path in (project, project / "MLproject", other):
        assert_input_error(
            invoke("graph", str(path)), f"{path}: expected a pipeline file (.yml/.yaml with `type: pipeline`)"
        )


def test_graph_of_a_missing_file_is_an_input_error_naming_it(tmp_path: Path, home: Home) -> None:
    missing = tmp_path / "missing.yml"
    assert_input_error(invoke("graph", str(missing)), f"{missing}: no such pipeline file")
    assert_input_error(invoke("graph", "missing.yaml"), "missing.yaml: no such pipeline file")


def test_graph_format_must_be_one_of_the_four(home: Home, shapes: Path) -> None:
    expected = "--format svg: expected one of text, mermaid, dot, json"
    assert_input_error(invoke("graph", str(shapes), "--format", "svg"), expected)


# --- validate ----------------------------------------------------------------------------------------

TRAINER = """
name: trainer
entry_points:
  main:
    parameters:
      lr: {type: float, default: 0.1}
      epochs: int
    command: "python train.py --lr {lr} --epochs {epochs}"
  evaluate:
    parameters:
      model: string
    command: "python evaluate.py {model}"
"""


@pytest.fixture
def trainer(tmp_path: Path) -> Path:
    return write_project(tmp_path / "trainer", TRAINER)


def test_validate_shows_the_resolved_command_and_runs_nothing(store: Store, trainer: Path) -> None:
    done = invoke("validate", str(trainer), "-P", "epochs=3")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"uri             {trainer}",
        f"project dir     {trainer}",
        "entry point     main",
        "parameters      lr=0.1 epochs=3",
        "command         python train.py --lr 0.1 --epochs 3",
        "env manager     local",
        "backend         local",
        "experiment      Default",
        "valid: nothing was run",
    ]
    assert store.list_runs() == [] and not store.home.runs_dir.exists()


def test_validate_json_is_the_plan(store: Store, trainer: Path) -> None:
    doc = document("validate", str(trainer), "-P", "epochs=3", "-P", "lr=0.5", "-P", "extra=a b", "--json")
    assert doc == {
        "uri": str(trainer),
        "version": None,
        "commit": None,
        "project_dir": str(trainer),
        "entry_point": "main",
        "parameters": {"lr": "0.5", "epochs": "3", "extra": "a b"},
        "command": "python train.py --lr 0.5 --epochs 3 --extra 'a b'",
        "env_manager": "local",
        "backend": "local",
        "backend_config": {},
        "experiment": "Default",
    }
    assert store.list_runs() == []


def test_validate_another_entry_point(home: Home, trainer: Path) -> None:
    doc = document("validate", str(trainer), "-e", "evaluate", "-P", "model=m; rm -rf ~", "--json")
    assert doc["entry_point"] == "evaluate"
    assert doc["command"] == "python evaluate.py 'm; rm -rf ~'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "entry point 'main': no value for epochs (give -P epochs=VALUE)"),
        (["-P", "epochs=many"], "parameter 'epochs' (int): expected an integer, got 'many'"),
        (["-P", "epochs=1", "-e", "nope"], "unknown entry point 'nope' (declared: evaluate, main;"),
        (["-P", "broken"], "-P 'broken': expected KEY=VALUE"),
        (["-P", "epochs=1", "--env-manager", "pipenv"], "unknown --env-manager 'pipenv'"),
    ],
)
def test_validate_reports_bad_input_in_one_line(
    store: Store, trainer: Path, args: list[str], message: str
) -> None:
    assert_input_error(invoke("validate", str(trainer), *args), message)
    assert store.list_runs() == []


def test_validate_of_a_missing_folder(tmp_path: Path, home: Home) -> None:
    missing = tmp_path / "nowhere"
    for args in ([], ["--json"], ["-P", "x=1"]):
        assert_input_error(
            invoke("validate", str(missing), *args), f"no such project folder or file: {missing}"
        )


@pytest.mark.parametrize(
    ("args", "flag"),
    [(["-e", "train"], "-e/--entry-point"), (["--entry-point", "other"], "-e/--entry-point")],
)
def test_validate_refuses_for_a_pipeline_what_run_refuses(
    home: Home, shapes: Path, args: list[str], flag: str
) -> None:
    line = assert_input_error(invoke("validate", str(shapes), *args), f"{flag}: applies to projects")
    assert line == assert_input_error(invoke("run", str(shapes), *args))  # the very same words


def test_validate_of_a_pipeline_file_lists_its_plan(home: Home, shapes: Path) -> None:
    done = invoke("validate", str(shapes))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"pipeline shapes ({shapes}): 4 steps",
        "  prep (command, local)",
        "  left (command, local) after prep",
        "  right (command, local) after prep",
        "  join (command, local) after left, right",
        "valid: nothing was run",
    ]


def test_validate_json_of_a_pipeline_with_a_project_step_and_inputs(
    store: Store, tmp_path: Path, trainer: Path
) -> None:
    pipeline = write_pipeline(
        tmp_path / "train.yml",
        """
        type: pipeline
        name: training
        inputs:
          epochs: {type: integer, default: 2}
        jobs:
          prep:
            command: echo prep
          fit:
            type: mlflow_project
            uri: ./trainer
            parameters:
              epochs: ${{parent.inputs.epochs}}
            depends_on: [prep]
        """,
    )
    doc = document("validate", str(pipeline), "-P", "epochs=7", "--json")
    assert doc["pipeline"] == "training" and doc["file"] == str(pipeline)
    assert doc["inputs"] == {"epochs": "7"}
    assert doc["steps"] == ["prep", "fit"] and doc["edges"] == [["prep", "fit"]]
    assert doc["plan"][1] == {
        "name": "fit",
        "type": "mlflow_project",
        "after": ["prep"],
        "uri": str(trainer),
        "entry_point": "main",
        "env_manager": "local",
        "backend": "local",
    }
    text = invoke("validate", str(pipeline), "-P", "epochs=7").stdout.splitlines()
    assert text[1] == "inputs: epochs=7"
    assert text[3] == f"  fit (mlflow_project {trainer} -e main, local) after prep"
    assert store.list_runs() == [] and not store.home.runs_dir.exists()


# --- one JSON document -------------------------------------------------------------------------------


def test_every_json_output_is_exactly_one_document_on_stdout(
    store: Store, home: Home, shapes: Path, trainer: Path
) -> None:
    pipeline, _ = add_pipeline(store, RunStatus.FINISHED, [("a", RunStatus.FINISHED, {})], log="events\n")
    lost = add_run(store, RunStatus.RUNNING, log="output\n", **GONE)
    commands = [
        ("status", pipeline.run_id, "--json"),
        ("status", lost.run_id, "--json"),  # reconciled on the way: still one document
        ("runs", "--json"),
        ("runs", "--json", "--status", "failed"),
        ("validate", str(trainer), "-P", "epochs=1", "--json"),
        ("validate", str(shapes), "--json"),
        ("graph", str(shapes), "--format", "json"),
        ("envs", "list", "--json"),
    ]
    for args in commands:
        done = invoke(*args)
        assert (done.returncode, done.stderr) == (0, ""), (args, done)
        value, end = json.JSONDecoder().raw_decode(done.stdout)
        assert done.stdout[end:] == "\n", args
        assert isinstance(value, (dict, list)), args
