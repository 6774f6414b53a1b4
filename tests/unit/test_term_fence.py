"""The term fence, the cluster version, Abandon, answered seqs and the timer heap, on the state
machine alone (cluster/state.py, cluster/snapshot.py): no Raft, no clock."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from helpers import Driver, err, result, snapshot_doc
from hypothesis import given, settings
from hypothesis import strategies as st

from turnstile.cluster import snapshot
from turnstile.cluster.commands import (
    Abandon,
    Acquire,
    CancelWait,
    Command,
    ExpireSession,
    Extend,
    Granted,
    Insert,
    ListSetUp,
    Queued,
    Release,
    Released,
    SetClusterVersion,
    SetUpList,
    TearDownList,
    Tick,
    TornDown,
    WaitCancelled,
)
from turnstile.cluster.limits import Limits
from turnstile.cluster.records import SeqRanges
from turnstile.cluster.state import Applied, StateMachine
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def stamped(command: Command, term: int) -> Command:
    return dataclasses.replace(command, term=term)


def in_term(driver: Driver, command: Command, term: int) -> Applied:
    return driver.apply(stamped(command, term))


def held_lock(driver: Driver, max_hold_ms: int = 0) -> tuple[int, int, int]:
    """Session A holds "L" (token), session B waits for it: (a, b, token)."""
    a, b = driver.session(3_000, "a"), driver.session(3_000, "b")
    token = result(driver.acquire(a, "L", max_hold_ms=max_hold_ms), Granted).token
    result(driver.acquire(b, "L", wait_ms=60_000), Queued)
    return a, b, token


# --------------------------------------------------------------------------- the fence


def test_the_first_command_of_a_new_term_moves_the_epoch() -> None:
    driver = Driver()
    assert driver.sm.epoch == 0
    in_term(driver, Tick(10), 4)
    assert driver.sm.epoch == 4
    in_term(driver, Tick(20), 4)
    in_term(driver, Tick(30), 7)
    assert driver.sm.epoch == 7


def test_a_deposed_leaders_expiry_frees_nothing() -> None:
    """The bug: a leader paused past the TTL resumes and expires a session its successor kept
    alive; the freed lock would go to the waiter while its holder still holds it."""
    driver = Driver(now=100)
    a, _b, token = held_lock(driver)
    in_term(driver, Tick(200), 6)  # the successor takes office
    before = driver.dump()
    late = in_term(driver, ExpireSession(9_000, a), 5)
    err(late, Reason.NOT_LEADER, "term 5", "term 6")
    assert late.events == ()
    assert driver.dump() == before
    assert driver.sm.locks["L"].holder is not None
    assert driver.sm.locks["L"].holder.token == token


def test_a_deposed_leaders_tick_does_not_move_the_clock() -> None:
    """Its clock ran ahead by the leaderless gap: applied, it would expire max-holds early."""
    driver = Driver(now=100)
    held_lock(driver, max_hold_ms=5_000)
    in_term(driver, Tick(200), 3)
    before = driver.dump()
    err(in_term(driver, Tick(99_000), 2), Reason.NOT_LEADER)
    assert driver.sm.clock == 200
    assert driver.dump() == before
    assert driver.sm.locks["L"].holder is not None


def test_a_deposed_leaders_cancel_does_not_revoke_a_grant() -> None:
    driver = Driver(now=100)
    a, b, token = held_lock(driver)
    in_term(driver, Tick(200), 3)
    result(in_term(driver, Release(300, a, 2, 0, "L", token), 3), Released)
    holder = driver.sm.locks["L"].holder
    assert holder is not None and holder.session == b
    before = driver.dump()
    stale = CancelWait(250, b, "L", driver.last_seq(b), release_grant=True)
    err(in_term(driver, stale, 2), Reason.NOT_LEADER)
    assert driver.dump() == before


def test_commands_of_the_current_and_later_terms_apply() -> None:
    driver = Driver(now=100)
    a, _b, _token = held_lock(driver)
    in_term(driver, Tick(200), 3)
    in_term(driver, Tick(300), 3)
    assert in_term(driver, ExpireSession(400, a), 4).events


def test_with_the_fence_off_a_stale_command_applies() -> None:
    """The test-only switch: what the chaos control run turns off."""
    driver = Driver(now=100)
    driver.sm = StateMachine(term_fence=False)
    a, _b, _token = held_lock(driver)
    in_term(driver, Tick(200), 6)
    assert in_term(driver, ExpireSession(300, a), 5).events
    assert driver.sm.locks["L"].holder is not None
    assert driver.sm.locks["L"].holder.session != a


_OPS = st.sampled_from(["tick", "acquire", "release", "expire", "cancel", "insert"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_OPS, st.integers(1, 4), st.integers(0, 3), st.integers(0, 4_000))))
def test_a_stale_command_has_no_effect_at_all(steps: list[tuple[str, int, int, int]]) -> None:
    """Any command stamped below the epoch leaves the state byte for byte as it was, and the
    run equals the same run with every stale command left out."""
    fenced, reference = Driver(now=0), Driver(now=0)
    for driver in (fenced, reference):
        driver.session(2_000, "s1")
        driver.session(2_000, "s2")
        in_term(driver, Tick(0), 1)
    now = 0
    for op, term, who, advance in steps:
        now += advance
        session = 1 + who % 2
        seq = fenced.next_seq(session)
        command: Command = {
            "tick": Tick(now),
            "acquire": Acquire(now, session, seq, 0, "L", 1_500, 1_000),
            "release": Release(now, session, seq, 0, "L", fenced.sm.last_token),
            "expire": ExpireSession(now, session),
            "cancel": CancelWait(now, session, "L", max(1, seq - 1), release_grant=True),
            "insert": Insert(now, session, seq, 0, "set", (b"m%d" % who,)),
        }[op]
        before = fenced.dump()
        stale = term < fenced.sm.epoch
        outcome = in_term(fenced, command, term)
        if stale:
            err(outcome, Reason.NOT_LEADER)
            assert outcome.events == ()
            assert fenced.dump() == before
        else:
            assert in_term(reference, command, term) == outcome
    assert fenced.dump() == reference.dump()


# --------------------------------------------------------------------------- cluster version


def test_a_command_newer_than_the_cluster_version_is_refused_without_effect() -> None:
    driver = Driver(now=10)
    a = driver.session()
    before = driver.dump()
    err(driver.apply(Abandon(20, a, 1, 0, "L", 5)), Reason.FAILED_PRECONDITION, "version 2")
    assert driver.dump() == before
    driver.apply(SetClusterVersion(30, 2))
    assert driver.sm.cluster_version == 2
    result(driver.apply(Abandon(40, a, 2, 0, "L", 5)), WaitCancelled)


def test_the_cluster_version_never_goes_down() -> None:
    driver = Driver()
    driver.apply(SetClusterVersion(1, 2))
    driver.apply(SetClusterVersion(2, 1))
    assert driver.sm.cluster_version == 2


# --------------------------------------------------------------------------- abandon


def version_2(driver: Driver) -> Driver:
    driver.apply(SetClusterVersion(driver.now, 2))
    return driver


def abandon(driver: Driver, session: int, acquire_seq: int, acked: int = 0) -> WaitCancelled:
    seq = driver.next_seq(session)
    applied = driver.apply(Abandon(driver.now, session, seq, acked, "L", acquire_seq))
    return result(applied, WaitCancelled)


def test_abandoning_a_granted_acquire_releases_it_to_the_next_waiter() -> None:
    driver = version_2(Driver(now=10))
    a, b, _token = held_lock(driver)
    assert abandon(driver, a, 1) == WaitCancelled(removed=False, released=True)
    holder = driver.sm.locks["L"].holder
    assert holder is not None and holder.session == b


def test_abandoning_a_queued_acquire_drops_its_waiter() -> None:
    driver = version_2(Driver(now=10))
    _a, b, _token = held_lock(driver)
    assert abandon(driver, b, driver.last_seq(b)) == WaitCancelled(removed=True, released=False)
    assert driver.sm.locks["L"].waiters == []


def test_a_late_copy_of_an_abandoned_acquire_is_refused() -> None:
    """The acquire's proposal was still in flight when the client gave up on it."""
    driver = version_2(Driver(now=10))
    a = driver.session()
    assert abandon(driver, a, 7) == WaitCancelled(removed=False, released=False)
    late = driver.apply(Acquire(20, a, 7, 0, "L", 0, 0))
    err(late, Reason.INVALID_ARGUMENT, "already answered")
    assert "L" not in driver.sm.locks


def test_abandon_is_exactly_once_and_leaves_a_later_grant_alone() -> None:
    driver = version_2(Driver(now=10))
    a, b, token = held_lock(driver)
    seq = driver.next_seq(a)
    first = driver.apply(Abandon(20, a, seq, 0, "L", 1))
    assert first.result == WaitCancelled(removed=False, released=True)
    result(driver.apply(Release(30, b, driver.next_seq(b), 0, "L", token + 1)), Released)
    result(driver.acquire(a, "L"), Granted)
    retry = driver.apply(Abandon(40, a, seq, 0, "L", 1))
    assert retry.result == first.result
    holder = driver.sm.locks["L"].holder
    assert holder is not None and holder.session == a


# --------------------------------------------------------------------------- answered seqs


def test_a_late_duplicate_of_an_answered_request_is_not_applied_again() -> None:
    """A TearDownList answered and reported in ``answered`` must not tear down the list that
    was set up again since, when a late copy of it arrives."""
    driver = Driver(now=10)
    s = driver.session()
    blocked = driver.next_seq(s)  # a long blocked acquire pins acked at 0
    result(driver.set_up(s, "runs"), ListSetUp)
    torn = driver.next_seq(s)
    result(driver.apply(TearDownList(20, s, torn, 0, "runs")), TornDown)
    again = driver.next_seq(s)
    driver.apply(SetUpList(30, s, again, 0, "runs", 0, answered=(torn,)))
    assert torn in driver.sm.sessions[s].forgotten
    late = driver.apply(TearDownList(40, s, torn, 0, "runs"))
    err(late, Reason.INVALID_ARGUMENT, "already answered")
    assert "runs" in driver.sm.lists
    assert blocked not in driver.sm.sessions[s].forgotten


def test_answered_seqs_are_kept_as_ranges_and_dropped_once_acked() -> None:
    driver = Driver(now=10)
    s = driver.session()
    driver.next_seq(s)
    for seq in range(2, 1_002):
        driver.apply(Insert(20, s, seq, 0, "none", (), answered=(seq - 1,) if seq > 2 else ()))
    forgotten = driver.sm.sessions[s].forgotten
    assert forgotten.ranges == [(1, 1000)] or len(forgotten) <= 2
    driver.apply(Insert(30, s, 2_000, 999, "none", ()))
    assert all(lo > 999 for lo, _ in driver.sm.sessions[s].forgotten.ranges)


def test_seq_ranges_merge_and_split() -> None:
    ranges = SeqRanges()
    for seq in (5, 7, 6, 1, 3, 2, 10):
        ranges.add(seq)
    assert ranges.ranges == [(1, 3), (5, 7), (10, 10)]
    assert 6 in ranges and 4 not in ranges and 11 not in ranges
    ranges.drop_through(5)
    assert ranges.ranges == [(6, 7), (10, 10)]


# --------------------------------------------------------------------------- timer heap


def test_many_extends_of_one_lock_keep_the_timer_heap_small() -> None:
    driver = Driver(now=10)
    s = driver.session()
    token = result(driver.acquire(s, "L", max_hold_ms=60_000), Granted).token
    for i in range(200_000):
        driver.apply(Extend(10 + i // 100, s, 1_000 + i, 999 + i, "L", token, 60_000))
    assert len(driver.sm._timers) < 200
    holder = driver.sm.locks["L"].holder
    assert holder is not None
    driver.tick(holder.expires_at)
    assert "L" not in driver.sm.locks


def test_list_renewals_keep_the_timer_heap_small_and_the_list_expires_on_time() -> None:
    driver = Driver(now=10)
    s = driver.session()
    for i in range(5_000):
        driver.set_up(s, "runs", 10_000, acked=driver.last_seq(s) if i else 0)
    assert len(driver.sm._timers) < 200
    driver.tick(driver.now + 9_999)
    assert "runs" in driver.sm.lists
    driver.tick(driver.now + 1)
    assert "runs" not in driver.sm.lists


# --------------------------------------------------------------------------- snapshots


def test_epoch_cluster_version_and_answered_seqs_survive_a_snapshot() -> None:
    driver = version_2(Driver(now=10))
    s = driver.session()
    in_term(driver, Tick(20), 9)
    in_term(driver, Insert(30, s, 3, 0, "none", (), answered=(1, 2)), 9)
    restored = snapshot.load(driver.dump())
    assert (restored.epoch, restored.cluster_version) == (9, 2)
    assert restored.sessions[s].forgotten.ranges == [(1, 2)]
    assert snapshot.dump(restored) == driver.dump()
    err(restored.apply(Tick(40, term=8)), Reason.NOT_LEADER)


def test_a_version_1_snapshot_loads_with_no_epoch() -> None:
    driver = Driver(now=10)
    driver.session()
    document = snapshot_doc(driver.dump())
    document["version"] = 1
    del document["epoch"], document["cluster_version"]
    for record in document["sessions"]:
        del record[8]
    state = snapshot.load(msgpack.packb(document, use_bin_type=True))
    assert (state.epoch, state.cluster_version) == (0, 1)


def test_an_answered_seq_not_below_the_request_is_refused() -> None:
    driver = Driver(now=10)
    s = driver.session()
    refused = driver.apply(Insert(20, s, 3, 0, "none", (), answered=(2, 3)))
    err(refused, Reason.INVALID_ARGUMENT, "answered seq 3", "seq 3")
    assert driver.sm.sessions[s].forgotten.ranges == []
    assert 3 not in driver.sm.sessions[s].results


def test_the_record_of_answered_seqs_is_bounded() -> None:
    """Scattered answered seqs (every other one) each take a range of their own."""
    driver = Driver(Limits(max_results_per_session=8), now=10)
    s = driver.session()
    driver.apply(Insert(20, s, 100, 0, "none", (), answered=tuple(range(2, 17, 2))))
    assert len(driver.sm.sessions[s].forgotten) == 8
    refused = driver.apply(Insert(30, s, 101, 0, "none", (), answered=(18,)))
    err(refused, Reason.LIMIT_EXCEEDED, "9 ranges of answered seqs")
    assert len(driver.sm.sessions[s].forgotten) == 8
    driver.apply(Insert(40, s, 102, 0, "none", (), answered=(3,)))
    assert len(driver.sm.sessions[s].forgotten) == 7


def test_abandoning_an_acquire_whose_answer_was_acknowledged_changes_nothing() -> None:
    """The client acknowledged the grant (acked passed it): it may be using the lock."""
    driver = version_2(Driver(now=10))
    a, _b, _token = held_lock(driver)
    seq = driver.next_seq(a)
    assert driver.apply(Abandon(20, a, seq, 1, "L", 1)).result == WaitCancelled(False, False)
    holder = driver.sm.locks["L"].holder
    assert holder is not None and holder.session == a
