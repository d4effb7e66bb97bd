"""The pipeline scheduler's rules with fake workloads (tests/fakes.py): order, parallelism, retries,
failures, skips and cancel, in milliseconds. test_pipelines.py checks the same with real processes."""

from __future__ import annotations

import signal
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind, RunStatus
from mlproj.runs.store import Store
from tests.fakes import FakeBackend, FakeClock, Script, install_fake_backend, run_fake_pipeline


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return install_fake_backend(monkeypatch)


def pipeline(tmp_path: Path, jobs: str, settings: str = "") -> Path:
    path = tmp_path / "pipeline.yml"
    text = "type: pipeline\njobs:\n" + textwrap.indent(textwrap.dedent(jobs).strip(), "  ") + "\n"
    if settings:
        text += "settings:\n" + textwrap.indent(textwrap.dedent(settings).strip(), "  ") + "\n"
    path.write_text(text)
    return path


def statuses(attempts: dict[str, list[RunRecord]]) -> dict[str, list[str]]:
    return {name: [run.status.value for run in runs] for name, runs in attempts.items()}


def scripts(**by_name: Script) -> None:
    for name, script in by_name.items():
        FakeBackend.scripts[name] = script


def test_steps_run_in_dependency_order(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    scripts(a=Script(runs_for=1.0), b=Script(runs_for=1.0), c=Script(runs_for=1.0))
    file = pipeline(
        tmp_path,
        """
        c: {command: c, depends_on: [b]}
        b: {command: b, depends_on: [a]}
        a: {command: a}
        """,
    )
    final, attempts = run_fake_pipeline(store, file)
    assert final.status is RunStatus.FINISHED
    assert statuses(attempts) == {"a": ["Finished"], "b": ["Finished"], "c": ["Finished"]}
    assert [w.run_id for w in FakeBackend.launched] == [attempts[n][0].run_id for n in ("a", "b", "c")]
    ends = {name: runs[0].ended_at or 0.0 for name, runs in attempts.items()}
    starts = {name: runs[0].started_at or 0.0 for name, runs in attempts.items()}
    assert starts["b"] >= ends["a"] and starts["c"] >= ends["b"]


def test_max_parallel_bounds_the_steps_running_at_once(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    running: list[int] = []
    second = threading.Event()

    def track(elapsed: float) -> None:
        live = sum(1 for w in FakeBackend.launched if w.main_end is None or w.main_end > clock.now)
        running.append(live)
        if len(FakeBackend.launched) >= 2:
            second.set()
        second.wait(5)  # the first step waits (real time) for a second to start: they do overlap

    for name in "abcde":
        FakeBackend.scripts[name] = Script(runs_for=2.0, on_wait=track)
    file = pipeline(tmp_path, "\n".join(f"{name}: {{command: {name}}}" for name in "abcde"))
    final, _ = run_fake_pipeline(store, file, max_parallel=2)
    assert final.status is RunStatus.FINISHED
    assert len(FakeBackend.launched) == 5
    assert max(running) == 2


def hold_until_logged(store: Store, line: str) -> Callable[[float], None]:
    """A step's `on_wait` that holds it until its pipeline's log says `line` (fake time passes whenever
    anyone waits: without it, a long step could end before the scheduler handled another's failure,
    and a step after it would rightly start)."""

    def hold(_now: float) -> None:
        deadline = time.monotonic() + 10  # real seconds
        mine = Store.open(store.home)  # this runs in the step's thread
        try:
            while time.monotonic() < deadline:
                pipelines = [r for r in mine.list_runs() if r.kind is RunKind.PIPELINE and r.log_path]
                if any(line in Path(r.log_path or "").read_text() for r in pipelines):
                    return
                time.sleep(0.01)
        finally:
            mine.close()

    return hold


def test_a_failed_step_skips_its_downstream_and_stops_new_starts(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    until_bad_is_handled = hold_until_logged(store, "bad: Failed")
    scripts(
        bad=Script(exit_code=4),
        after=Script(),
        other=Script(runs_for=5.0, on_wait=until_bad_is_handled),
        late=Script(),
    )
    file = pipeline(
        tmp_path,
        """
        bad: {command: bad}
        after: {command: after, depends_on: [bad]}
        other: {command: other}
        late: {command: late, depends_on: [other]}
        """,
    )
    final, attempts = run_fake_pipeline(store, file, max_parallel=2)
    assert final.status is RunStatus.FAILED
    got = statuses(attempts)
    assert got["bad"] == ["Failed"]
    assert got["after"] == ["Skipped"]
    assert got["other"] == ["Finished"]  # already running: it finishes
    assert got["late"] == ["Skipped"]  # independent, but nothing new starts after a failure
    assert "bad" in (final.error or "")


def test_continue_on_step_failure_runs_independent_branches(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    until_bad_is_handled = hold_until_logged(store, "bad: Failed")
    scripts(
        bad=Script(exit_code=4),
        after=Script(),
        other=Script(runs_for=5.0, on_wait=until_bad_is_handled),
        late=Script(),
    )
    file = pipeline(
        tmp_path,
        """
        bad: {command: bad}
        after: {command: after, depends_on: [bad]}
        other: {command: other}
        late: {command: late, depends_on: [other]}
        """,
        "continue_on_step_failure: true",
    )
    final, attempts = run_fake_pipeline(store, file, max_parallel=2)
    assert final.status is RunStatus.FAILED
    assert statuses(attempts) == {
        "bad": ["Failed"],
        "after": ["Skipped"],
        "other": ["Finished"],
        "late": ["Finished"],
    }


def test_retries_run_a_failed_step_again_until_it_passes_or_runs_out(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    scripts(flaky=Script(exit_codes=(5, 5, 0)), hopeless=Script(exit_code=6))
    file = pipeline(
        tmp_path,
        """
        flaky: {command: flaky, retries: 2}
        hopeless: {command: hopeless, retries: 1}
        """,
        "continue_on_step_failure: true",
    )
    final, attempts = run_fake_pipeline(store, file)
    assert statuses(attempts) == {"flaky": ["Failed", "Failed", "Finished"], "hopeless": ["Failed", "Failed"]}
    assert [run.attempt for run in attempts["flaky"]] == [1, 2, 3]
    assert final.status is RunStatus.FAILED


def test_canceling_the_pipeline_stops_running_steps_and_cancels_the_others(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    pipeline_id: list[str] = []

    def cancel_soon(elapsed: float) -> None:  # `mlproj cancel` from another shell (its own connection)
        other = Store.open(store.home)
        try:
            if elapsed >= 1.0 and other.get(pipeline_id[0]).status is RunStatus.RUNNING:
                other.transition(pipeline_id[0], RunStatus.CANCEL_REQUESTED)
        finally:
            other.close()

    scripts(slow=Script(runs_for=1000.0, dies_after=0.2, on_wait=cancel_soon), after=Script())
    file = pipeline(
        tmp_path,
        """
        slow: {command: slow}
        after: {command: after, depends_on: [slow]}
        """,
    )
    original = store.insert

    def remember(record: RunRecord) -> RunRecord:
        if record.parent_run_id is None and not pipeline_id:
            pipeline_id.append(record.run_id)
        return original(record)

    store.insert = remember  # type: ignore[method-assign]
    final, attempts = run_fake_pipeline(store, file)
    assert final.status is RunStatus.CANCELED
    assert statuses(attempts) == {"slow": ["Canceled"], "after": ["Canceled"]}
    assert final.error == "canceled by mlproj cancel"
    assert [sig for _, sig in FakeBackend.launched[0].signals] == [int(signal.SIGTERM)]
