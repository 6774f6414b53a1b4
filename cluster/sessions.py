"""Leader-only session deadlines: keep-alives renew them in memory, never in the log.

The leader proposes ``ExpireSession`` for a session whose deadline passed. On becoming leader
every known session gets a fresh deadline of now + TTL, so a failover never expires a live
client early (expiries are late by at most an election, never early). Time is injected
(monotonic seconds), so this is tested without waiting.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class _Tracked:
    ttl_s: float
    deadline: float
    #: Its expiry has been proposed: keep-alives are refused from now on.
    expiring: bool = False


class SessionTracker:
    """Keep-alive deadlines of the sessions in the replicated state, held by the leader.

    Deadlines also sit in a heap, so the duties loop (which asks after every applied batch)
    finds what is due in O(log n) with 10,000s of sessions. A renewal pushes the new deadline
    and leaves the old heap entry behind; entries that no longer match their session are
    dropped when they reach the top.
    """

    def __init__(self) -> None:
        self._sessions: dict[int, _Tracked] = {}
        self._heap: list[tuple[float, int]] = []

    def reset(self, sessions: Iterable[tuple[int, int]], now: float) -> None:
        """On promotion: every session (id, ttl_ms) is given now + TTL."""
        self._sessions = {sid: _Tracked(ttl / 1000, now + ttl / 1000) for sid, ttl in sessions}
        self._heap = [(t.deadline, sid) for sid, t in self._sessions.items()]
        heapq.heapify(self._heap)

    def clear(self) -> None:
        """On losing leadership: a follower tracks nothing."""
        self._sessions = {}
        self._heap = []

    def add(self, session: int, ttl_ms: int, now: float) -> None:
        if session not in self._sessions:
            tracked = self._sessions[session] = _Tracked(ttl_ms / 1000, now + ttl_ms / 1000)
            heapq.heappush(self._heap, (tracked.deadline, session))

    def remove(self, session: int) -> None:
        self._sessions.pop(session, None)

    def renew(self, session: int, arrived_at: float) -> bool:
        """A keep-alive that arrived at ``arrived_at``; False if the session is gone or expiring.

        The caller acknowledges the keep-alive only on True, and only after confirming its
        leadership with a majority since ``arrived_at``.
        """
        tracked = self._sessions.get(session)
        if tracked is None or tracked.expiring:
            return False
        deadline = arrived_at + tracked.ttl_s
        if deadline > tracked.deadline:
            tracked.deadline = deadline
            heapq.heappush(self._heap, (deadline, session))
        return True

    def is_live(self, session: int) -> bool:
        tracked = self._sessions.get(session)
        return tracked is not None and not tracked.expiring

    def take_due(self, now: float) -> list[int]:
        """Sessions whose deadline passed, in id order; each is marked expiring."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            deadline, sid = heapq.heappop(self._heap)
            tracked = self._sessions.get(sid)
            if tracked is not None and not tracked.expiring and tracked.deadline == deadline:
                tracked.expiring = True
                due.append(sid)
        return sorted(due)

    def retry_later(self, session: int, now: float) -> None:
        """Its expiry proposal failed without a verdict: propose again at ``now``."""
        tracked = self._sessions.get(session)
        if tracked is not None:
            tracked.expiring = False
            tracked.deadline = min(tracked.deadline, now)
            heapq.heappush(self._heap, (tracked.deadline, session))

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, sid = self._heap[0]
            tracked = self._sessions.get(sid)
            if tracked is not None and not tracked.expiring and tracked.deadline == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def __len__(self) -> int:
        return len(self._sessions)
