"""Locks: grant, FIFO waiters, hand-off, max-hold, extend, cancel, fencing tokens, bounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from helpers import (
    Driver,
    assert_unchanged,
    err,
    events,
    only_event,
    resolved,
    result,
)

from turnstile.cluster import views
from turnstile.cluster.commands import (
    CAUSE_FORCE_RELEASED,
    CAUSE_MAX_HOLD,
    CAUSE_RELEASED,
    CAUSE_SESSION_CLOSED,
    CAUSE_SESSION_EXPIRED,
    CAUSE_WAIT_CANCELLED,
    Acquire,
    CancelWait,
    Done,
    Err,
    Extended,
    ForceRelease,
    ForceReleased,
    Granted,
    LockFreed,
    LockGranted,
    NotAcquired,
    OpenSession,
    Queued,
    Release,
    Released,
    SessionEnded,
    WaitCancelled,
    WaiterResolved,
)
from turnstile.cluster.limits import DAY_MS, Limits
from turnstile.cluster.state import Applied, StateMachine
from turnstile.cluster.views import HolderView, LockView
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

HOLD = 1_000
WAIT = 60_000


def lock_view(d: Driver, name: str = "L") -> LockView:
    view = views.describe_lock(d.sm, name, now=d.now)
    assert not isinstance(view, Err)
    return view


def holder_view(d: Driver, name: str = "L") -> HolderView:
    holder = lock_view(d, name).holder
    assert holder is not None, f"{name} is not held"
    return holder


def holder_of(d: Driver, name: str = "L") -> tuple[int, int] | None:
    """(session, token) of the holder of ``name``, or None."""
    holder = lock_view(d, name).holder
    return None if holder is None else (holder.session, holder.token)


def waiting_on(d: Driver, name: str = "L") -> list[tuple[int, int]]:
    """(session, seq) of each waiter of ``name``, head first."""
    return [(w.session, w.seq) for w in lock_view(d, name).waiters]


def lock_names(d: Driver) -> list[str]:
    found = views.list_locks(d.sm, "", "", 0, now=d.now)
    assert not isinstance(found, Err)
    return [v.name for v in found]


# --------------------------------------------------------------------------- grant and refuse


def test_a_free_lock_is_granted_with_a_token_and_an_expiry() -> None:
    d = Driver(now=5_000)
    s = d.session()
    applied = d.acquire(s, "L", max_hold_ms=HOLD)
    assert applied.result == Granted(token=1, expires_at=5_000 + HOLD)
    assert applied.events == (LockGranted("L", s, 1),)
    assert holder_of(d) == (s, 1)
    assert lock_view(d).holder is not None
    assert holder_view(d).expires_in_ms == HOLD


def test_max_hold_zero_means_no_cap() -> None:
    d = Driver()
    s = d.session()
    granted = result(d.acquire(s, "L", max_hold_ms=0), Granted)
    assert granted.expires_at == 0
    applied = d.tick(7 * DAY_MS * 10)
    assert applied.events == ()
    assert holder_of(d) == (s, granted.token)
    assert holder_view(d).expires_in_ms == 0
    assert d.sm.next_due() is None


def test_try_lock_on_a_held_lock_is_not_acquired_and_changes_nothing() -> None:
    d = Driver()
    owner = d.session()
    other = d.session()
    token = result(d.acquire(owner, "L", max_hold_ms=HOLD), Granted).token
    before = d.dump()
    applied = d.acquire(other, "L", wait_ms=0)
    assert isinstance(applied.result, NotAcquired)
    assert applied.events == ()
    assert holder_of(d) == (owner, token)
    assert waiting_on(d) == []
    assert_unchanged(before, d, retained=(other, d.last_seq(other)))


def test_locks_are_not_reentrant_a_second_try_lock_by_the_holder_is_refused() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L"), Granted).token
    applied = d.acquire(s, "L", wait_ms=0)
    assert isinstance(applied.result, NotAcquired)
    assert holder_of(d) == (s, token)


def test_locks_are_not_reentrant_a_second_acquire_by_the_same_session_queues() -> None:
    """Two threads sharing one session exclude each other."""
    d = Driver()
    s = d.session()
    first = result(d.acquire(s, "L"), Granted)
    queued = result(d.acquire(s, "L", wait_ms=WAIT), Queued)
    second_seq = d.last_seq(s)
    assert queued == Queued(position=1, deadline=WAIT)
    assert holder_of(d) == (s, first.token)
    assert waiting_on(d) == [(s, second_seq)]
    applied = d.release(s, "L", first.token)
    assert applied.result == Released(first.token)
    (handed,) = resolved(applied)
    assert (handed.session, handed.seq) == (s, second_seq)
    assert isinstance(handed.result, Granted)
    assert handed.result.token > first.token
    assert holder_of(d) == (s, handed.result.token)


def test_the_clock_never_runs_backwards() -> None:
    d = Driver(now=1_000)
    s = d.session()
    result(d.acquire(s, "a"), Granted)
    d.at(400)  # an older now (e.g. stamped by a leader that lagged) is ignored
    granted = result(d.acquire(s, "b", max_hold_ms=HOLD), Granted)
    assert granted.expires_at == 1_000 + HOLD
    assert d.sm.clock == 1_000


# --------------------------------------------------------------------------- release


def test_release_by_the_holder_frees_and_forgets_the_lock() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L", max_hold_ms=HOLD), Granted).token
    applied = d.release(s, "L", token)
    assert applied.result == Released(token)
    assert applied.events == (LockFreed("L", s, token, CAUSE_RELEASED),)
    assert lock_names(d) == []
    assert views.validate_token(d.sm, "L", token) == (False, 0)
    # The max-hold timer of the released hold no longer fires.
    assert d.tick(HOLD * 5).events == ()
    assert d.sm.next_due() is None


@pytest.mark.parametrize("offset", [1, -1])
def test_release_with_a_wrong_token_is_not_holder_and_changes_nothing(offset: int) -> None:
    d = Driver()
    s = d.session()
    d.acquire(s, "x")  # token 1 on another lock, so token - 1 is a real token too
    token = result(d.acquire(s, "L"), Granted).token
    before = d.dump()
    applied = d.release(s, "L", token + offset)
    err(applied, Reason.NOT_HOLDER, str(token + offset), "'L'")
    assert applied.events == ()
    assert holder_of(d) == (s, token)
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))


def test_release_of_a_lock_that_is_not_held_is_not_holder() -> None:
    d = Driver()
    s = d.session()
    before = d.dump()
    err(d.release(s, "never-held", 1), Reason.NOT_HOLDER, "'never-held'", "not held")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))
    token = result(d.acquire(s, "L"), Granted).token
    result(d.release(s, "L", token), Released)
    before = d.dump()
    err(d.release(s, "L", token), Reason.NOT_HOLDER, "not held")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))


def test_release_with_a_stale_token_does_not_release_the_next_holder() -> None:
    d = Driver()
    first = d.session()
    second = d.session()
    old = result(d.acquire(first, "L"), Granted).token
    result(d.acquire(second, "L", wait_ms=WAIT), Queued)
    (handed,) = resolved(d.release(first, "L", old))
    new = handed.result
    assert isinstance(new, Granted)
    before = d.dump()
    for session in (first, second):
        applied = d.release(session, "L", old)
        err(applied, Reason.NOT_HOLDER, str(old))
        assert applied.events == ()
        assert_unchanged(before, d, retained=(session, d.last_seq(session)))
        before = d.dump()
    assert holder_of(d) == (second, new.token)


def test_release_by_another_session_with_the_holders_token_is_not_holder() -> None:
    d = Driver()
    holder = d.session()
    intruder = d.session()
    token = result(d.acquire(holder, "L"), Granted).token
    before = d.dump()
    err(d.release(intruder, "L", token), Reason.NOT_HOLDER, f"session {intruder}")
    assert holder_of(d) == (holder, token)
    assert_unchanged(before, d, retained=(intruder, d.last_seq(intruder)))


# --------------------------------------------------------------------------- hand-off


@dataclass
class HandOff:
    """One way a hold ends: how to trigger it, and what the triggering command returns."""

    cause: str
    trigger: Callable[[Driver, int, int, int], Applied]  # (driver, holder, token, bystander)
    check: Callable[[Applied, int, int], None]  # (applied, holder, token)


def _by_release(d: Driver, holder: int, token: int, bystander: int) -> Applied:
    return d.release(holder, "L", token)


def _by_tick(d: Driver, holder: int, token: int, bystander: int) -> Applied:
    return d.tick(d.now + HOLD)


def _by_later_command(d: Driver, holder: int, token: int, bystander: int) -> Applied:
    d.at(d.now + HOLD + 7)  # expiry is due before this command applies
    return d.acquire(bystander, f"other-{d.now}")


def _by_expire(d: Driver, holder: int, token: int, bystander: int) -> Applied:
    return d.expire_session(holder)


def _by_close(d: Driver, holder: int, token: int, bystander: int) -> Applied:
    return d.close_session(holder)


def _by_force(d: Driver, holder: int, token: int, bystander: int) -> Applied:
    return d.force_release("L", f"stuck {token}")


def _released(applied: Applied, holder: int, token: int) -> None:
    assert applied.result == Released(token)


def _done(applied: Applied, holder: int, token: int) -> None:
    assert applied.result == Done()


def _session_ended(cause: str) -> Callable[[Applied, int, int], None]:
    def check(applied: Applied, holder: int, token: int) -> None:
        assert applied.result == Done()
        assert only_event(applied, SessionEnded) == SessionEnded(holder, cause)

    return check


def _bystander_granted(applied: Applied, holder: int, token: int) -> None:
    assert isinstance(applied.result, Granted)
    assert applied.result.token > token


def _force_released(applied: Applied, holder: int, token: int) -> None:
    assert applied.result == ForceReleased(holder, token)
    assert only_event(applied, LockFreed).detail == f"stuck {token}"


HAND_OFFS = {
    "release": HandOff(CAUSE_RELEASED, _by_release, _released),
    "max_hold_tick": HandOff(CAUSE_MAX_HOLD, _by_tick, _done),
    "max_hold_later_command": HandOff(CAUSE_MAX_HOLD, _by_later_command, _bystander_granted),
    "expire_session": HandOff(
        CAUSE_SESSION_EXPIRED, _by_expire, _session_ended(CAUSE_SESSION_EXPIRED)
    ),
    "close_session": HandOff(CAUSE_SESSION_CLOSED, _by_close, _session_ended(CAUSE_SESSION_CLOSED)),
    "force_release": HandOff(CAUSE_FORCE_RELEASED, _by_force, _force_released),
}


@pytest.mark.parametrize("way", list(HAND_OFFS))
def test_a_hold_that_ends_is_handed_to_the_head_waiter_in_fifo_order(way: str) -> None:
    hand_off = HAND_OFFS[way]
    d = Driver(now=10_000)
    bystander = d.session(name="bystander")
    holder = d.session(name="holder")
    token = result(d.acquire(holder, "L", max_hold_ms=HOLD), Granted).token
    waiters: list[tuple[int, int]] = []
    for position in (1, 2, 3):
        s = d.session(name=f"waiter-{position}")
        queued = d.acquire(s, "L", max_hold_ms=HOLD, wait_ms=WAIT)
        assert queued.result == Queued(position=position, deadline=d.now + WAIT)
        assert queued.events == ()
        waiters.append((s, d.last_seq(s)))
    assert waiting_on(d) == waiters

    for index, (next_session, next_seq) in enumerate(waiters):
        applied = hand_off.trigger(d, holder, token, bystander)
        hand_off.check(applied, holder, token)
        freed = only_event(applied, LockFreed)
        assert (freed.name, freed.session, freed.token, freed.cause) == (
            "L",
            holder,
            token,
            hand_off.cause,
        )
        (handed,) = [r for r in resolved(applied) if r.name == "L"]
        assert (handed.session, handed.seq) == (next_session, next_seq)
        assert isinstance(handed.result, Granted)
        assert handed.result.token > token
        assert handed.result.expires_at == d.sm.clock + HOLD
        # The hold ends before the grant is announced, in the same step.
        assert applied.events.index(freed) < applied.events.index(handed)
        holder, token = next_session, handed.result.token
        assert holder_of(d) == (holder, token)
        assert waiting_on(d) == waiters[index + 1 :]
        # A retry of the granted acquire now answers with the grant.
        retry = d.acquire(holder, "L", max_hold_ms=HOLD, wait_ms=WAIT, seq=next_seq)
        assert retry.result == handed.result
        assert retry.events == ()

    # No waiter left: the last hold ends without a grant and the lock is forgotten.
    applied = hand_off.trigger(d, holder, token, bystander)
    assert only_event(applied, LockFreed).token == token
    assert [r for r in resolved(applied) if r.name == "L"] == []
    assert "L" not in lock_names(d)


def test_a_max_hold_expires_exactly_at_its_expiry_time() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L", max_hold_ms=HOLD), Granted).token
    assert d.sm.next_due() == HOLD
    assert d.tick(HOLD - 1).events == ()
    assert holder_of(d) == (s, token)
    applied = d.tick(HOLD)
    assert applied.events == (LockFreed("L", s, token, CAUSE_MAX_HOLD),)
    assert lock_names(d) == []
    err(d.release(s, "L", token), Reason.NOT_HOLDER)


def test_force_release_of_a_lock_that_is_not_held_is_not_found_and_changes_nothing() -> None:
    d = Driver()
    d.session()
    before = d.dump()
    err(d.force_release("nobody"), Reason.NOT_FOUND, "'nobody'")
    assert_unchanged(before, d)


def test_force_release_reason_is_bounded() -> None:
    d = Driver(Limits(max_reason_bytes=4))
    s = d.session()
    token = result(d.acquire(s, "L"), Granted).token
    before = d.dump()
    err(d.force_release("L", "12345"), Reason.INVALID_ARGUMENT, "max_reason_bytes=4")
    assert_unchanged(before, d)
    assert result(d.force_release("L", "1234"), ForceReleased) == ForceReleased(s, token)


# --------------------------------------------------------------------------- waiter deadlines


def test_a_waiter_whose_deadline_passes_gets_not_acquired_and_leaves_the_queue() -> None:
    d = Driver()
    owner = d.session()
    waiter = d.session()
    token = result(d.acquire(owner, "L", max_hold_ms=0), Granted).token
    assert d.acquire(waiter, "L", wait_ms=500).result == Queued(position=1, deadline=500)
    seq = d.last_seq(waiter)
    assert d.sm.next_due() == 500
    assert d.tick(499).events == ()
    assert waiting_on(d) == [(waiter, seq)]

    applied = d.tick(500)
    (event,) = applied.events
    assert isinstance(event, WaiterResolved)
    assert (event.session, event.seq, event.name) == (waiter, seq, "L")
    assert isinstance(event.result, NotAcquired)
    assert waiting_on(d) == []
    assert views.counts(d.sm).waiters == 0
    waiter_view = views.session_view(d.sm, waiter, now=500)
    assert waiter_view is not None
    assert waiter_view.waiting == ()
    # A retry of the acquire answers with the timeout, and does not queue again.
    retry = d.acquire(waiter, "L", wait_ms=500, seq=seq)
    assert retry.result == event.result
    assert waiting_on(d) == []
    # The holder's release hands nothing to anyone; the idle lock is forgotten.
    applied = d.release(owner, "L", token)
    assert resolved(applied) == []
    assert lock_names(d) == []


def test_a_waiter_deadline_in_the_middle_of_the_queue_keeps_fifo_order() -> None:
    d = Driver()
    owner = d.session()
    w1, w2, w3 = d.session(), d.session(), d.session()
    token = result(d.acquire(owner, "L"), Granted).token
    result(d.acquire(w1, "L", wait_ms=1_000), Queued)
    result(d.acquire(w2, "L", wait_ms=100), Queued)
    result(d.acquire(w3, "L", wait_ms=1_000), Queued)
    applied = d.tick(100)
    assert [(r.session, type(r.result)) for r in resolved(applied)] == [(w2, NotAcquired)]
    assert [s for s, _ in waiting_on(d)] == [w1, w3]
    (handed,) = resolved(d.release(owner, "L", token))
    assert handed.session == w1


def test_waiters_timing_out_together_are_resolved_in_deadline_order() -> None:
    d = Driver()
    owner = d.session()
    result(d.acquire(owner, "b"), Granted)
    result(d.acquire(owner, "a"), Granted)
    w1, w2 = d.session(), d.session()
    result(d.acquire(w1, "b", wait_ms=300), Queued)
    result(d.acquire(w2, "a", wait_ms=200), Queued)
    result(d.acquire(w2, "b", wait_ms=300), Queued)
    applied = d.tick(10_000)
    assert [(r.name, r.session) for r in resolved(applied)] == [("a", w2), ("b", w1), ("b", w2)]
    assert lock_names(d) == ["a", "b"]  # still held, no waiters


def test_a_hold_expiring_at_a_waiters_deadline_is_handed_to_that_waiter() -> None:
    """Documented order at one instant: hold expiries before waiter deadlines."""
    d = Driver()
    owner = d.session()
    waiter = d.session()
    result(d.acquire(owner, "L", max_hold_ms=500), Granted)
    result(d.acquire(waiter, "L", wait_ms=500), Queued)
    applied = d.tick(500)
    (handed,) = resolved(applied)
    assert handed.session == waiter
    assert isinstance(handed.result, Granted)


def test_a_waiter_whose_deadline_passed_is_not_granted_by_a_later_expiry() -> None:
    d = Driver()
    owner = d.session()
    early, late = d.session(), d.session()
    result(d.acquire(owner, "L", max_hold_ms=500), Granted)
    result(d.acquire(early, "L", wait_ms=300), Queued)
    result(d.acquire(late, "L", wait_ms=800), Queued)
    # One jump over all three due times: applied in due-time order, not all at once.
    applied = d.tick(2_000)
    outcomes = [(r.session, type(r.result)) for r in resolved(applied)]
    assert outcomes == [(early, NotAcquired), (late, Granted)]
    assert holder_view(d).session == late


# --------------------------------------------------------------------------- cancel_wait


def test_cancel_wait_removes_a_queued_waiter() -> None:
    d = Driver()
    owner = d.session()
    w1, w2, w3 = d.session(), d.session(), d.session()
    token = result(d.acquire(owner, "L"), Granted).token
    for s in (w1, w2, w3):
        result(d.acquire(s, "L", wait_ms=WAIT), Queued)
    w2_seq = d.last_seq(w2)

    applied = d.cancel_wait(w2, "L", w2_seq)
    assert applied.result == WaitCancelled(removed=True, released=False)
    (event,) = applied.events
    assert isinstance(event, WaiterResolved)
    assert (event.session, event.seq) == (w2, w2_seq)
    assert isinstance(event.result, NotAcquired)
    assert [s for s, _ in waiting_on(d)] == [w1, w3]
    assert holder_of(d) == (owner, token)
    # A retry of the cancelled acquire is told no; it does not queue again.
    assert isinstance(d.acquire(w2, "L", wait_ms=WAIT, seq=w2_seq).result, NotAcquired)
    assert [s for s, _ in waiting_on(d)] == [w1, w3]
    # Its deadline no longer fires.
    assert [r.session for r in resolved(d.tick(WAIT))] == [w1, w3]


def test_cancel_wait_after_the_grant_raced_in_releases_and_hands_to_the_next_waiter() -> None:
    d = Driver()
    owner = d.session()
    racer = d.session()
    nxt = d.session()
    token = result(d.acquire(owner, "L"), Granted).token
    result(d.acquire(racer, "L", max_hold_ms=HOLD, wait_ms=WAIT), Queued)
    racer_seq = d.last_seq(racer)
    result(d.acquire(nxt, "L", wait_ms=WAIT), Queued)
    nxt_seq = d.last_seq(nxt)
    (raced,) = resolved(d.release(owner, "L", token))
    assert raced.session == racer
    assert isinstance(raced.result, Granted)
    racer_token = raced.result.token

    # The racer's RPC gave up before it heard of the grant.
    applied = d.cancel_wait(racer, "L", racer_seq)
    assert applied.result == WaitCancelled(removed=False, released=True)
    freed = only_event(applied, LockFreed)
    assert freed == LockFreed("L", racer, racer_token, CAUSE_WAIT_CANCELLED)
    (handed,) = resolved(applied)
    assert (handed.session, handed.seq) == (nxt, nxt_seq)
    assert isinstance(handed.result, Granted)
    assert handed.result.token > racer_token
    assert holder_of(d) == (nxt, handed.result.token)
    assert views.validate_token(d.sm, "L", racer_token) == (False, handed.result.token)
    # A retry of the cancelled acquire is told no, not the stale grant.
    retry = d.acquire(racer, "L", max_hold_ms=HOLD, wait_ms=WAIT, seq=racer_seq)
    assert isinstance(retry.result, NotAcquired)
    assert retry.events == ()
    assert holder_of(d) == (nxt, handed.result.token)
    # The racer's (released) max-hold does not fire later.
    assert events(d.tick(HOLD * 2), LockFreed) == []


def test_cancel_wait_of_an_acquire_granted_at_once_releases_it() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L", wait_ms=WAIT), Granted).token
    acquire_seq = d.last_seq(s)
    applied = d.cancel_wait(s, "L", acquire_seq)
    assert applied.result == WaitCancelled(removed=False, released=True)
    assert applied.events == (LockFreed("L", s, token, CAUSE_WAIT_CANCELLED),)
    assert lock_names(d) == []


def test_cancel_wait_does_not_touch_a_hold_from_another_acquire_of_the_same_session() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L"), Granted).token
    held_seq = d.last_seq(s)
    result(d.acquire(s, "L", wait_ms=0), NotAcquired)
    refused_seq = d.last_seq(s)
    before = d.dump()
    applied = d.cancel_wait(s, "L", refused_seq)
    assert applied.result == WaitCancelled(removed=False, released=False)
    assert applied.events == ()
    assert holder_of(d) == (s, token)
    assert_unchanged(before, d)
    # Another session cannot cancel-release it by naming the holder's acquire seq.
    other = d.session()
    assert d.cancel_wait(other, "L", held_seq).result == WaitCancelled(False, False)
    assert holder_of(d) == (s, token)


def test_cancel_wait_on_an_unknown_lock_is_a_no_op() -> None:
    d = Driver()
    s = d.session()
    before = d.dump()
    assert d.cancel_wait(s, "nothing", 1).result == WaitCancelled(removed=False, released=False)
    assert_unchanged(before, d)


def test_cancel_wait_for_an_unknown_session_is_session_expired() -> None:
    d = Driver()
    s = d.session()
    result(d.acquire(s, "L"), Granted)
    before = d.dump()
    err(d.cancel_wait(99, "L", 1), Reason.SESSION_EXPIRED, "99")
    assert_unchanged(before, d)


def test_cancel_wait_applied_twice_changes_nothing_more_than_once() -> None:
    """CancelWait has no seq of its own: the leader may propose it again for the same acquire."""
    d = Driver()
    owner = d.session()
    racer = d.session()
    nxt = d.session()
    token = result(d.acquire(owner, "L"), Granted).token
    result(d.acquire(racer, "L", wait_ms=WAIT), Queued)
    racer_seq = d.last_seq(racer)
    result(d.acquire(nxt, "L", wait_ms=WAIT), Queued)
    result(d.release(owner, "L", token), Released)  # granted to racer
    first = d.cancel_wait(racer, "L", racer_seq)
    assert first.result == WaitCancelled(removed=False, released=True)
    (handed,) = resolved(first)
    assert isinstance(handed.result, Granted)
    before = d.dump()
    again = d.cancel_wait(racer, "L", racer_seq)
    assert again.result == WaitCancelled(removed=False, released=False)
    assert again.events == ()
    assert_unchanged(before, d)
    assert holder_of(d) == (nxt, handed.result.token)
    # Also once the racer holds the lock again through a newer acquire.
    result(d.release(nxt, "L", handed.result.token), Released)
    again_token = result(d.acquire(racer, "L"), Granted).token
    before = d.dump()
    assert d.cancel_wait(racer, "L", racer_seq).result == WaitCancelled(False, False)
    assert_unchanged(before, d)
    assert holder_of(d) == (racer, again_token)


# --------------------------------------------------------------------------- extend


def test_extend_moves_the_expiry_and_the_old_expiry_no_longer_fires() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L", max_hold_ms=HOLD), Granted).token
    d.at(500)
    applied = d.extend(s, "L", token, 2_000)
    assert applied.result == Extended(expires_at=2_500)
    assert applied.events == ()
    assert d.tick(HOLD).events == ()
    assert holder_of(d) == (s, token)
    assert holder_view(d).expires_in_ms == 1_500
    assert d.tick(2_499).events == ()
    assert d.tick(2_500).events == (LockFreed("L", s, token, CAUSE_MAX_HOLD),)


def test_extend_can_shorten_the_hold() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L", max_hold_ms=HOLD), Granted).token
    d.at(100)
    assert d.extend(s, "L", token, 200).result == Extended(expires_at=300)
    assert d.tick(300).events == (LockFreed("L", s, token, CAUSE_MAX_HOLD),)


def test_extend_with_zero_removes_the_cap() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L", max_hold_ms=HOLD), Granted).token
    assert d.extend(s, "L", token, 0).result == Extended(expires_at=0)
    assert d.tick(HOLD * 1_000).events == ()
    assert holder_of(d) == (s, token)
    # And a cap can be put back.
    d.at(HOLD * 1_000)
    assert d.extend(s, "L", token, 50).result == Extended(expires_at=HOLD * 1_000 + 50)
    assert events(d.tick(HOLD * 1_000 + 50), LockFreed) != []


def test_extend_with_a_stale_token_is_not_holder_and_changes_nothing() -> None:
    d = Driver()
    s = d.session()
    old = result(d.acquire(s, "L", max_hold_ms=HOLD), Granted).token
    result(d.release(s, "L", old), Released)
    new = result(d.acquire(s, "L", max_hold_ms=HOLD), Granted).token
    before = d.dump()
    err(d.extend(s, "L", old, 5_000), Reason.NOT_HOLDER, str(old))
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))
    assert d.tick(HOLD).events == (LockFreed("L", s, new, CAUSE_MAX_HOLD),)


def test_extend_after_the_hold_expired_is_not_holder() -> None:
    d = Driver()
    s = d.session()
    token = result(d.acquire(s, "L", max_hold_ms=HOLD), Granted).token
    d.at(HOLD)
    applied = d.extend(s, "L", token, HOLD)
    err(applied, Reason.NOT_HOLDER)
    assert applied.events == (LockFreed("L", s, token, CAUSE_MAX_HOLD),)


def test_extend_by_another_session_with_the_holders_token_is_not_holder() -> None:
    d = Driver()
    holder = d.session()
    intruder = d.session()
    token = result(d.acquire(holder, "L", max_hold_ms=HOLD), Granted).token
    before = d.dump()
    err(d.extend(intruder, "L", token, 0), Reason.NOT_HOLDER)
    assert_unchanged(before, d, retained=(intruder, d.last_seq(intruder)))


# --------------------------------------------------------------------------- fencing


def test_validate_token_with_current_stale_and_no_token() -> None:
    d = Driver()
    a = d.session()
    b = d.session()
    assert views.validate_token(d.sm, "L", 0) == (False, 0)
    assert views.validate_token(d.sm, "L", 1) == (False, 0)
    old = result(d.acquire(a, "L"), Granted).token
    assert views.validate_token(d.sm, "L", old) == (True, old)
    assert views.validate_token(d.sm, "L", old + 1) == (False, old)
    result(d.acquire(b, "L", wait_ms=WAIT), Queued)
    (handed,) = resolved(d.release(a, "L", old))
    new = handed.result
    assert isinstance(new, Granted)
    assert views.validate_token(d.sm, "L", old) == (False, new.token)
    assert views.validate_token(d.sm, "L", new.token) == (True, new.token)
    refused = views.validate_token(d.sm, "", 1)
    assert isinstance(refused, Err)
    assert refused.reason is Reason.INVALID_ARGUMENT


def test_fencing_tokens_strictly_increase_per_lock_across_every_way_a_hold_ends() -> None:
    d = Driver()
    tokens: list[int] = []

    def take(session: int, *, max_hold_ms: int = 0) -> int:
        token = result(d.acquire(session, "L", max_hold_ms=max_hold_ms), Granted).token
        tokens.append(token)
        return token

    s = d.session()
    result(d.release(s, "L", take(s)), Released)
    take(s, max_hold_ms=HOLD)
    d.tick(d.now + HOLD)  # max-hold
    take(s)
    result(d.force_release("L"), ForceReleased)
    take(s)
    result(d.expire_session(s), Done)
    s = d.session()
    take(s)
    result(d.close_session(s), Done)
    s = d.session()
    t = result(d.acquire(s, "L", wait_ms=WAIT), Granted).token
    tokens.append(t)
    result(d.cancel_wait(s, "L", d.last_seq(s)), WaitCancelled)
    other = d.session()
    result(d.acquire(other, "other-lock"), Granted)  # tokens of other locks interleave
    take(s)
    assert tokens == sorted(set(tokens))
    assert len(tokens) == 7


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("", "must not be empty"),
        ("a" * 9, "max_name_bytes=8"),
        ("é" * 5, "10 bytes"),  # 5 characters, 10 bytes: bytes count, not characters
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("\x1f", "control character"),
        ("del\x7f", "control character"),
    ],
)
def test_a_bad_lock_name_is_invalid_argument_and_changes_nothing(name: str, detail: str) -> None:
    d = Driver(Limits(max_name_bytes=8))
    s = d.session()
    result(d.acquire(s, "held"), Granted)
    before = d.dump()
    attempts: list[Callable[[], Applied]] = [
        lambda: d.acquire(s, name, wait_ms=WAIT),
        lambda: d.release(s, name, 1),
        lambda: d.extend(s, name, 1, 0),
    ]
    for attempt in attempts:
        applied = attempt()
        err(applied, Reason.INVALID_ARGUMENT, "lock name", detail)
        assert applied.events == ()
        assert_unchanged(before, d, retained=(s, d.last_seq(s)))
        before = d.dump()
    err(d.cancel_wait(s, name, 1), Reason.INVALID_ARGUMENT, "lock name", detail)
    assert_unchanged(before, d)
    err(d.force_release(name), Reason.INVALID_ARGUMENT, detail)
    assert_unchanged(before, d)
    view = views.describe_lock(d.sm, name, now=0)
    assert isinstance(view, Err)
    assert view.reason is Reason.INVALID_ARGUMENT


@pytest.mark.parametrize("name", ["a" * 8, "éééé", "a b/c:d.", "ünicöd"])
def test_a_lock_name_of_up_to_the_bound_in_bytes_is_accepted(name: str) -> None:
    assert len(name.encode()) <= 8
    d = Driver(Limits(max_name_bytes=8))
    s = d.session()
    result(d.acquire(s, name), Granted)
    assert lock_names(d) == [name]


@pytest.mark.parametrize("name", ["a\x85b", "\x80", "x\x9f"])
def test_a_lock_name_with_a_c1_control_character_is_invalid(name: str) -> None:
    d = Driver()
    s = d.session()
    before = d.dump()
    err(d.acquire(s, name), Reason.INVALID_ARGUMENT, "control character")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))


@pytest.mark.parametrize("name", ["bad\ud800", "\udfff"])
def test_a_lock_name_that_is_not_valid_unicode_is_refused_and_dump_still_works(
    name: str,
) -> None:
    """A lone surrogate cannot be encoded: accepting it would make the state unsnapshottable."""
    d = Driver()
    s = d.session()
    before = d.dump()
    applied = d.acquire(s, name)
    err(applied, Reason.INVALID_ARGUMENT, "lock name", "UTF-8")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))


@pytest.mark.parametrize("field", ["max_hold_ms", "wait_ms"])
def test_a_duration_over_the_bound_is_invalid_argument(field: str) -> None:
    d = Driver(Limits(max_duration_ms=1_000))
    s = d.session()
    before = d.dump()
    kwargs = {"max_hold_ms": 0, "wait_ms": 0, field: 1_001}
    err(d.acquire(s, "L", **kwargs), Reason.INVALID_ARGUMENT, field, "max_duration_ms=1000")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))
    token = result(d.acquire(s, "L", max_hold_ms=1_000), Granted).token
    before = d.dump()
    err(d.extend(s, "L", token, 1_001), Reason.INVALID_ARGUMENT, "max_duration_ms=1000")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))


@pytest.mark.parametrize("field", ["max_hold_ms", "wait_ms"])
def test_a_negative_duration_is_invalid_argument(field: str) -> None:
    d = Driver()
    s = d.session()
    before = d.dump()
    values = {"max_hold_ms": 0, "wait_ms": 0, field: -1}
    command = Acquire(0, s, 1, 0, "L", values["max_hold_ms"], values["wait_ms"])
    err(d.apply(command), Reason.INVALID_ARGUMENT, field)
    assert_unchanged(before, d, retained=(s, 1))


def test_too_many_waiters_is_limit_exceeded_and_changes_nothing() -> None:
    d = Driver(Limits(max_waiters_per_lock=2))
    owner = d.session()
    result(d.acquire(owner, "L"), Granted)
    w1, w2, w3 = d.session(), d.session(), d.session()
    result(d.acquire(w1, "L", wait_ms=WAIT), Queued)
    result(d.acquire(w2, "L", wait_ms=WAIT), Queued)
    before = d.dump()
    applied = d.acquire(w3, "L", wait_ms=WAIT)
    err(applied, Reason.LIMIT_EXCEEDED, "max_waiters_per_lock=2", "'L'")
    assert applied.events == ()
    assert_unchanged(before, d, retained=(w3, d.last_seq(w3)))
    assert [s for s, _ in waiting_on(d)] == [w1, w2]
    # A try-lock is still just "not acquired".
    assert isinstance(d.acquire(w3, "L", wait_ms=0).result, NotAcquired)


def test_too_many_locks_is_limit_exceeded_but_existing_locks_still_work() -> None:
    d = Driver(Limits(max_locks=2))
    a = d.session()
    b = d.session()
    result(d.acquire(a, "x"), Granted)
    result(d.acquire(a, "y"), Granted)
    before = d.dump()
    err(d.acquire(b, "z"), Reason.LIMIT_EXCEEDED, "max_locks=2")
    assert_unchanged(before, d, retained=(b, d.last_seq(b)))
    assert lock_names(d) == ["x", "y"]
    result(d.acquire(b, "x", wait_ms=WAIT), Queued)
    # A lock that is freed and forgotten makes room.
    token_y = holder_view(d, "y").token
    result(d.release(a, "y", token_y), Released)
    result(d.acquire(b, "z"), Granted)


def test_describe_lock_reports_holder_and_waiters_in_order() -> None:
    d = Driver(now=1_000)
    owner = d.session(name="owner")
    w1 = d.session(name="w1")
    w2 = d.session(name="w2")
    token = result(d.acquire(owner, "L", max_hold_ms=HOLD), Granted).token
    d.at(1_100)
    result(d.acquire(w1, "L", wait_ms=500), Queued)
    result(d.acquire(w2, "L", wait_ms=900), Queued)
    view = views.describe_lock(d.sm, "L", now=1_200)
    assert not isinstance(view, Err)
    assert view.holder is not None
    assert (view.holder.session, view.holder.token, view.holder.client_name) == (
        owner,
        token,
        "owner",
    )
    assert (view.holder.held_for_ms, view.holder.expires_in_ms) == (200, 800)
    assert [(w.session, w.waited_for_ms, w.wait_remaining_ms) for w in view.waiters] == [
        (w1, 100, 400),
        (w2, 100, 800),
    ]
    free = views.describe_lock(d.sm, "free", now=0)
    assert free == LockView("free", None, ())


def test_cancel_after_a_disconnect_drops_the_waiter_but_never_a_grant() -> None:
    """The caller's connection broke: it may retry the same request, so a grant stays."""
    state = StateMachine()
    state.apply(OpenSession(1, 60_000, "w", "h", 1))
    state.apply(OpenSession(1, 60_000, "w", "h", 2))
    first = state.apply(Acquire(2, 1, 1, 0, "L", 0, 0)).result
    assert isinstance(first, Granted)
    assert isinstance(state.apply(Acquire(3, 2, 1, 0, "L", 0, 60_000)).result, Queued)
    state.apply(Release(4, 1, 2, 1, "L", first.token))
    late = state.apply(CancelWait(5, 2, "L", 1, release_grant=False)).result
    assert late == WaitCancelled(removed=False, released=False)
    assert state.locks["L"].holder is not None and state.locks["L"].holder.session == 2
    retried = state.apply(Acquire(6, 2, 1, 0, "L", 0, 60_000)).result
    assert isinstance(retried, Granted), "the retry still gets its grant"


def test_force_release_with_a_token_takes_only_that_hold() -> None:
    """A retried force-release must not take the lock from the waiter it was handed to."""
    state = StateMachine()
    state.apply(OpenSession(1, 60_000, "w", "h", 1))
    state.apply(OpenSession(1, 60_000, "w", "h", 2))
    stuck = state.apply(Acquire(2, 1, 1, 0, "L", 0, 0)).result
    assert isinstance(stuck, Granted)
    state.apply(Acquire(3, 2, 1, 0, "L", 0, 60_000))
    assert isinstance(state.apply(ForceRelease(4, "L", "hung", stuck.token)).result, ForceReleased)
    retry = state.apply(ForceRelease(5, "L", "hung", stuck.token)).result
    assert isinstance(retry, Err) and retry.reason is Reason.NOT_HOLDER
    assert state.locks["L"].holder is not None and state.locks["L"].holder.session == 2
