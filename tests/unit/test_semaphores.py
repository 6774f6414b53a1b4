"""Semaphores in the state machine, case by case: each permit a hold of its own, FIFO waiters,
the limit set by every acquire, exactly-once retries."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import Driver, driver_at_version, err, events, result

from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster.commands import (
    Granted,
    NotAcquired,
    Queued,
    Released,
    WaitCancelled,
    WaiterResolved,
)
from turnstile.cluster.state import Applied
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def driver() -> Driver:
    return driver_at_version(sem.SEMAPHORES_SINCE)


def take(
    d: Driver, session: int, limit: int, *, wait_ms: int = 0, max_hold_ms: int = 0, name: str = "S"
) -> Applied:
    return d.apply(
        sem.AcquirePermit(
            d.now, session, d.next_seq(session), 0, name, limit, max_hold_ms, wait_ms, ""
        )
    )


def give_back(d: Driver, session: int, token: int) -> Applied:
    return d.apply(sem.ReleasePermit(d.now, session, d.next_seq(session), 0, "S", token))


def holders(d: Driver) -> list[int]:
    item = d.sm.semaphores.get("S")
    return [h.session for h in item.holders] if item else []


def test_up_to_limit_permits_each_with_its_own_token_then_fifo() -> None:
    d = driver()
    a, b, c, e = (d.session() for _ in range(4))
    first = result(take(d, a, 2), Granted).token
    second = result(take(d, a, 2), Granted).token  # one session may hold two permits
    assert second == first + 1 and holders(d) == [a, a]
    assert isinstance(take(d, b, 2).result, NotAcquired)
    result(take(d, b, 2, wait_ms=5_000), Queued)
    result(take(d, c, 2, wait_ms=5_000), Queued)
    # A newcomer that would find a permit free after a release still queues behind them.
    applied = give_back(d, a, first)
    assert applied.result == Released(first)
    assert [e.session for e in events(applied, WaiterResolved)] == [b]
    assert isinstance(take(d, e, 2).result, NotAcquired)
    assert holders(d) == [a, b] and [w.session for w in d.sm.semaphores["S"].waiters] == [c]


def test_raising_the_limit_grants_waiters_and_lowering_it_takes_nothing_away() -> None:
    d = driver()
    a, b, c, e = (d.session() for _ in range(4))
    result(take(d, a, 1), Granted)
    result(take(d, b, 1, wait_ms=5_000), Queued)
    result(take(d, c, 1, wait_ms=5_000), Queued)
    applied = take(d, e, 3)  # raises the limit: both waiters first, then e itself
    assert [w.session for w in events(applied, WaiterResolved)] == [b, c]
    assert holders(d) == [a, b, c] and d.sm.semaphores["S"].limit == 3
    assert isinstance(applied.result, NotAcquired)  # all three permits went to the queue
    # Lowering the limit keeps the three holders; new grants wait until fewer than one.
    assert isinstance(take(d, e, 1, wait_ms=5_000).result, Queued)
    assert holders(d) == [a, b, c]
    for session in (a, b):
        token = next(h.token for h in d.sm.semaphores["S"].holders if h.session == session)
        assert not events(give_back(d, session, token), WaiterResolved)
    token = d.sm.semaphores["S"].holders[0].token
    assert [w.session for w in events(give_back(d, c, token), WaiterResolved)] == [e]


def test_a_retried_acquire_takes_no_second_permit() -> None:
    d = driver()
    a = d.session()
    command = sem.AcquirePermit(d.now, a, d.next_seq(a), 0, "S", 2, 0, 0, "")
    first = d.apply(command)
    again = d.apply(dataclasses.replace(command, now=d.now + 10))
    assert again.result == first.result and holders(d) == [a]
    assert d.sm.permit_count == 1


def test_max_hold_and_wait_deadlines_expire_in_log_time() -> None:
    d = driver()
    a, b, c = (d.session() for _ in range(3))
    result(take(d, a, 1, max_hold_ms=500), Granted)
    result(take(d, b, 1, wait_ms=5_000), Queued)
    result(take(d, c, 1, wait_ms=300), Queued)
    timed_out = d.tick(300)
    assert [(e.session, type(e.result)) for e in events(timed_out, WaiterResolved)] == [
        (c, NotAcquired)
    ]
    handed = d.tick(500)
    assert [(e.session, type(e.result)) for e in events(handed, WaiterResolved)] == [(b, Granted)]
    assert [e.cause for e in events(handed, sem.PermitFreed)] == ["max_hold"]


def test_abandon_and_cancel_withdraw_a_wait_and_abandon_gives_a_permit_back() -> None:
    d = driver()
    a, b = d.session(), d.session()
    result(take(d, a, 1), Granted)
    result(take(d, b, 1, wait_ms=5_000), Queued)
    cancelled = d.apply(sem.CancelPermitWait(d.now, b, "S", d.last_seq(b)))
    assert cancelled.result == WaitCancelled(removed=True, released=False)
    abandoned = d.apply(sem.AbandonPermit(d.now, a, d.next_seq(a), 0, "S", 1))
    assert abandoned.result == WaitCancelled(removed=False, released=True)
    assert "S" not in d.sm.semaphores and d.sm.permit_count == d.sm.permit_waiter_count == 0


def test_the_end_of_a_session_frees_its_permits_and_grants_the_next() -> None:
    d = driver()
    a, b = d.session(), d.session()
    result(take(d, a, 1), Granted)
    result(take(d, a, 1, wait_ms=5_000), Queued)  # its own second wait is dropped first
    result(take(d, b, 1, wait_ms=5_000), Queued)
    applied = d.expire_session(a)
    granted = [e.session for e in events(applied, WaiterResolved) if isinstance(e.result, Granted)]
    assert granted == [b] and holders(d) == [b]


@pytest.mark.parametrize(("limit", "words"), [(0, "limit must be 1.."), (10**9, "limit must")])
def test_a_limit_out_of_bounds_is_refused(limit: int, words: str) -> None:
    d = driver()
    err(take(d, d.session(), limit), Reason.INVALID_ARGUMENT, words)
    assert not d.sm.semaphores


def test_a_release_by_another_session_is_not_holder() -> None:
    d = driver()
    a, b = d.session(), d.session()
    token = result(take(d, a, 2), Granted).token
    err(give_back(d, b, token), Reason.NOT_HOLDER, "holds no permit")
    assert holders(d) == [a]
