"""Shared helpers for the state machine unit tests.

``Driver`` wraps a ``StateMachine``: it stamps every command with its current ``now`` and hands
out a fresh ``seq`` per session, so a test reads as the story it tells. Pass ``seq=`` to retry.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgpack

from turnstile.cluster import group_commands as group
from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster import snapshot
from turnstile.cluster.commands import (
    Acquire,
    CancelWait,
    CloseSession,
    Command,
    Err,
    Event,
    ExpireSession,
    Extend,
    ForceRelease,
    Insert,
    OpenSession,
    Release,
    SessionOpened,
    SetClusterVersion,
    SetLimits,
    SetUpList,
    TearDownList,
    Tick,
    WaiterResolved,
)
from turnstile.cluster.limits import Limits
from turnstile.cluster.state import Applied, StateMachine
from turnstile.v1.reasons import Reason

T = TypeVar("T")
E = TypeVar("E")


class Driver:
    """A StateMachine plus a log clock and per-session request ids."""

    def __init__(self, limits: Limits | None = None, *, now: int = 0) -> None:
        self.sm = StateMachine(limits)
        self.now = now
        self._seqs: dict[int, int] = {}

    # ------------------------------------------------------------------ plumbing

    def at(self, now: int) -> Driver:
        """Moves the driver's clock (the ``now`` stamped on the following commands)."""
        self.now = now
        return self

    def apply(self, command: Command) -> Applied:
        return self.sm.apply(command)

    def next_seq(self, session: int) -> int:
        self._seqs[session] = self._seqs.get(session, 0) + 1
        return self._seqs[session]

    def last_seq(self, session: int) -> int:
        """The seq of the most recent request the driver sent for ``session``."""
        return self._seqs[session]

    def _seq(self, session: int, seq: int | None) -> int:
        return self.next_seq(session) if seq is None else seq

    def dump(self) -> bytes:
        return snapshot.dump(self.sm)

    def restore(self) -> Driver:
        """A new driver on ``load(dump())``, with the same clock and client request ids."""
        other = Driver(now=self.now)
        other.sm = snapshot.load(self.dump())
        other._seqs = dict(self._seqs)
        return other

    # ------------------------------------------------------------------ sessions

    def open_session(
        self, ttl_ms: int = 10_000, name: str = "worker", host: str = "host", pid: int = 1
    ) -> Applied:
        return self.apply(OpenSession(self.now, ttl_ms, name, host, pid))

    def session(self, ttl_ms: int = 10_000, name: str = "worker") -> int:
        """Opens a session and returns its id."""
        opened = result(self.open_session(ttl_ms, name), SessionOpened)
        return opened.session

    def close_session(self, session: int) -> Applied:
        return self.apply(CloseSession(self.now, session))

    def expire_session(self, session: int) -> Applied:
        return self.apply(ExpireSession(self.now, session))

    def tick(self, now: int | None = None) -> Applied:
        if now is not None:
            self.now = now
        return self.apply(Tick(self.now))

    def set_limits(self, limits: Limits) -> Applied:
        return self.apply(SetLimits(self.now, limits))

    # ------------------------------------------------------------------ locks

    def acquire(
        self,
        session: int,
        name: str,
        *,
        max_hold_ms: int = 0,
        wait_ms: int = 0,
        seq: int | None = None,
        acked: int = 0,
    ) -> Applied:
        seq = self._seq(session, seq)
        return self.apply(Acquire(self.now, session, seq, acked, name, max_hold_ms, wait_ms))

    def cancel_wait(self, session: int, name: str, acquire_seq: int) -> Applied:
        """Not deduplicated by a seq of its own: it is idempotent."""
        return self.apply(CancelWait(self.now, session, name, acquire_seq, release_grant=True))

    def release(
        self, session: int, name: str, token: int, *, seq: int | None = None, acked: int = 0
    ) -> Applied:
        seq = self._seq(session, seq)
        return self.apply(Release(self.now, session, seq, acked, name, token))

    def extend(
        self,
        session: int,
        name: str,
        token: int,
        max_hold_ms: int,
        *,
        seq: int | None = None,
        acked: int = 0,
    ) -> Applied:
        seq = self._seq(session, seq)
        return self.apply(Extend(self.now, session, seq, acked, name, token, max_hold_ms))

    def force_release(self, name: str, reason: str = "operator") -> Applied:
        return self.apply(ForceRelease(self.now, name, reason))

    # ------------------------------------------------------------------ lists

    def set_up(
        self, session: int, name: str, ttl_ms: int = 0, *, seq: int | None = None, acked: int = 0
    ) -> Applied:
        seq = self._seq(session, seq)
        return self.apply(SetUpList(self.now, session, seq, acked, name, ttl_ms))

    def insert(
        self, session: int, name: str, *members: bytes, seq: int | None = None, acked: int = 0
    ) -> Applied:
        seq = self._seq(session, seq)
        return self.apply(Insert(self.now, session, seq, acked, name, tuple(members)))

    def tear_down(
        self, session: int, name: str, *, seq: int | None = None, acked: int = 0
    ) -> Applied:
        seq = self._seq(session, seq)
        return self.apply(TearDownList(self.now, session, seq, acked, name))


def driver_at_version(version: int) -> Driver:
    """A driver whose cluster version is already ``version`` (commands of newer builds)."""
    d = Driver()
    d.apply(SetClusterVersion(0, version))
    return d


# ---------------------------------------------------------------------- assertions


def result(applied: Applied, kind: type[T]) -> T:
    """The result of ``applied``, asserting it is a ``kind``."""
    assert isinstance(applied.result, kind), f"expected {kind.__name__}, got {applied.result!r}"
    return applied.result


def err(applied: Applied, reason: Reason, *detail_parts: str) -> Err:
    """Asserts ``applied`` was refused for ``reason`` with every ``detail_parts`` in the detail."""
    refused = result(applied, Err)
    assert refused.reason is reason, refused
    for part in detail_parts:
        assert part in refused.detail, f"{part!r} not in {refused.detail!r}"
    return refused


def events(applied: Applied, kind: type[E]) -> list[E]:
    """The events of ``kind`` in ``applied``, in order."""
    return [e for e in applied.events if isinstance(e, kind)]


def resolved(applied: Applied) -> list[WaiterResolved]:
    return events(applied, WaiterResolved)


def only_event(applied: Applied, kind: type[E]) -> E:
    found = events(applied, kind)
    assert len(found) == 1, f"expected one {kind.__name__} in {applied.events!r}"
    return found[0]


def event_kinds(applied: Applied) -> list[type[Event]]:
    return [type(e) for e in applied.events]


def snapshot_doc(data: bytes) -> dict[str, Any]:
    """The decoded snapshot document (``dump`` output), for field-level comparisons."""
    document = msgpack.unpackb(data, raw=False, strict_map_key=True)
    assert isinstance(document, dict)
    return document


def assert_unchanged(
    before: bytes, driver: Driver, *, retained: tuple[int, int] | None = None
) -> None:
    """Asserts the state equals the ``before`` dump.

    ``retained=(session, seq)``: a session command that changed nothing still keeps its result
    (an Err, or e.g. NotAcquired) for exactly-once retries; that one retained entry is the only
    difference allowed, and it must be new.
    """
    after = driver.dump()
    if retained is None:
        assert after == before
        return
    session_id, seq = retained
    document = snapshot_doc(after)
    entries = [s for s in document["sessions"] if s[0] == session_id]
    assert len(entries) == 1, f"session {session_id} is not in the snapshot"
    assert [s for s, _ in entries[0][7]].count(seq) == 1, f"no retained result for seq {seq}"
    entries[0][7] = [pair for pair in entries[0][7] if pair[0] != seq]
    assert document == snapshot_doc(before)


def scenario_log() -> list[Command]:
    """A fixed log touching every kind of state: holders, waiters, results, lists, timers.

    Sessions are opened first, so their ids are 1, 2 and 3.
    """
    log: list[Command] = [
        OpenSession(0, 5_000, "alpha", "h1", 11),
        OpenSession(0, 5_000, "beta", "h2", 22),
        OpenSession(10, 5_000, "gamma", "h3", 33),
        Acquire(20, 1, 1, 0, "job/1", 1_000, 0),
        Acquire(30, 2, 1, 0, "job/1", 500, 2_000),
        Acquire(40, 3, 1, 0, "job/1", 0, 5_000),
        Acquire(50, 2, 2, 0, "job/2", 0, 0),
        Acquire(60, 1, 2, 0, "job/2", 300, 400),
        SetUpList(70, 3, 2, 0, "results", 3_000),
        Insert(80, 3, 3, 2, "results", (b"k1", b"k2", b"k1")),
        SetUpList(90, 1, 3, 0, "forever", 0),
        Insert(100, 1, 4, 0, "forever", (b"z",)),
        Insert(100, 1, 4, 0, "forever", (b"z",)),  # a retry
        Extend(200, 2, 3, 0, "job/2", 2, 0),  # no cap any more
        Release(300, 3, 4, 3, "job/2", 999),  # refused: not the holder
        Tick(500),  # job/2's waiter (session 1, deadline 460) times out
        Tick(1_020),  # job/1's max-hold: handed to session 2
        CancelWait(1_100, 3, "job/1", 1, release_grant=True),
        Acquire(1_150, 3, 5, 4, "job/1", 0, 5_000),
        ForceRelease(1_200, "job/1", "operator"),  # handed to session 3
        CancelWait(1_250, 3, "job/1", 5, release_grant=True),  # the grant raced in: released
        ExpireSession(1_300, 2),  # job/2 freed
        SetUpList(1_400, 1, 5, 4, "short", 100),
        Tick(1_600),  # "short" expires
        CloseSession(1_700, 1),
        SetLimits(1_800, Limits(max_batch=50)),
        OpenSession(1_900, 1_000, "delta", "h4", 44),
        Acquire(2_000, 4, 1, 0, "job/1", 1_000, 9_000),
        TearDownList(2_100, 3, 6, 5, "results"),
        Insert(2_200, 3, 7, 6, "results", (b"gone",)),
        SetUpList(2_300, 3, 8, 6, "results", 10_000),
        Insert(2_400, 3, 9, 8, "results", (b"again",)),
        Acquire(2_450, 3, 10, 9, "job/1", 0, 5_000),
        Tick(3_000),  # job/1's max-hold: handed to session 3
        # Groups and elections (cluster version 5): sessions 3, 4 and a new session 5.
        SetClusterVersion(3_100, 5),
        group.CreateGroup(3_200, 3, 11, 10, "workers"),
        group.JoinGroup(3_210, 3, 12, 10, "workers", "m3", b"caps"),
        group.JoinGroup(3_220, 4, 2, 1, "workers", "m4", b""),
        group.Campaign(3_230, 4, 3, 2, "boss", "m4"),
        group.Campaign(3_240, 3, 13, 10, "boss", "m3"),
        OpenSession(3_250, 5_000, "epsilon", "h5", 55),
        group.Campaign(3_260, 5, 1, 0, "boss", "m5"),
        group.JoinGroup(3_270, 5, 2, 1, "workers", "m5", b"x"),
        group.Resign(3_300, 4, 4, 3, "boss"),  # m3 elected
        group.UpdateCapabilities(3_310, 3, 14, 10, "workers", "m3", b"new"),
        group.CreateGroup(3_320, 5, 3, 2, "empty"),
        group.Campaign(3_330, 4, 5, 4, "second", "m4"),
        # Semaphores, acquires of several locks, descriptions (cluster version 6).
        SetClusterVersion(3_400, 6),
        # job/1 is held by session 3: queued for both, so multi/a is free with a waiter.
        sem.AcquireLocks(3_410, 5, 4, 3, ("job/1", "multi/a"), 0, 4_000, "job=9"),
        sem.AcquireLocks(3_420, 4, 6, 5, ("multi/b", "multi/c"), 500, 0, "host=w4"),
        sem.AcquirePermit(3_430, 3, 15, 14, "pool", 2, 0, 0, "a"),
        sem.AcquirePermit(3_440, 4, 7, 6, "pool", 2, 800, 0, ""),
        sem.AcquirePermit(3_450, 5, 5, 4, "pool", 2, 0, 3_000, "w"),  # queued
        sem.AcquirePermit(3_460, 3, 16, 15, "pool", 2, 0, 3_000, ""),  # queued behind it
        Tick(3_920),  # multi/b and multi/c's max-hold
        Tick(4_240),  # session 4's permit's max-hold: handed to session 5
        sem.CancelPermitWait(4_300, 3, "pool", 16),
    ]
    return log
