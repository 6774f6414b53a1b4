"""Acquires of several locks at once (``AcquireLocks``) in the state machine, case by case."""

from __future__ import annotations

import pytest
from helpers import Driver, driver_at_version, err, events, result

from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster.commands import (
    Abandon,
    Granted,
    LockFreed,
    LockGranted,
    NotAcquired,
    Queued,
    WaitCancelled,
    WaiterResolved,
)
from turnstile.cluster.state import Applied, StateMachine
from turnstile.cluster.timers import Timer
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def driver() -> Driver:
    return driver_at_version(sem.SEMAPHORES_SINCE)


def many(
    d: Driver, session: int, *names: str, wait_ms: int = 0, max_hold_ms: int = 0, why: str = ""
) -> Applied:
    return d.apply(
        sem.AcquireLocks(d.now, session, d.next_seq(session), 0, names, max_hold_ms, wait_ms, why)
    )


def holder(d: Driver, name: str) -> tuple[int, int] | None:
    lock = d.sm.locks.get(name)
    return (lock.holder.session, lock.holder.acquire_seq) if lock and lock.holder else None


def test_free_locks_are_all_granted_in_one_step_with_consecutive_tokens() -> None:
    d = driver()
    s = d.session()
    applied = many(d, s, "b", "a", max_hold_ms=500, why="job=1")
    granted = result(applied, sem.GrantedMany)
    assert granted == sem.GrantedMany((1, 2), 500)
    assert events(applied, LockGranted) == [LockGranted("b", s, 1), LockGranted("a", s, 2)]
    assert d.sm.locks["a"].holder.description == "job=1"  # type: ignore[union-attr]
    assert d.sm.sessions[s].held == {"a", "b"}


def test_one_lock_held_means_none_is_taken() -> None:
    d = driver()
    a, b = d.session(), d.session()
    result(d.acquire(a, "y"), Granted)
    assert isinstance(many(d, b, "x", "y").result, NotAcquired)
    assert "x" not in d.sm.locks and holder(d, "y") == (a, 1)


def test_a_queued_acquire_takes_every_lock_when_the_last_one_frees() -> None:
    d = driver()
    a, b = d.session(), d.session()
    token = result(d.acquire(a, "y"), Granted).token
    queued = result(many(d, b, "x", "y", wait_ms=5_000), Queued)
    assert queued.deadline == 5_000
    # x is free, but its head waiter waits for y: a later caller does not take it meanwhile.
    assert isinstance(d.acquire(a, "x").result, NotAcquired)
    applied = d.release(a, "y", token)
    (resolved,) = events(applied, WaiterResolved)
    assert resolved.result == sem.GrantedMany((token + 1, token + 2), 0)
    assert holder(d, "x") == holder(d, "y") == (b, 1)
    assert d.sm.waiter_count == 0


def test_callers_naming_the_same_locks_in_opposite_orders_both_finish() -> None:
    d = driver()
    a, b, c = d.session(), d.session(), d.session()
    token = result(d.acquire(a, "y"), Granted).token
    result(many(d, b, "x", "y", wait_ms=5_000), Queued)
    result(many(d, c, "y", "x", wait_ms=5_000), Queued)
    d.release(a, "y", token)
    assert holder(d, "x") == holder(d, "y") == (b, 1)
    for name in ("x", "y"):
        lock = d.sm.locks[name]
        d.release(b, name, lock.holder.token)  # type: ignore[union-attr]
    assert holder(d, "x") == holder(d, "y") == (c, 1)


def test_a_waiter_heading_one_queue_is_not_granted_past_an_earlier_waiter_of_another() -> None:
    d = driver()
    a, v, w, x = d.session(), d.session(), d.session(), d.session()
    z_token = result(d.acquire(a, "z"), Granted).token
    result(many(d, v, "m", "z", wait_ms=5_000), Queued)  # heads m, waits for z
    result(many(d, w, "l", "m", wait_ms=5_000), Queued)  # heads l, behind v on m
    # Something moves on l: x queues for it and gives up. w heads l and l and m are free,
    # but v queued for m first: w must not pass it.
    result(d.acquire(x, "l", wait_ms=100), Queued)
    d.tick(100)
    assert holder(d, "l") is None and holder(d, "m") is None
    assert [q.session for q in d.sm.locks["m"].waiters] == [v, w]
    d.release(a, "z", z_token)
    assert holder(d, "m") == holder(d, "z") == (v, 1)
    assert [q.session for q in d.sm.locks["l"].waiters] == [w]


def test_a_wait_that_runs_out_leaves_every_queue_and_hands_on_what_it_blocked() -> None:
    d = driver()
    a, b, c = d.session(), d.session(), d.session()
    result(d.acquire(a, "y"), Granted)
    result(many(d, b, "x", "y", wait_ms=300), Queued)
    result(d.acquire(c, "x", wait_ms=5_000), Queued)  # behind b, though x is free
    applied = d.tick(300)
    outcomes = {(e.session, type(e.result)) for e in events(applied, WaiterResolved)}
    assert outcomes == {(b, NotAcquired), (c, Granted)}
    assert holder(d, "x") == (c, 1) and [q.session for q in d.sm.locks["y"].waiters] == []


def test_abandon_naming_one_lock_gives_back_every_hold_of_the_acquire() -> None:
    d = driver()
    s = d.session()
    result(many(d, s, "x", "y", "z"), sem.GrantedMany)
    applied = d.apply(Abandon(d.now, s, d.next_seq(s), 0, "y", 1))
    assert applied.result == WaitCancelled(removed=False, released=True)
    assert {e.name for e in events(applied, LockFreed)} == {"x", "y", "z"}
    assert not d.sm.locks


def test_the_end_of_a_session_drops_its_waiter_from_every_queue() -> None:
    d = driver()
    a, b = d.session(), d.session()
    result(d.acquire(a, "y"), Granted)
    result(many(d, b, "x", "y", wait_ms=5_000), Queued)
    d.expire_session(b)
    assert "x" not in d.sm.locks and not d.sm.locks["y"].waiters
    assert d.sm.waiter_count == 0


@pytest.mark.parametrize(
    ("names", "words"),
    [((), "at least one lock"), (("a", "b", "a"), "'a' is named twice"), (("",), "lock name")],
)
def test_bad_names_are_refused_and_change_nothing(names: tuple[str, ...], words: str) -> None:
    d = driver()
    s = d.session()
    err(many(d, s, *names), Reason.INVALID_ARGUMENT, words)
    assert not d.sm.locks


def test_before_cluster_version_6_it_is_refused() -> None:
    d = Driver()
    s = d.session()
    err(many(d, s, "a"), Reason.FAILED_PRECONDITION, "needs cluster version 6")


def test_a_restored_waiter_for_several_locks_has_one_timer_under_its_first_lock() -> None:
    """Timers due at one instant apply by name: a restored waiter timed out under another of
    its locks could hand locks on in another order than on a replica that never restored."""
    d = driver()
    a, b = d.session(), d.session()
    result(d.acquire(a, "z"), Granted)
    result(many(d, b, "z", "a", wait_ms=300), Queued)
    restored = d.restore()

    def live(machine: StateMachine) -> list[Timer]:
        return sorted(t for t in machine._timers._heap if machine._timer_is_live(t))

    assert live(restored.sm) == live(d.sm) == [Timer.wait(300, "z", b, 1)]
