"""Exactly-once: a retried (session, seq) returns its first result and is applied once."""

from __future__ import annotations

import pytest
from helpers import Driver, assert_unchanged, err, resolved, result, snapshot_doc

from turnstile.cluster import views
from turnstile.cluster.commands import (
    Acquire,
    Err,
    Granted,
    Insert,
    Inserted,
    ListSetUp,
    NotAcquired,
    OpenSession,
    Queued,
    Released,
    SetUpList,
    TornDown,
)
from turnstile.cluster.limits import Limits
from turnstile.cluster.state import StateMachine
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def list_size(d: Driver, name: str = "runs") -> int:
    found = views.list_view(d.sm, name, now=d.now)
    assert not isinstance(found, Err)
    return found.size


def test_a_retried_insert_returns_its_first_result_and_is_not_applied_twice() -> None:
    d = Driver()
    s = d.session()
    result(d.set_up(s, "runs"), ListSetUp)
    first = d.insert(s, "runs", b"a", b"b")
    seq = d.last_seq(s)
    assert first.result == Inserted(((True, 1), (True, 2)))
    before = d.dump()
    retry = d.insert(s, "runs", b"a", b"b", seq=seq)
    # "added" stays True: the retry reports what the first attempt did.
    assert retry.result == first.result
    assert retry.events == ()
    assert list_size(d) == 2
    assert d.dump() == before
    # A new request for the same members is a duplicate, not a retry.
    assert d.insert(s, "runs", b"a", b"b").result == Inserted(((False, 1), (False, 2)))


def test_a_retry_returns_the_first_result_even_if_the_command_differs() -> None:
    """The (session, seq) identifies the request; its body is not looked at again."""
    d = Driver()
    s = d.session()
    result(d.set_up(s, "runs"), ListSetUp)
    first = d.insert(s, "runs", b"a")
    seq = d.last_seq(s)
    assert d.insert(s, "runs", b"zzz", seq=seq).result == first.result
    assert views.contains(d.sm, "runs", (b"zzz",)) == [0]


def test_a_retried_acquire_after_the_grant_returns_the_same_token() -> None:
    d = Driver()
    s = d.session()
    first = result(d.acquire(s, "L", max_hold_ms=1_000), Granted)
    seq = d.last_seq(s)
    d.at(300)
    retry = d.acquire(s, "L", max_hold_ms=1_000, seq=seq)
    assert retry.result == first
    assert retry.events == ()
    assert views.validate_token(d.sm, "L", first.token) == (True, first.token)
    # Not granted again: the next grant anywhere is the very next token.
    other = d.session()
    assert result(d.acquire(other, "M"), Granted).token == first.token + 1


def test_a_retried_queued_acquire_is_queued_once() -> None:
    d = Driver()
    owner = d.session()
    waiter = d.session()
    result(d.acquire(owner, "L"), Granted)
    first = result(d.acquire(waiter, "L", wait_ms=5_000), Queued)
    seq = d.last_seq(waiter)
    retry = d.acquire(waiter, "L", wait_ms=5_000, seq=seq)
    assert retry.result == first
    view = views.describe_lock(d.sm, "L", now=0)
    assert not isinstance(view, Err)
    assert [(w.session, w.seq) for w in view.waiters] == [(waiter, seq)]
    assert views.counts(d.sm).waiters == 1


def test_a_queued_acquire_retried_after_its_grant_returns_the_grant() -> None:
    d = Driver()
    owner = d.session()
    waiter = d.session()
    token = result(d.acquire(owner, "L"), Granted).token
    result(d.acquire(waiter, "L", max_hold_ms=2_000, wait_ms=5_000), Queued)
    seq = d.last_seq(waiter)
    d.at(100)
    (event,) = resolved(d.release(owner, "L", token))
    assert isinstance(event.result, Granted)
    assert event.result.expires_at == 2_100
    d.at(200)
    retry = d.acquire(waiter, "L", max_hold_ms=2_000, wait_ms=5_000, seq=seq)
    assert retry.result == event.result
    assert retry.events == ()


def test_a_queued_acquire_retried_after_its_timeout_returns_not_acquired() -> None:
    d = Driver()
    owner = d.session()
    waiter = d.session()
    result(d.acquire(owner, "L"), Granted)
    result(d.acquire(waiter, "L", wait_ms=100), Queued)
    seq = d.last_seq(waiter)
    d.tick(100)
    retry = d.acquire(waiter, "L", wait_ms=100, seq=seq)
    assert isinstance(retry.result, NotAcquired)
    view = views.describe_lock(d.sm, "L", now=100)
    assert not isinstance(view, Err)
    assert view.waiters == ()


def test_a_retried_release_does_not_release_the_next_holder() -> None:
    d = Driver()
    first = d.session()
    second = d.session()
    token = result(d.acquire(first, "L"), Granted).token
    result(d.acquire(second, "L", wait_ms=5_000), Queued)
    released = d.release(first, "L", token)
    seq = d.last_seq(first)
    (handed,) = resolved(released)
    assert isinstance(handed.result, Granted)
    retry = d.release(first, "L", token, seq=seq)
    assert retry.result == Released(token)
    assert retry.events == ()
    assert views.validate_token(d.sm, "L", handed.result.token) == (True, handed.result.token)


def test_retried_set_up_and_tear_down_are_applied_once() -> None:
    d = Driver()
    s = d.session()
    created = d.set_up(s, "runs", 1_000)
    set_up_seq = d.last_seq(s)
    torn = d.tear_down(s, "runs")
    tear_seq = d.last_seq(s)
    assert torn.result == TornDown(removed=True)
    # A late retry of the set-up does not bring the list back.
    assert d.set_up(s, "runs", 1_000, seq=set_up_seq).result == created.result
    gone = views.list_view(d.sm, "runs", now=0)
    assert isinstance(gone, Err)
    assert gone.reason is Reason.NOT_FOUND
    assert d.tear_down(s, "runs", seq=tear_seq).result == TornDown(removed=True)


def test_a_refused_request_is_remembered_too() -> None:
    """The first answer stands: a retry after the cause went away still gets the Err."""
    d = Driver()
    s = d.session()
    refused = err(d.insert(s, "runs", b"a"), Reason.NOT_FOUND)
    seq = d.last_seq(s)
    result(d.set_up(s, "runs"), ListSetUp)
    assert d.insert(s, "runs", b"a", seq=seq).result == refused
    assert list_size(d) == 0


def test_sequence_numbers_are_per_session() -> None:
    d = Driver()
    a = d.session()
    b = d.session()
    result(d.set_up(a, "runs"), ListSetUp)
    assert d.insert(a, "runs", b"x", seq=5).result == Inserted(((True, 1),))
    assert d.insert(b, "runs", b"y", seq=5).result == Inserted(((True, 2),))


# --------------------------------------------------------------------------- acked


def test_acked_prunes_retained_results_and_a_pruned_seq_is_refused() -> None:
    d = Driver()
    s = d.session()
    result(d.set_up(s, "runs"), ListSetUp)  # seq 1
    result(d.insert(s, "runs", b"a"), Inserted)  # seq 2
    result(d.insert(s, "runs", b"b"), Inserted)  # seq 3
    # seq 4 acknowledges 1..2: their results are forgotten, 3's is kept.
    assert d.insert(s, "runs", b"c", acked=2).result == Inserted(((True, 3),))
    (session_entry,) = snapshot_doc(d.dump())["sessions"]
    assert [seq for seq, _ in session_entry[7]] == [3, 4]
    assert session_entry[6] == 2
    # A retry of a pruned request is refused, not applied again.
    before = d.dump()
    err(d.insert(s, "runs", b"a", seq=2), Reason.INVALID_ARGUMENT, "already acknowledged")
    err(d.insert(s, "runs", b"a", seq=1), Reason.INVALID_ARGUMENT)
    assert d.dump() == before
    assert list_size(d) == 3
    # Results above acked still answer retries.
    assert d.insert(s, "runs", b"b", seq=3).result == Inserted(((True, 2),))


def test_acked_never_moves_backwards() -> None:
    d = Driver()
    s = d.session()
    result(d.set_up(s, "runs"), ListSetUp)  # 1
    result(d.insert(s, "runs", b"a"), Inserted)  # 2
    result(d.insert(s, "runs", b"b", acked=2), Inserted)  # 3
    result(d.insert(s, "runs", b"c", acked=1), Inserted)  # 4: an older ack is ignored
    err(d.insert(s, "runs", b"a", seq=2), Reason.INVALID_ARGUMENT, "already acknowledged")


@pytest.mark.parametrize(("seq", "acked"), [(0, 0), (3, 3), (3, 7)])
def test_a_seq_not_above_acked_is_invalid_argument(seq: int, acked: int) -> None:
    d = Driver()
    s = d.session()
    result(d.set_up(s, "runs"), ListSetUp)
    before = d.dump()
    err(d.insert(s, "runs", b"a", seq=seq, acked=acked), Reason.INVALID_ARGUMENT, "seq")
    assert d.dump() == before  # not even retained


def test_too_many_unacknowledged_results_is_limit_exceeded_and_nothing_is_applied() -> None:
    d = Driver(Limits(max_results_per_session=3))
    s = d.session()
    result(d.set_up(s, "runs"), ListSetUp)  # 1
    result(d.insert(s, "runs", b"a"), Inserted)  # 2
    result(d.insert(s, "runs", b"b"), Inserted)  # 3
    before = d.dump()
    applied = d.insert(s, "runs", b"c")  # 4
    err(applied, Reason.LIMIT_EXCEEDED, "max_results_per_session=3")
    assert applied.events == ()
    assert_unchanged(before, d)  # not retained either: the refusal is not an answer
    assert list_size(d) == 2
    # Another session is not affected.
    other = d.session()
    assert d.insert(other, "runs", b"x").result == Inserted(((True, 3),))
    # Acknowledging makes room; the same request then applies.
    assert d.insert(s, "runs", b"c", seq=4, acked=3).result == Inserted(((True, 4),))


def test_a_retry_is_answered_even_when_the_results_table_is_full() -> None:
    d = Driver(Limits(max_results_per_session=2))
    s = d.session()
    first = d.set_up(s, "runs")
    result(d.insert(s, "runs", b"a"), Inserted)
    err(d.insert(s, "runs", b"b"), Reason.LIMIT_EXCEEDED)
    assert d.set_up(s, "runs", seq=1).result == first.result


# --------------------------------------------------------------------------- sessions


def test_an_unknown_session_is_session_expired() -> None:
    d = Driver()
    d.session()
    before = d.dump()
    for applied in (
        d.acquire(42, "L"),
        d.release(42, "L", 1),
        d.extend(42, "L", 1, 0),
        d.cancel_wait(42, "L", 1),
        d.set_up(42, "runs"),
        d.insert(42, "runs", b"a"),
        d.tear_down(42, "runs"),
    ):
        err(applied, Reason.SESSION_EXPIRED, "42")
        assert applied.events == ()
    assert_unchanged(before, d)


def test_answered_seqs_above_acked_are_forgotten_but_a_blocked_acquire_is_kept() -> None:
    """One acquire blocked for long must not pin every later result of its session."""
    state = StateMachine(Limits(max_results_per_session=3))
    state.apply(OpenSession(1, 60_000, "w", "h", 1))
    state.apply(OpenSession(1, 60_000, "w", "h", 2))
    state.apply(Acquire(2, 2, 1, 0, "busy", 0, 0))
    queued = state.apply(Acquire(3, 1, 1, 0, "busy", 0, 600_000)).result
    assert isinstance(queued, Queued)
    state.apply(SetUpList(4, 1, 2, 0, "l", 0))
    for seq in range(3, 40):
        # acked stays 0: seq 1 (the blocked acquire) is unanswered; each answer is reported once.
        result = state.apply(Insert(5, 1, seq, 0, "l", (b"%d" % seq,), (seq - 1,))).result
        assert isinstance(result, Inserted), result
    assert set(state.sessions[1].results) == {1, 39}
    assert state.apply(Acquire(6, 1, 1, 0, "busy", 0, 600_000)).result == queued
