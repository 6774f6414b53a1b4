"""Leader-only session deadlines: keep-alives renew them in memory, never in the log.

The leader proposes ``ExpireSession`` for a session whose deadline passed. On becoming leader
every known session gets a fresh deadline of now + TTL, so a failover never expires a live
client early (expiries are late by at most an election, never early). Time is injected
(monotonic seconds), so this is tested without waiting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class _Tracked:
    ttl_s: float
    deadline: float
    #: Its expiry has been proposed: keep-alives are refused from now on.
    expiring: bool = False


class SessionTracker:
    """Keep-alive deadlines of the sessions in the replicated state, held by the leader."""

    def __init__(self) -> None:
        self._sessions: dict[int, _Tracked] = {}

    def reset(self, sessions: Iterable[tuple[int, int]], now: float) -> None:
        """On promotion: every session (id, ttl_ms) is given now + TTL."""
        self._sessions = {sid: _Tracked(ttl / 1000, now + ttl / 1000) for sid, ttl in sessions}

    def clear(self) -> None:
        """On losing leadership: a follower tracks nothing."""
        self._sessions = {}

    def add(self, session: int, ttl_ms: int, now: float) -> None:
        if session not in self._sessions:
            self._sessions[session] = _Tracked(ttl_ms / 1000, now + ttl_ms / 1000)

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
        tracked.deadline = max(tracked.deadline, arrived_at + tracked.ttl_s)
        return True

    def is_live(self, session: int) -> bool:
        tracked = self._sessions.get(session)
        return tracked is not None and not tracked.expiring

    def take_due(self, now: float) -> list[int]:
        """Sessions whose deadline passed, in id order; each is marked expiring."""
        due = sorted(
            sid for sid, t in self._sessions.items() if not t.expiring and t.deadline <= now
        )
        for sid in due:
            self._sessions[sid].expiring = True
        return due

    def retry_later(self, session: int, now: float) -> None:
        """Its expiry proposal failed without a verdict: propose again at ``now``."""
        tracked = self._sessions.get(session)
        if tracked is not None:
            tracked.expiring = False
            tracked.deadline = min(tracked.deadline, now)

    def next_deadline(self) -> float | None:
        pending = [t.deadline for t in self._sessions.values() if not t.expiring]
        return min(pending) if pending else None

    def __len__(self) -> int:
        return len(self._sessions)
