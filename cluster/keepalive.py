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
the leader's memory (``turnstile.cluster.sessions``).
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
        arrived = time.monotonic()
        node = self._node
        node.require_leader()
        if not node.tracker.is_live(session):
            raise _expired(session)
        await node.barrier.wait()
        node.require_leader()
        if not node.tracker.renew(session, arrived):
            raise _expired(session)
        view = node.raft.read(lambda state: views.session_view(state, session, 0))
        if view is None:
            raise _expired(session)
        return view.ttl_ms


def _expired(session: int) -> TurnstileError:
    return TurnstileError(Reason.SESSION_EXPIRED, f"session {session} is unknown or expired")
