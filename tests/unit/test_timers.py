"""The timer heap: the order expiries are applied in, stale entries dropped."""

from __future__ import annotations

import random

import pytest

from turnstile.cluster.timers import Timer, TimerKind, Timers

pytestmark = pytest.mark.unit


def test_timers_due_together_apply_holds_then_waits_then_lists_then_by_name_and_ids() -> None:
    expected = [
        Timer.hold(5, "a", token=9),
        Timer.wait(5, "a", session=1, seq=2),
        Timer.wait(5, "a", session=1, seq=3),
        Timer.wait(5, "b", session=0, seq=1),
        Timer.ttl(5, "a"),
        Timer.hold(6, "a", token=1),
    ]
    shuffled = expected[:]
    random.Random(7).shuffle(shuffled)
    timers = Timers(shuffled)
    popped = []
    while (timer := timers.pop_due(6)) is not None:
        popped.append(timer)
    assert popped == expected
    assert [t.kind for t in popped[:5]] == [TimerKind.HOLD, *[TimerKind.WAIT] * 3, TimerKind.LIST]


def test_pop_due_leaves_what_is_not_due() -> None:
    timers = Timers([Timer.ttl(10, "x")])
    assert timers.pop_due(9) is None
    assert len(timers) == 1
    assert timers.pop_due(10) == Timer.ttl(10, "x")


def test_first_live_drops_the_stale_timers_before_it() -> None:
    stale = {Timer.hold(1, "a", 1), Timer.hold(2, "a", 2)}
    timers = Timers([*stale, Timer.hold(3, "a", 3), Timer.hold(4, "a", 4)])
    assert timers.first_live(lambda t: t not in stale) == Timer.hold(3, "a", 3)
    assert len(timers) == 2
    assert Timers().first_live(lambda _t: True) is None


def test_push_compacts_once_stale_entries_outnumber_the_live_bound() -> None:
    timers = Timers()
    for due in range(1, 67):
        timers.push(Timer.ttl(due, "l"), live_bound=1, is_live=lambda t: t.due == 66)
    assert len(timers) == 66  # within 2 * 1 + 64
    timers.push(Timer.ttl(66, "l"), live_bound=1, is_live=lambda t: t.due == 66)
    assert len(timers) == 1  # the stale dropped, equal renewals collapsed to one entry
    assert timers.pop_due(100) == Timer.ttl(66, "l")
