"""The keep-alive protocol on the leader: a session's deadline moves only on a leader that
is still leader after the keep-alive arrived.

1. This node leads and the session is live here (not expired, no expiry proposed).
2. A read barrier commits in this leader's term after the keep-alive arrived (one round
   carries every keep-alive and linearizable read in flight): a leader deposed meanwhile,
   paused or cut off, cannot renew a session whose expiry its successor may have decided.
3. Still leading, the session's deadline becomes arrival + TTL (counted from the arrival,
   never from after the barrier).
4. The session is read from the applied state: an expiry applied meanwhile answers
   SESSION_EXPIRED.

Keep-alives enter the log only through that shared barrier; the deadlines themselves live in
the leader's memory (``turnstile.cluster.sessions``). A follower serving a session stream
forwards its keep-alives to the leader, many to one call (``turnstile.cluster.forwarder``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from turnstile.cluster import views
from turnstile.cluster.errors import TurnstileError
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.node import Node


class KeepAlives:
    """Renews sessions on the leader."""

    def __init__(self, node: Node) -> None:
        self._node = node

    async def renew(self, session: int) -> int:
        """Keeps ``session`` alive for another TTL from now; returns the TTL in ms.

        :raises TurnstileError: NOT_LEADER, or SESSION_EXPIRED.
        """
        (renewed,) = await self.renew_many([session])
        if isinstance(renewed, TurnstileError):
            raise renewed
        return renewed

    async def renew_many(self, sessions: list[int]) -> list[int | TurnstileError]:
        """``renew`` for keep-alives that arrived together, under one barrier round: each
        session's TTL in ms, or its SESSION_EXPIRED.

        :raises TurnstileError: NOT_LEADER, for all of them.
        """
        node = self._node
        if not node.leading and node.forwarder.enabled:
            return await node.forwarder.keep_alive(sessions, lambda: self.renew_many(sessions))
        arrived = time.monotonic()
        node.require_leader()
        live = [node.tracker.is_live(session) for session in sessions]
        if any(live):
            await node.barrier.wait()
            node.require_leader()
        ttls = node.raft.read(lambda state: views.session_ttls(state, sessions))
        return [
            ttl
            if was_live and ttl is not None and node.tracker.renew(session, arrived)
            else _expired(session)
            for session, was_live, ttl in zip(sessions, live, ttls, strict=True)
        ]


def _expired(session: int) -> TurnstileError:
    return TurnstileError(Reason.SESSION_EXPIRED, f"session {session} is unknown or expired")
