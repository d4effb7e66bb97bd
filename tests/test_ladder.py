"""The stop ladder (interrupt → terminate → kill) against fake targets and a fake clock: which signals a
stop sends, in which order and how many fake seconds apart; and the flags that Ctrl-C and SIGTERM/SIGHUP
set for the supervisors' loops (real signals to this process, handlers restored after each test)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import mlproj.execution.ladder
from mlproj.execution.ladder import (
    INTERRUPT_VARIABLE,
    LEFTOVERS,
    Rung,
    Stop,
    climb,
    interrupt_timeout,
    rungs,
)
from mlproj.execution.signals import InterruptCounter, SignalFlags
from mlproj.process import INTERRUPT_TIMEOUT, KILL_WAIT, LEFTOVER_GRACE, POLL_INTERVAL
from tests.fakes import FakeClock

TERM, KILL, INT, HUP = int(signal.SIGTERM), int(signal.SIGKILL), int(signal.SIGINT), int(signal.SIGHUP)


class FakeTarget:
    """What a ladder stops, in fake time: notes each signal with the fake seconds since it was made; a
    signal in `dies_after` ends it that many seconds later (the earliest ending wins)."""

    def __init__(
        self, clock: FakeClock, dies_after: dict[int, float] | None = None, *, alive: bool = True
    ) -> None:
        self.clock = clock
        self.began = clock.now
        self.dies_after = dies_after or {}
        self.end: float | None = None if alive else clock.now
        self.signals: list[tuple[float, int]] = []
        self.asked = 0  # how many times `alive` was asked

    def signal(self, sig: int) -> None:
        self.signals.append((round(self.clock.now - self.began, 6), sig))
        delay = self.dies_after.get(sig)
        if delay is not None:
            end = self.clock.now + delay
            if self.end is None or end < self.end:
                self.end = end

    def alive(self) -> bool:
        self.asked += 1
        return self.end is None or self.clock.now < self.end

    @property
    def sent(self) -> list[int]:
        return [sig for _, sig in self.signals]

    @property
    def times(self) -> list[float]:
        return [at for at, _ in self.signals]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock in place of the ladder's `time`."""
    fake = FakeClock()
    monkeypatch.setattr(mlproj.execution.ladder, "time", fake)
    return fake


@pytest.fixture
def no_interrupt_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INTERRUPT_VARIABLE, raising=False)


def progress(stop: Stop) -> tuple[bool, bool, float]:
    """Whether the stop is due, whether it is exhausted, and the seconds left on its rung."""
    return stop.due, stop.exhausted, stop.remaining()


def assert_times(actual: list[float], expected: list[float]) -> None:
    """Each signal came when its rung was due: not before, and at most one poll after."""
    assert len(actual) == len(expected)
    for at, due in zip(actual, expected, strict=True):
        assert due - 1e-6 <= at <= due + POLL_INTERVAL + 1e-6, (actual, expected)


# --- interrupt_timeout ----------------------------------------------------------------------------------


def test_the_interrupt_timeout_defaults_to_the_named_timeout(no_interrupt_variable: None) -> None:
    assert interrupt_timeout() == INTERRUPT_TIMEOUT == 3.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("0.5", 0.5), ("0", 0.0), (" 7 ", 7.0), ("1e1", 10.0), ("120", 120.0)]
)
def test_a_valid_interrupt_timeout_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, seconds: float
) -> None:
    monkeypatch.setenv(INTERRUPT_VARIABLE, text)
    assert interrupt_timeout() == seconds


@pytest.mark.parametrize("text", ["-1", "-0.001", "nan", "NaN", "inf", "-inf", "abc", "", "1s", "3,5"])
def test_an_unusable_interrupt_timeout_falls_back_to_the_default(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv(INTERRUPT_VARIABLE, text)
    assert interrupt_timeout() == INTERRUPT_TIMEOUT


# --- rungs ------------------------------------------------------------------------------------------------


def test_a_ladder_is_sigterm_then_sigkill_after_the_grace(no_interrupt_variable: None) -> None:
    assert rungs(4.0) == (Rung(TERM, 4.0), Rung(KILL, KILL_WAIT))
    assert rungs(0.0) == (Rung(TERM, 0.0), Rung(KILL, KILL_WAIT))


def test_an_interactive_ladder_begins_with_sigint_for_the_interrupt_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(INTERRUPT_VARIABLE, "1.5")
    assert rungs(4.0, interactive=True) == (Rung(INT, 1.5), Rung(TERM, 4.0), Rung(KILL, KILL_WAIT))


def test_an_interactive_ladder_reads_the_variable_when_it_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERRUPT_VARIABLE, "0.25")
    first = rungs(1.0, interactive=True)
    monkeypatch.setenv(INTERRUPT_VARIABLE, "8")
    second = rungs(1.0, interactive=True)
    assert (first[0].wait, second[0].wait) == (0.25, 8.0)


def test_the_leftovers_ladder_uses_the_leftover_grace() -> None:
    assert (Rung(TERM, LEFTOVER_GRACE), Rung(KILL, KILL_WAIT)) == LEFTOVERS


# --- Stop --------------------------------------------------------------------------------------------------


def test_a_new_stop_is_due_and_on_no_rung(clock: FakeClock) -> None:
    stop = Stop("canceled by mlproj cancel", rungs(2.0))
    assert stop.reason == "canceled by mlproj cancel"
    assert (stop.stage, stop.rung) == (-1, None)
    assert stop.due
    assert not stop.exhausted
    assert stop.remaining() == 0.0


def test_advance_sends_the_rung_signal_and_waits_its_time(clock: FakeClock) -> None:
    stop = Stop(None, rungs(2.0))
    target = FakeTarget(clock)
    stop.advance(target)
    assert target.signals == [(0.0, TERM)]
    assert stop.rung == Rung(TERM, 2.0)
    assert progress(stop) == (False, False, 2.0)
    clock.advance(1.5)
    assert progress(stop)[:2] == (False, False)
    assert stop.remaining() == pytest.approx(0.5)
    clock.advance(0.5)
    assert progress(stop) == (True, False, 0.0)  # due, but SIGKILL is still to come


def test_a_stop_is_exhausted_once_the_last_rung_time_is_up(clock: FakeClock) -> None:
    stop = Stop(None, rungs(1.0))
    target = FakeTarget(clock)
    stop.advance(target)
    clock.advance(1.0)
    stop.advance(target)
    assert stop.rung == Rung(KILL, KILL_WAIT)
    assert progress(stop)[1] is False
    clock.advance(KILL_WAIT - 0.01)
    assert progress(stop)[1] is False
    clock.advance(0.01)
    assert progress(stop) == (True, True, 0.0)
    assert target.sent == [TERM, KILL]


def test_advancing_past_the_last_rung_stays_on_it_and_sends_it_again(clock: FakeClock) -> None:
    stop = Stop(None, rungs(1.0))
    target = FakeTarget(clock)
    for _ in range(4):
        stop.advance(target)
    assert target.sent == [TERM, KILL, KILL, KILL]
    assert stop.stage == 1
    clock.advance(3.0)
    stop.advance(target)
    assert stop.remaining() == KILL_WAIT  # the deadline starts again from the last signal


def test_a_ctrl_c_advance_skips_the_rest_of_a_rung_time(clock: FakeClock) -> None:
    """A second Ctrl-C climbs at once: advancing before the rung is due sends the next signal now."""
    stop = Stop("interrupted", rungs(30.0, interactive=True))
    target = FakeTarget(clock)
    stop.advance(target)
    clock.advance(0.1)
    assert not stop.due
    stop.advance(target)
    assert target.signals == [(0.0, INT), (0.1, TERM)]
    assert stop.remaining() == 30.0


def test_a_stop_is_interactive_when_its_first_rung_is_sigint(no_interrupt_variable: None) -> None:
    assert Stop("interrupted", rungs(1.0, interactive=True)).interactive
    assert not Stop("canceled", rungs(1.0)).interactive
    assert not Stop(None, ()).interactive
    assert not Stop(None, (Rung(TERM, 1.0), Rung(INT, 1.0))).interactive


def test_an_empty_ladder_is_exhausted_at_once(clock: FakeClock) -> None:
    stop = Stop(None, ())
    assert stop.exhausted
    target = FakeTarget(clock)
    assert climb(target, ()) is False
    assert target.signals == []


# --- climb -------------------------------------------------------------------------------------------------


def test_climbing_for_a_target_that_is_not_running_sends_nothing(clock: FakeClock) -> None:
    target = FakeTarget(clock, alive=False)
    start = clock.now
    assert climb(target, rungs(2.0)) is True
    assert target.signals == []
    assert clock.now == start


def test_a_target_that_ends_at_sigterm_gets_no_sigkill(clock: FakeClock) -> None:
    target = FakeTarget(clock, {TERM: 0.5})
    start = clock.now
    assert climb(target, rungs(2.0)) is True
    assert target.signals == [(0.0, TERM)]
    assert 0.5 <= clock.now - start <= 0.5 + POLL_INTERVAL + 1e-6  # climb returned as soon as it ended


def test_a_target_that_ignores_sigterm_gets_sigkill_after_the_grace(clock: FakeClock) -> None:
    target = FakeTarget(clock, {KILL: 0.0})
    assert climb(target, rungs(3.0)) is True
    assert target.sent == [TERM, KILL]
    assert_times(target.times, [0.0, 3.0])


def test_a_target_that_never_ends_makes_climb_give_up_after_the_last_rung(clock: FakeClock) -> None:
    target = FakeTarget(clock)
    start = clock.now
    assert climb(target, rungs(1.0)) is False
    assert target.sent == [TERM, KILL]
    assert_times(target.times, [0.0, 1.0])
    elapsed = clock.now - start
    assert 1.0 + KILL_WAIT <= elapsed <= 1.0 + KILL_WAIT + 2 * POLL_INTERVAL + 1e-6


def test_a_zero_grace_sends_sigkill_at_the_next_poll(clock: FakeClock) -> None:
    target = FakeTarget(clock, {KILL: 0.0})
    assert climb(target, rungs(0.0)) is True
    assert target.sent == [TERM, KILL]
    assert target.times == pytest.approx([0.0, POLL_INTERVAL])


def test_an_interactive_climb_sends_sigint_then_sigterm_then_sigkill(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INTERRUPT_VARIABLE, "1.0")
    target = FakeTarget(clock, {KILL: 0.0})
    assert climb(target, rungs(2.0, interactive=True)) is True
    assert target.sent == [INT, TERM, KILL]
    assert_times(target.times, [0.0, 1.0, 3.0])


def test_a_python_program_that_stops_at_sigint_gets_nothing_more(
    clock: FakeClock, no_interrupt_variable: None
) -> None:
    target = FakeTarget(clock, {INT: 0.2})
    assert climb(target, rungs(2.0, interactive=True)) is True
    assert target.signals == [(0.0, INT)]


def test_tick_runs_between_polls_and_may_end_the_target(clock: FakeClock) -> None:
    target = FakeTarget(clock)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(round(clock.now - target.began, 6))
        if len(ticks) == 3:
            target.end = clock.now

    assert climb(target, rungs(5.0), tick) is True
    assert target.sent == [TERM]
    assert ticks == pytest.approx([0.0, POLL_INTERVAL, 2 * POLL_INTERVAL])


# --- signal flags ----------------------------------------------------------------------------------------


@pytest.fixture
def flags() -> Iterator[SignalFlags]:
    """Flags whose handlers are installed in this (the main) thread, restored afterwards."""
    installed = SignalFlags()
    previous = installed.install()
    try:
        yield installed
    finally:
        SignalFlags.restore(previous)


def current_handlers() -> dict[int, Any]:
    return {signum: signal.getsignal(signum) for signum in (INT, TERM, HUP)}


def test_install_replaces_the_three_handlers_and_returns_the_old_ones() -> None:
    before = current_handlers()
    flags = SignalFlags()
    previous = flags.install()
    try:
        assert previous == before
        assert signal.getsignal(INT) == flags._on_interrupt
        assert signal.getsignal(TERM) == flags._on_stop_signal
        assert signal.getsignal(HUP) == flags._on_stop_signal
    finally:
        SignalFlags.restore(previous)
    assert current_handlers() == before


def test_sigterm_to_this_process_sets_the_stop_signal(flags: SignalFlags) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    assert (flags.stop_signal, flags.interrupts) == ("SIGTERM", 0)


def test_sighup_to_this_process_sets_the_stop_signal(flags: SignalFlags) -> None:
    os.kill(os.getpid(), signal.SIGHUP)
    assert (flags.stop_signal, flags.interrupts) == ("SIGHUP", 0)


def test_each_sigint_counts_one_interrupt(flags: SignalFlags) -> None:
    os.kill(os.getpid(), signal.SIGINT)
    assert flags.interrupts == 1
    os.kill(os.getpid(), signal.SIGINT)
    assert (flags.interrupts, flags.stop_signal) == (2, None)


def test_install_from_another_thread_installs_nothing() -> None:
    before = current_handlers()
    flags = SignalFlags()
    result: list[dict[int, Any]] = []
    thread = threading.Thread(target=lambda: result.append(flags.install()))
    thread.start()
    thread.join()
    assert result == [{}]
    assert current_handlers() == before


def press(flags: SignalFlags, times: int = 1) -> None:
    for _ in range(times):
        flags._on_interrupt(INT, None)


def test_an_interrupt_counter_reports_each_press_once() -> None:
    flags = SignalFlags()
    counter = InterruptCounter(flags)
    assert not counter.pressed()
    press(flags)
    assert counter.pressed()
    assert not counter.pressed()
    press(flags, 2)
    assert [counter.pressed() for _ in range(3)] == [True, True, False]
    assert counter.handled == 3


def test_each_counter_sees_every_press_of_the_shared_flags() -> None:
    """A pipeline's steps share their pipeline's flags: each step's supervisor acts on each press."""
    flags = SignalFlags()
    first, second = InterruptCounter(flags), InterruptCounter(flags)
    press(flags)
    assert first.pressed()
    assert second.pressed()
    assert not first.pressed()
    assert not second.pressed()
