"""The records the replicated state is made of: sessions, locks with their holder and FIFO
waiters, semaphores with their permit holders and waiters, distinct lists, groups and
elections. Snapshots store them; ``StateMachine.reindex``
rebuilds what is derived from them (a session's held, waiting, permit, joined and standing sets,
counters, timers).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from turnstile.cluster.commands import Result


class SeqRanges:
    """A set of request seqs as sorted, disjoint, inclusive ranges: the seqs a client reported
    answered above its ``acked``. Answered seqs are nearly contiguous, so a few ranges hold
    thousands of them while one long blocked acquire pins ``acked``."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: list[tuple[int, int]] | None = None) -> None:
        self.ranges: list[tuple[int, int]] = ranges or []

    def __contains__(self, seq: int) -> bool:
        at = bisect.bisect_right(self.ranges, (seq, 2**64)) - 1
        return at >= 0 and self.ranges[at][0] <= seq <= self.ranges[at][1]

    def add(self, seq: int) -> None:
        if seq in self:
            return
        ranges = self.ranges
        at = bisect.bisect_left(ranges, (seq, seq))
        joins_left = at > 0 and ranges[at - 1][1] == seq - 1
        joins_right = at < len(ranges) and ranges[at][0] == seq + 1
        if joins_left and joins_right:
            ranges[at - 1 : at + 1] = [(ranges[at - 1][0], ranges[at][1])]
        elif joins_left:
            ranges[at - 1] = (ranges[at - 1][0], seq)
        elif joins_right:
            ranges[at] = (seq, ranges[at][1])
        else:
            ranges.insert(at, (seq, seq))

    def drop_through(self, seq: int) -> None:
        """Forgets every seq <= ``seq`` (they are refused as acknowledged anyway)."""
        ranges = [(max(lo, seq + 1), hi) for lo, hi in self.ranges if hi > seq]
        self.ranges = ranges

    def __len__(self) -> int:
        return len(self.ranges)


@dataclass(slots=True)
class Session:
    id: int
    ttl_ms: int
    client_name: str
    client_host: str
    client_pid: int
    opened_at: int
    #: Names of the locks this session holds.
    held: set[str] = field(default_factory=set)
    #: (lock name, acquire seq) of each of its queued acquires (an acquire of several locks
    #: has an entry per lock).
    waiting: set[tuple[str, int]] = field(default_factory=set)
    #: seq -> result, for exactly-once retries; pruned by the client's ``acked``.
    results: dict[int, Result] = field(default_factory=dict)
    #: Highest seq the client has acknowledged; older requests are not re-applied.
    acked: int = 0
    #: Seqs above ``acked`` the client reported answered (their results may be gone): a late
    #: copy of one of them is refused, never applied a second time.
    forgotten: SeqRanges = field(default_factory=SeqRanges)
    #: (group, member id) of each group member it joined.
    joined: set[tuple[str, str]] = field(default_factory=set)
    #: Names of the elections it stands in.
    standing: set[str] = field(default_factory=set)
    #: (semaphore name, token) of each permit it holds.
    permits: set[tuple[str, int]] = field(default_factory=set)
    #: (semaphore name, acquire seq) of each of its queued permit acquires.
    permit_waits: set[tuple[str, int]] = field(default_factory=set)


@dataclass(slots=True)
class Holder:
    session: int
    token: int
    #: The acquire request that was granted (abandoning it releases this hold).
    acquire_seq: int
    granted_at: int
    #: Log time when the max-hold ends; 0 means no cap.
    expires_at: int
    #: Who holds it and why, as the acquire said.
    description: str = ""


@dataclass(slots=True)
class Waiter:
    session: int
    seq: int
    max_hold_ms: int
    enqueued_at: int
    deadline: int
    description: str = ""
    #: Every lock an acquire of several locks takes, in its order; the one object is queued
    #: in each of their queues. Empty for an acquire of one lock or permit.
    names: tuple[str, ...] = ()

    def takes(self, name: str) -> tuple[str, ...]:
        """The locks this waiter takes, queued for ``name``."""
        return self.names or (name,)

    def same(self, other: Waiter) -> bool:
        """The same acquire (copies of one several-lock waiter restored from a snapshot are
        equal, not identical)."""
        return self.session == other.session and self.seq == other.seq


def find_waiter(waiters: list[Waiter], session_id: int, seq: int) -> Waiter | None:
    """The waiter of acquire (``session_id``, ``seq``) in a lock's or semaphore's queue."""
    for waiter in waiters:
        if waiter.session == session_id and waiter.seq == seq:
            return waiter
    return None


@dataclass(slots=True)
class LockState:
    name: str
    holder: Holder | None = None
    waiters: list[Waiter] = field(default_factory=list)


@dataclass(slots=True)
class SemaphoreState:
    """Up to ``limit`` permit holders at once, in grant order, and a FIFO queue; forgotten
    when it has neither."""

    name: str
    limit: int
    holders: list[Holder] = field(default_factory=list)
    waiters: list[Waiter] = field(default_factory=list)


@dataclass(slots=True)
class ListState:
    name: str
    ttl_ms: int
    created_at: int
    #: Log time when the list is torn down; 0 means never.
    expires_at: int
    ids: dict[bytes, int] = field(default_factory=dict)
    #: members[i] has id i + 1.
    members: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class GroupMember:
    member_id: str
    #: The session that joined it: the member leaves when the session ends.
    session: int
    capabilities: bytes
    joined_at: int
    updated_at: int


@dataclass(slots=True)
class GroupState:
    name: str
    created_at: int
    members: dict[str, GroupMember] = field(default_factory=dict)


@dataclass(slots=True)
class Candidate:
    session: int
    member_id: str
    #: When it joined the queue, then when it was elected.
    since: int
    #: The leadership's fencing token; 0 while it waits.
    token: int = 0


@dataclass(slots=True)
class ElectionState:
    """The head of ``candidates`` leads (its token is set); forgotten when nobody stands."""

    name: str
    candidates: list[Candidate] = field(default_factory=list)
