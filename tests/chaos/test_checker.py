"""The checker catches every invariant it names; a checker that never fails proves nothing."""

from __future__ import annotations

import pytest

from tests.chaos.checker import ClientSession, KeepAlive, MembershipProbe, Op, check

pytestmark = pytest.mark.unit


def acquire(
    session: int,
    token: int,
    invoke: float,
    complete: float,
    outcome: str = "ok",
    *,
    max_hold_end: float | None = None,
) -> Op:
    return Op(
        f"p{session}",
        session,
        "acquire",
        "L",
        invoke,
        complete,
        outcome,  # type: ignore[arg-type]
        token,
        max_hold_end,
    )


def release(session: int, token: int, invoke: float, complete: float, outcome: str = "ok") -> Op:
    return Op(f"p{session}", session, "release", "L", invoke, complete, outcome, token)  # type: ignore[arg-type]


def insert(member: bytes, id_: int, invoke: float, outcome: str = "ok") -> Op:
    return Op("p9", 9, "insert", ("R", member), invoke, invoke + 0.1, outcome, id_)  # type: ignore[arg-type]


def read(member: bytes, id_: int, invoke: float) -> Op:
    return Op("p8", 8, "read", ("R", member), invoke, invoke + 0.1, "ok", id_)


GOOD = [
    acquire(1, 1, 0.0, 0.1),
    release(1, 1, 1.0, 1.1),
    acquire(2, 2, 0.5, 1.2),  # waited, granted by the release
    release(2, 2, 2.0, 2.1),
    insert(b"a", 1, 0.0),
    insert(b"b", 2, 0.2),
    insert(b"a", 1, 0.4),
    insert(b"c", 3, 0.6, outcome="info"),
    read(b"a", 1, 0.2),
    read(b"b", 0, 0.1),  # overlaps the insert of b: may see it or not
]
FINAL = {"R": [(1, b"a"), (2, b"b"), (3, b"c")]}


def test_a_consistent_history_passes() -> None:
    assert check(GOOD, FINAL) == []


@pytest.mark.parametrize(
    ("history", "final", "invariant"),
    [
        ([acquire(1, 5, 0, 0.1), acquire(2, 5, 1, 1.1)], None, "unique tokens"),
        ([acquire(1, 7, 0, 0.1), acquire(2, 6, 1, 1.1)], None, "tokens follow real time"),
        (
            [acquire(1, 1, 0, 0.1), acquire(2, 2, 0.2, 0.3), release(1, 1, 0.5, 0.6)],
            None,
            "mutual exclusion",
        ),
        ([insert(b"a", 1, 0), insert(b"a", 2, 1)], None, "stable ids"),
        ([insert(b"a", 1, 0), insert(b"b", 1, 1)], None, "unique ids"),
        ([insert(b"a", 1, 0)], {"R": []}, "no lost insert"),
        ([insert(b"a", 1, 0)], {"R": [(2, b"a")]}, "no lost insert"),
        ([], {"R": [(1, b"a"), (3, b"b")]}, "dense ids"),
        ([insert(b"a", 1, 0, "info")], {"R": [(1, b"a"), (2, b"a")]}, "at most once"),
        ([insert(b"z", 0, 0, "fail")], {"R": [(1, b"z")]}, "refused means not applied"),
        ([insert(b"a", 1, 0), read(b"a", 0, 0.5)], None, "linearizable reads"),
        ([insert(b"a", 1, 0), read(b"a", 2, 0.5)], None, "stable ids"),
        ([insert(b"a", 1, 0), read(b"b", 1, 0.5)], None, "unique ids"),
    ],
)
def test_each_violation_is_caught(
    history: list[Op], final: dict[str, list[tuple[int, bytes]]] | None, invariant: str
) -> None:
    assert invariant in {v.invariant for v in check(history, final)}


def test_an_indeterminate_insert_may_be_absent_or_present_once() -> None:
    history = [insert(b"x", 0, 0, "info")]
    assert check(history, {"R": []}) == []
    assert check(history, {"R": [(1, b"x")]}) == []


def test_overlap_is_only_claimed_when_certain() -> None:
    """If B's grant may have come after A's release was sent, it is no violation."""
    history = [acquire(1, 1, 0, 0.1), release(1, 1, 0.5, 0.6), acquire(2, 2, 0.2, 0.55)]
    assert check(history) == []


# ---------------------------------------------------------------------- the holder's view

HOLDER_VIEW = "mutual exclusion (holder's view)"


def alive(*acks: tuple[float, float], lost: float = float("inf")) -> ClientSession:
    """A 3 s session opened at 0 (so alive until 3 at first), with (sent, arrived) acks."""
    return ClientSession(3.0, 3.0, [KeepAlive(sent, arrived) for sent, arrived in acks], lost)


#: Acknowledged keep-alives every second: alive in its own view until 4 + 3 = 7.
STEADY = ((1.0, 1.01), (2.0, 2.01), (3.0, 3.01), (4.0, 4.01))


def test_a_grant_while_the_holder_still_counted_its_hold_live_is_caught() -> None:
    """The leader-pause bug: the cluster expired A's live session and gave the lock to B; A's
    own keep-alives still vouched for it until 7. The cluster's history alone looks clean (A's
    release fails as lost), so only the holder's view catches it."""
    history = [acquire(1, 1, 0.0, 0.1), acquire(2, 2, 0.5, 5.0), release(1, 1, 8.0, 8.1, "fail")]
    sessions = {1: alive(*STEADY, lost=7.5), 2: alive(*STEADY)}
    assert {v.invariant for v in check(history, None, sessions)} == {HOLDER_VIEW}
    assert {v.invariant for v in check(history)} == set()


def test_overlapping_beliefs_are_caught_even_when_the_later_token_completed_first() -> None:
    """B's grant (token 2) completed at 2, A's (token 1) only at 3: both believed from 3 on."""
    history = [acquire(1, 1, 0.0, 3.0), acquire(2, 2, 0.5, 2.0)]
    sessions = {1: alive(*STEADY), 2: alive(*STEADY)}
    assert HOLDER_VIEW in {v.invariant for v in check(history, None, sessions)}


@pytest.mark.parametrize(
    ("a_grant", "a_release", "a_session"),
    [
        (acquire(1, 1, 0.0, 0.1), release(1, 1, 4.0, 4.1), alive(*STEADY)),  # released first
        (acquire(1, 1, 0.0, 0.1), None, alive((1.0, 1.01))),  # its TTL view ended at 4
        # a late ack (arrived at 4.5, after the deadline of 4) does not revive the session
        (acquire(1, 1, 0.0, 0.1), None, alive((1.0, 1.01), (2.0, 4.5))),
        (acquire(1, 1, 0.0, 0.1, max_hold_end=2.0), None, alive(*STEADY)),  # max-hold passed
        (acquire(1, 1, 0.0, 0.1), None, alive(*STEADY, lost=4.5)),  # told LOST before
    ],
    ids=["released-first", "ttl-view-ended", "late-ack", "max-hold-passed", "lost-announced"],
)
def test_near_misses_of_the_holders_view_are_not_flagged(
    a_grant: Op, a_release: Op | None, a_session: ClientSession
) -> None:
    """B is granted at 5, just after A's believed hold ended."""
    history = [a_grant, acquire(2, 2, 0.5, 5.0)] + ([a_release] if a_release else [])
    assert check(history, None, {1: a_session, 2: alive(*STEADY)}) == []


def test_an_indeterminate_acquire_is_no_grant_and_an_unrecorded_view_no_belief() -> None:
    """B's indeterminate acquire may have failed; A's unrecorded session proves no belief. B's
    unrecorded session still counts its grant (its completion lies inside A's belief)."""
    sessions = {1: alive(*STEADY), 2: alive(*STEADY)}
    assert check([acquire(1, 1, 0.0, 0.1), acquire(2, 2, 0.5, 5.0, "info")], None, sessions) == []
    assert check([acquire(3, 1, 0.0, 0.1), acquire(2, 2, 0.5, 5.0)], None, sessions) == []
    caught = check([acquire(1, 1, 0.0, 0.1), acquire(3, 2, 0.5, 5.0)], None, sessions)
    assert [v.invariant for v in caught] == [HOLDER_VIEW]


def campaign(session: int, token: int, invoke: float, complete: float) -> Op:
    return Op(f"p{session}", session, "campaign", "E", invoke, complete, "ok", token)


def resign(session: int, token: int, invoke: float, complete: float) -> Op:
    return Op(f"p{session}", session, "resign", "E", invoke, complete, "ok", token)


def join(session: int, complete: float) -> Op:
    member = f"p{session}/{session}".encode()
    return Op(f"p{session}", session, "join", ("G", member), complete - 0.1, complete, "ok")


def test_an_election_is_judged_as_a_lock_and_apart_from_locks() -> None:
    handed_off = [campaign(1, 5, 0.0, 0.1), resign(1, 5, 1.0, 1.1), campaign(2, 6, 0.5, 1.2)]
    assert check(handed_off) == []
    # Leader 2 elected while leader 1's resign was still to be acknowledged.
    two_leaders = [campaign(1, 5, 0.0, 0.1), campaign(2, 6, 0.2, 0.3), resign(1, 5, 1.0, 1.1)]
    assert {v.invariant for v in check(two_leaders)} == {"mutual exclusion"}
    sessions = {1: ClientSession(ttl=3.0, until=3.0), 2: ClientSession(ttl=3.0, until=3.0)}
    believed = [campaign(1, 5, 0.0, 0.1), campaign(2, 6, 0.2, 0.3)]
    assert "mutual exclusion (holder's view)" in {
        v.invariant for v in check(believed, None, sessions)
    }
    # A lock and an election of the same name are different things.
    assert check([acquire(1, 5, 0.0, 0.1), campaign(2, 6, 0.2, 0.3)]) == []


def probe(
    members: dict[str, int], leader: int | None, before: set[int], after: set[int]
) -> MembershipProbe:
    return MembershipProbe("G", frozenset(before), 5.0, members, leader, frozenset(after))


def test_members_and_leaders_must_match_the_live_sessions() -> None:
    ops = [join(1, 1.0), join(2, 1.0)]
    fine = probe({"p1/1": 1, "p2/2": 2}, 1, {1, 2}, {1, 2})
    assert check(ops, probes=[fine]) == []
    # Session 2 opened after the first read: it may be listed; session 1 ended meanwhile.
    racing = probe({"p1/1": 1, "p2/2": 2}, 1, {1}, {2})
    assert check(ops, probes=[racing]) == []
    outlived = probe({"p1/1": 1, "p2/2": 2}, 1, {2, 3}, {2, 3})
    assert [v.invariant for v in check(ops, probes=[outlived])] == [
        "members match live sessions",
        "no leadership of an ended session",
    ]
    missing = probe({"p1/1": 1}, None, {1, 2}, {1, 2})
    found = check(ops, probes=[missing])
    assert [v.invariant for v in found] == ["members match live sessions"]
    assert "p2/2" in found[0].detail


def lookup(member: bytes, id_: int, found: bytes, invoke: float) -> Op:
    return Op("p7", 7, "lookup", ("R", member), invoke, invoke + 0.1, "ok", id_, found=found)


def test_a_lookup_must_map_an_acknowledged_id_back_to_its_member() -> None:
    ops = [insert(b"a", 1, 0.0), insert(b"b", 2, 0.2)]
    assert check([*ops, lookup(b"a", 1, b"a", 1.0)]) == []
    # Id 1 came back as b's: id 1 then has two members, and b two ids.
    assert {v.invariant for v in check([*ops, lookup(b"a", 1, b"b", 1.0)])} == {
        "unique ids",
        "stable ids",
    }
    assert [v.invariant for v in check([*ops, lookup(b"a", 1, b"", 1.0)])] == ["linearizable reads"]


# --------------------------------------------------------------------------- semaphores


def permit(session: int, token: int, invoke: float, complete: float, limit: int = 2) -> Op:
    return Op(f"p{session}", session, "permit", "S", invoke, complete, "ok", token, limit=limit)


def unpermit(session: int, token: int, invoke: float) -> Op:
    return Op(f"p{session}", session, "unpermit", "S", invoke, invoke + 0.1, "ok", token)


def part(session: int, name: str, token: int, batch: int, outcome: str = "ok") -> Op:
    return Op(f"p{session}", session, "acquire", name, 1.0, 1.1, outcome, token, batch=batch)  # type: ignore[arg-type]


def test_permits_up_to_the_limit_and_a_whole_several_lock_acquire_pass() -> None:
    history = [
        permit(1, 1, 0.0, 0.1),
        permit(2, 2, 0.0, 0.2),
        unpermit(1, 1, 1.0),
        permit(3, 3, 0.5, 1.2),  # waited: granted by the give-back at 1.0
        unpermit(2, 2, 2.0),
        unpermit(3, 3, 2.0),
        part(4, "x", 7, batch=1),
        part(4, "y", 8, batch=1),
        part(5, "x", 0, batch=1, outcome="fail"),
        part(5, "y", 0, batch=1, outcome="fail"),
    ]
    sessions = {s: ClientSession(ttl=5.0, until=10.0) for s in (1, 2, 3, 4, 5)}
    assert check(history, sessions=sessions) == []


def test_a_permit_granted_while_limit_others_were_held_is_caught_from_both_sides() -> None:
    history = [
        permit(1, 1, 0.0, 0.1),
        permit(2, 2, 0.0, 0.2),
        permit(3, 3, 0.5, 0.6),  # a third permit of two, while both are still held
        unpermit(1, 1, 1.0),
        unpermit(2, 2, 1.0),
        unpermit(3, 3, 1.0),
    ]
    sessions = {s: ClientSession(ttl=5.0, until=10.0) for s in (1, 2, 3)}
    invariants = {v.invariant for v in check(history, sessions=sessions)}
    assert invariants == {"at most limit permits", "at most limit permits (holder's view)"}
    # The same grants within the limit of three pass.
    relaxed = [
        Op(o.process, o.session, o.kind, o.key, o.invoke, o.complete, o.outcome, o.value, limit=3)
        if o.kind == "permit"
        else o
        for o in history
    ]
    assert check(relaxed, sessions=sessions) == []


def test_a_permit_its_holder_still_counted_live_is_caught_from_the_holders_view() -> None:
    # The cluster freed permit 1 (session 1's keep-alives lapsed at 1.0 in the cluster's view),
    # but its client counted it live until 3.0: a second and third grant at 2.0 is one too many.
    history = [
        permit(1, 1, 0.0, 0.1),
        permit(2, 2, 0.0, 0.2),
        permit(3, 3, 1.5, 2.0),
        unpermit(2, 2, 4.0),
        unpermit(3, 3, 4.0),
    ]
    sessions = {
        1: ClientSession(ttl=3.0, until=3.0),
        2: ClientSession(ttl=5.0, until=10.0),
        3: ClientSession(ttl=5.0, until=10.0),
    }
    violations = check(history, sessions=sessions)
    assert [v.invariant for v in violations] == ["at most limit permits (holder's view)"]


@pytest.mark.parametrize(
    "parts",
    [
        [part(4, "x", 7, batch=1), part(4, "y", 0, batch=1, outcome="fail")],
        [part(4, "x", 7, batch=1), part(4, "y", 9, batch=1)],
    ],
    ids=["granted in part", "not in one step"],
)
def test_a_partial_several_lock_acquire_is_caught(parts: list[Op]) -> None:
    assert [v.invariant for v in check(parts)] == ["no partial multi-lock"]
