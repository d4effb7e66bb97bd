"""Schedules (design.md §10): cron expressions and intervals, which tick is due, each tick taken once
whoever asks, and the `schedules` commands against a real store."""

from __future__ import annotations

import calendar
import threading
from pathlib import Path

import pytest

from mlproj.errors import InputError
from mlproj.home import Home
from mlproj.publish.cron import Cron, describe, latest_tick, parse_interval
from mlproj.publish.schedules import MAX_LATE, due, look
from mlproj.runs.catalog import Schedule
from mlproj.runs.store import Store
from tests.helpers import mlproj, mlproj_json
from tests.pipelines import write_pipeline


def at(*when: int) -> float:
    """UTC seconds of (year, month, day, hour, minute)."""
    return float(calendar.timegm((*when, 0)))


@pytest.mark.parametrize(
    ("expression", "now", "expected"),
    [
        ("* * * * *", at(2026, 12, 2, 10, 7) + 30, at(2026, 12, 2, 10, 7)),
        ("*/15 * * * *", at(2026, 12, 2, 10, 7), at(2026, 12, 2, 10, 0)),
        ("0 6 * * *", at(2026, 12, 2, 5, 59), at(2026, 12, 1, 6, 0)),
        ("0 6 * * *", at(2026, 12, 2, 6, 0), at(2026, 12, 2, 6, 0)),
        ("30 9-17 * * mon-fri", at(2026, 12, 5, 12, 0), at(2026, 12, 4, 17, 30)),  # Saturday → Friday
        ("0 0 1 jan *", at(2026, 12, 2, 0, 0), at(2026, 1, 1, 0, 0)),
        ("0 0 29 2 *", at(2026, 12, 2, 0, 0), at(2024, 2, 29, 0, 0)),
        ("0 12 * * 0", at(2026, 12, 2, 0, 0), at(2026, 11, 29, 12, 0)),  # Sunday as 0
        ("0 12 * * 7", at(2026, 12, 2, 0, 0), at(2026, 11, 29, 12, 0)),  # and as 7
        ("5/20 * * * *", at(2026, 12, 2, 10, 30), at(2026, 12, 2, 10, 25)),
        ("0 0 13 * fri", at(2026, 12, 2, 0, 0), at(2026, 11, 27, 0, 0)),  # either day field, as cron
        ("1,2,3 0 * * *", at(2026, 12, 2, 0, 59), at(2026, 12, 2, 0, 3)),
    ],
)
def test_a_cron_expression_s_latest_tick(expression: str, now: float, expected: float) -> None:
    assert Cron(expression).previous(now) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("61 * * * *", "minute 61: expected 0 to 59"),
        ("* 24 * * *", "hour 24: expected 0 to 23"),
        ("* * 0 * *", "day of month 0: expected 1 to 31"),
        ("* * * 13 *", "month 13: expected 1 to 12"),
        ("* * * * 8", "day of week 8: expected 0 to 7"),
        ("*/0 * * * *", "a step is at least 1"),
        ("5-1 * * * *", "the range ends before it starts"),
        ("* * * foo *", "expected a number or a name"),
        ("0 0 * * monday", "expected a number or a name"),
        ("\u00b2 * * * *", "expected *, N"),
        ("$(rm) * * * *", "expected *, N, A-B, a list or a step"),
        ("0 0 30 2 *", "matches no date"),
    ],
)
def test_bad_cron_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        Cron(expression)


def test_intervals() -> None:
    assert parse_interval("90") == 90
    assert parse_interval("15m") == 900
    assert parse_interval("2h") == 7200
    assert parse_interval("1d") == 86400
    assert parse_interval("1.5s") == 1.5
    for bad in ("", "0", "0.5s", "5 minutes", "-1m", "1w", "9" * 400 + "d", "367d", "\u0662s"):
        with pytest.raises(InputError):
            parse_interval(bad)
    assert latest_tick(None, 10.0, 100.0, 95.0) is None
    assert latest_tick(None, 10.0, 100.0, 125.0) == 120.0
    assert describe(None, 900) == "every 15m"
    assert describe("0 6 * * *", None) == "cron 0 6 * * * (UTC)"


def test_a_tick_is_due_once_and_not_when_it_was_missed() -> None:
    schedule = Schedule(name="s", pipeline_id="x", every_s=60.0, created_at=1000.0, last_tick=1000.0)
    assert due(schedule, 1059.0) is None  # before the first tick after creation
    assert due(schedule, 1060.5) == 1060.0
    fired = Schedule(name="s", pipeline_id="x", every_s=60.0, created_at=1000.0, last_tick=1060.0)
    assert due(fired, 1061.0) is None  # taken already
    assert due(fired, 1060.0 + 60 + MAX_LATE + 1) is None  # the server was down: missed, not made up
    # A server that has been running fires a tick that came during its previous look, however late.
    assert due(fired, 1060.0 + 120 + MAX_LATE + 5, since=1060.0 + 100) == 1060.0 + 120
    hourly = Schedule(name="h", pipeline_id="x", every_s=3600.0, created_at=0.0, last_tick=0.0)
    assert due(hourly, 3600.0 + MAX_LATE - 1) == 3600.0
    assert due(hourly, 3600.0 + MAX_LATE + 1) is None


def test_a_tick_is_taken_by_one_of_many_at_once(home: Home) -> None:
    """Two servers on one store (here: eight threads, each with its own connection) race for every
    tick: each tick is taken exactly once."""
    store = Store.open(home)
    store.catalog().create_schedule(Schedule(name="s", pipeline_id="x", every_s=1.0, created_at=0.0))
    store.close()
    taken: list[float] = []
    lock = threading.Lock()

    def race() -> None:
        mine = Store.open(home)
        try:
            for tick in range(50):
                if mine.catalog().claim_tick("s", float(tick)):
                    with lock:
                        taken.append(float(tick))
        finally:
            mine.close()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == [float(t) for t in range(50)]
    store = Store.open(home)
    try:
        assert store.catalog().schedule("s").last_tick == 49.0
    finally:
        store.close()


@pytest.fixture
def published(tmp_path: Path, home: Home) -> str:
    pipeline = write_pipeline(
        tmp_path / "p.yml",
        """
        type: pipeline
        inputs:
          word: {type: string, default: hi}
        jobs:
          say:
            command: echo ${{inputs.word}}
            inputs:
              word: ${{parent.inputs.word}}
        """,
    )
    done = mlproj("publish", str(pipeline), "--name", "say")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_schedule_commands(published: str, home: Home) -> None:
    created = mlproj_json(
        "schedules", "create", "hourly", "--pipeline", published, "--every", "1h", "-P", "word=tick"
    )
    assert created["every_s"] == 3600.0 and created["parameters"] == {"word": "tick"}
    assert created["last_tick"] is not None  # the tick at creation is not fired
    assert mlproj_json("schedules", "list")[0]["name"] == "hourly"
    fired = mlproj_json("schedules", "trigger", "hourly")
    assert mlproj("wait", fired["run_id"]).returncode == 0
    record = mlproj_json("status", fired["run_id"])
    assert record["schedule"] == "hourly" and record["published_pipeline_id"] == published
    assert mlproj("logs", fired["run_id"], "--step", "say").stdout == "tick\n"
    shown = mlproj_json("schedules", "show", "hourly")
    assert [f["run_id"] for f in shown["fires"]] == [fired["run_id"]]
    assert mlproj_json("schedules", "disable", "hourly")["status"] == "Disabled"
    refused = mlproj("schedules", "trigger", "hourly")
    assert refused.returncode == 2 and "schedule 'hourly' is disabled" in refused.stderr
    enabled = mlproj_json("schedules", "enable", "hourly")
    assert enabled["status"] == "Active" and enabled["last_tick"] is not None
    assert mlproj("schedules", "delete", "hourly").returncode == 0
    assert mlproj_json("schedules", "list") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--every", "1h"), "expected one of --pipeline ID and --endpoint NAME"),
        (("--pipeline", "PUB"), "expected one of --cron EXPR and --every DURATION"),
        (("--pipeline", "PUB", "--cron", "* * *"), "expected 5 fields"),
        (("--pipeline", "PUB", "--every", "0s"), "expected at least 1 second"),
        (("--endpoint", "nope", "--every", "1m"), "no endpoint named 'nope'"),
        (("--pipeline", "ffff", "--every", "1m"), "no published pipeline with ID 'ffff'"),
    ],
)
def test_bad_schedules_are_exit_2(published: str, home: Home, args: tuple[str, ...], message: str) -> None:
    given = tuple(published if arg == "PUB" else arg for arg in args)
    done = mlproj("schedules", "create", "s1", *given)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert mlproj_json("schedules", "list") == []


def test_a_fire_that_cannot_start_a_run_records_why(published: str, home: Home) -> None:
    assert mlproj("schedules", "create", "s1", "--pipeline", published, "--every", "1s").returncode == 0
    assert mlproj("published", "disable", published).returncode == 0
    store = Store.open(home)
    try:
        schedule = store.catalog().schedule("s1")
        fired = look(store, schedule.created_at + 1.2)
        assert len(fired) == 1 and fired[0].run_id is None
        assert fired[0].error == f"published pipeline {published} (say) is disabled"
        assert look(store, schedule.created_at + 1.3) == []  # that tick is done
    finally:
        store.close()
    done = mlproj("schedules", "trigger", "s1")
    assert done.returncode == 1 and "could not start a run" in done.stderr
