"""Sessions: open, close, expire; what a session takes with it when it goes."""

from __future__ import annotations

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
    CAUSE_SESSION_CLOSED,
    CAUSE_SESSION_EXPIRED,
    Done,
    Err,
    Granted,
    Inserted,
    ListSetUp,
    LockFreed,
    Queued,
    SessionEnded,
    SessionOpened,
    WaiterResolved,
)
from turnstile.cluster.limits import Limits
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def test_open_session_returns_fresh_increasing_ids_and_the_ttl() -> None:
    d = Driver(now=1_000)
    first = result(d.open_session(ttl_ms=5_000, name="alpha", host="h1", pid=42), SessionOpened)
    second = result(d.open_session(ttl_ms=7_000), SessionOpened)
    assert first == SessionOpened(session=1, ttl_ms=5_000)
    assert second == SessionOpened(session=2, ttl_ms=7_000)
    view = views.session_view(d.sm, 1, now=1_250)
    assert view is not None
    assert (view.client_name, view.client_host, view.client_pid) == ("alpha", "h1", 42)
    assert view.age_ms == 250
    assert view.ttl_ms == 5_000


def test_session_ids_are_not_reused_after_a_session_ends() -> None:
    d = Driver()
    a = d.session()
    b = d.session()
    result(d.expire_session(a), Done)
    result(d.close_session(b), Done)
    assert d.session() == 3


@pytest.mark.parametrize("ttl_ms", [0, 99, 3_600_001])
def test_session_ttl_out_of_range_is_refused_and_nothing_changes(ttl_ms: int) -> None:
    d = Driver()
    d.session()
    before = d.dump()
    refused = err(d.open_session(ttl_ms=ttl_ms), Reason.INVALID_ARGUMENT, "ttl_ms")
    assert "100" in refused.detail and "3600000" in refused.detail
    assert str(ttl_ms) in refused.detail
    assert_unchanged(before, d)
    assert views.counts(d.sm).sessions == 1


@pytest.mark.parametrize("ttl_ms", [100, 3_600_000])
def test_session_ttl_bounds_are_inclusive(ttl_ms: int) -> None:
    d = Driver()
    assert result(d.open_session(ttl_ms=ttl_ms), SessionOpened).ttl_ms == ttl_ms


@pytest.mark.parametrize("field", ["name", "host"])
def test_oversize_client_name_or_host_is_refused(field: str) -> None:
    d = Driver(Limits(max_name_bytes=8))
    before = d.dump()
    text = "é" * 5  # 10 bytes of UTF-8, 5 characters
    applied = d.open_session(**{field: text})
    err(applied, Reason.INVALID_ARGUMENT, f"client_{field}", "max_name_bytes=8")
    assert_unchanged(before, d)


@pytest.mark.parametrize("field", ["name", "host"])
def test_a_client_name_or_host_that_is_not_valid_unicode_is_refused(field: str) -> None:
    d = Driver()
    before = d.dump()
    err(d.open_session(**{field: "w\ud800"}), Reason.INVALID_ARGUMENT, f"client_{field}")
    assert_unchanged(before, d)


def test_too_many_sessions_is_refused_and_nothing_changes() -> None:
    d = Driver(Limits(max_sessions=2))
    d.session()
    d.session()
    before = d.dump()
    err(d.open_session(), Reason.LIMIT_EXCEEDED, "max_sessions=2")
    assert_unchanged(before, d)
    # A session that ends makes room again.
    result(d.close_session(1), Done)
    assert d.session() == 3


@pytest.mark.parametrize("end", ["close", "expire"])
def test_ending_an_unknown_session_is_refused(end: str) -> None:
    d = Driver()
    d.session()
    before = d.dump()
    applied = d.close_session(99) if end == "close" else d.expire_session(99)
    err(applied, Reason.SESSION_EXPIRED, "99")
    assert applied.events == ()
    assert_unchanged(before, d)


@pytest.mark.parametrize(
    ("end", "cause"), [("close", CAUSE_SESSION_CLOSED), ("expire", CAUSE_SESSION_EXPIRED)]
)
def test_an_ending_session_releases_every_lock_and_drops_every_wait(end: str, cause: str) -> None:
    d = Driver()
    owner = d.session(name="owner")
    dying = d.session(name="dying")
    heir = d.session(name="heir")
    # dying holds "a" and "b" (heir waits on "b"), and waits on "c" and "d" (owned by owner).
    tok_a = result(d.acquire(dying, "a", max_hold_ms=60_000), Granted).token
    tok_b = result(d.acquire(dying, "b"), Granted).token
    result(d.acquire(owner, "c"), Granted)
    result(d.acquire(owner, "d"), Granted)
    result(d.acquire(heir, "b", wait_ms=60_000), Queued)
    heir_seq = d.last_seq(heir)
    result(d.acquire(dying, "c", wait_ms=60_000), Queued)
    wait_c = d.last_seq(dying)
    result(d.acquire(dying, "d", wait_ms=60_000), Queued)
    wait_d = d.last_seq(dying)

    d.at(500)
    applied = d.close_session(dying) if end == "close" else d.expire_session(dying)

    assert result(applied, Done) == Done()
    # Its own waits end with SESSION_EXPIRED; its locks are freed in name order.
    dropped = [r for r in resolved(applied) if r.session == dying]
    assert [(r.name, r.seq) for r in dropped] == [("c", wait_c), ("d", wait_d)]
    for r in dropped:
        assert isinstance(r.result, Err)
        assert r.result.reason is Reason.SESSION_EXPIRED
    freed = events(applied, LockFreed)
    assert [(f.name, f.session, f.token, f.cause) for f in freed] == [
        ("a", dying, tok_a, cause),
        ("b", dying, tok_b, cause),
    ]
    # "b" goes to its head waiter in the same step.
    handed = [r for r in resolved(applied) if r.session == heir]
    assert len(handed) == 1
    assert (handed[0].name, handed[0].seq) == ("b", heir_seq)
    assert isinstance(handed[0].result, Granted)
    assert handed[0].result.token > tok_b
    assert only_event(applied, SessionEnded) == SessionEnded(dying, cause)
    assert isinstance(applied.events[-1], SessionEnded)

    # Afterwards: "a" is free and forgotten, "b" is heir's, "c"/"d" have no waiters.
    assert views.session_view(d.sm, dying, now=500) is None
    assert views.validate_token(d.sm, "a", tok_a) == (False, 0)
    assert views.validate_token(d.sm, "b", handed[0].result.token) == (True, handed[0].result.token)
    assert [v.name for v in views.list_locks(d.sm, "", "", 0, now=500)] == ["b", "c", "d"]
    for name in ("c", "d"):
        view = views.describe_lock(d.sm, name, now=500)
        assert not isinstance(view, Err)
        assert view.waiters == ()
    counts = views.counts(d.sm)
    assert (counts.sessions, counts.locks_held, counts.waiters) == (2, 3, 0)


@pytest.mark.parametrize("end", ["close", "expire"])
def test_a_session_that_holds_and_waits_on_one_lock_is_not_handed_its_own_lock(end: str) -> None:
    """Two threads sharing a session: one holds L, the other waits on L; the session dies."""
    d = Driver()
    shared = d.session(name="two-threads")
    other = d.session(name="other")
    token = result(d.acquire(shared, "L"), Granted).token
    result(d.acquire(shared, "L", wait_ms=10_000), Queued)
    own_wait = d.last_seq(shared)
    result(d.acquire(other, "L", wait_ms=10_000), Queued)
    other_wait = d.last_seq(other)

    applied = d.close_session(shared) if end == "close" else d.expire_session(shared)

    outcomes = {(r.session, r.seq): r.result for r in resolved(applied)}
    assert set(outcomes) == {(shared, own_wait), (other, other_wait)}
    assert isinstance(outcomes[(shared, own_wait)], Err)
    granted = outcomes[(other, other_wait)]
    assert isinstance(granted, Granted)
    assert granted.token > token
    assert not any(isinstance(r, Granted) for (s, _), r in outcomes.items() if s == shared)
    view = views.describe_lock(d.sm, "L", now=0)
    assert not isinstance(view, Err)
    assert view.holder is not None
    assert view.holder.session == other
    assert view.waiters == ()


def test_a_dying_session_holding_and_waiting_alone_leaves_the_lock_free() -> None:
    d = Driver()
    shared = d.session()
    token = result(d.acquire(shared, "L"), Granted).token
    result(d.acquire(shared, "L", wait_ms=10_000), Queued)
    applied = d.expire_session(shared)
    assert not any(isinstance(r.result, Granted) for r in resolved(applied))
    assert only_event(applied, LockFreed).token == token
    assert views.list_locks(d.sm, "", "", 0, now=0) == []
    assert views.counts(d.sm).locks_held == 0
    assert views.counts(d.sm).waiters == 0


def test_an_ended_session_is_refused_even_for_a_retry_of_an_applied_request() -> None:
    """Expiry frees the dedup table: nothing of the session answers afterwards."""
    d = Driver()
    s = d.session()
    result(d.set_up(s, "list"), ListSetUp)
    result(d.insert(s, "list", b"x"), Inserted)
    insert_seq = d.last_seq(s)
    result(d.expire_session(s), Done)
    err(d.insert(s, "list", b"x", seq=insert_seq), Reason.SESSION_EXPIRED, str(s))
    err(d.acquire(s, "L"), Reason.SESSION_EXPIRED)
    err(d.expire_session(s), Reason.SESSION_EXPIRED)
    # Lists are not owned by sessions: the list and its ids stay.
    assert views.contains(d.sm, "list", (b"x",)) == [1]


def test_session_view_lists_held_and_waited_locks() -> None:
    d = Driver()
    a = d.session()
    b = d.session()
    result(d.acquire(a, "x"), Granted)
    result(d.acquire(a, "y"), Granted)
    result(d.acquire(b, "x", wait_ms=1_000), Queued)
    view_a = views.session_view(d.sm, a, now=0)
    view_b = views.session_view(d.sm, b, now=0)
    assert view_a is not None and view_b is not None
    assert (view_a.held, view_a.waiting) == (("x", "y"), ())
    assert (view_b.held, view_b.waiting) == ((), ("x",))
    sessions = views.list_sessions(d.sm, after=0, limit=0, now=0)
    assert not isinstance(sessions, Err)
    assert [v.session for v in sessions] == [a, b]
    later = views.list_sessions(d.sm, after=a, limit=0, now=0)
    assert not isinstance(later, Err)
    assert [v.session for v in later] == [b]


def test_a_waiter_resolved_by_session_end_is_an_event_for_that_exact_request() -> None:
    d = Driver()
    holder = d.session()
    waiter = d.session()
    result(d.acquire(holder, "L"), Granted)
    result(d.acquire(waiter, "L", wait_ms=5_000), Queued)
    seq = d.last_seq(waiter)
    applied = d.expire_session(waiter)
    (event,) = resolved(applied)
    assert (event.session, event.seq, event.name) == (waiter, seq, "L")
    assert isinstance(event, WaiterResolved)
    assert isinstance(event.result, Err)
    assert event.result.reason is Reason.SESSION_EXPIRED
    assert events(applied, LockFreed) == []
