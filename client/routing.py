"""Which node to call: the cached leader, else the endpoints in turn; follows redirects, and
steers clear for a while of a node that timed out or could not be reached (a paused, frozen
or dead process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence


class Router:
    """Thread-safe choice of endpoint, shared by the sync and asyncio clients.

    A node that let an attempt time out (``STALLED_NODE_AVOID_S``), or could not be reached
    (``UNREACHABLE_NODE_AVOID_S``), is *stalled* for a while: calls go to the other endpoints,
    and a follower's hint that names it is not followed (a follower keeps naming a frozen
    leader until its election timeout). It is tried again when every endpoint is stalled, or
    once it answers."""

    def __init__(
        self, endpoints: Sequence[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint (host:port) is required")
        self._endpoints = list(dict.fromkeys(endpoints))
        self._leader: str | None = None
        self._next = 0
        self._stalled_until: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def endpoints(self) -> list[str]:
        with self._lock:
            return list(self._endpoints)

    @property
    def leader(self) -> str | None:
        with self._lock:
            return self._leader

    def target(self) -> str:
        with self._lock:
            if self._leader is not None and not self._stalled(self._leader):
                return self._leader
            count = len(self._endpoints)
            for step in range(count):
                endpoint = self._endpoints[(self._next + step) % count]
                if not self._stalled(endpoint):
                    return endpoint
            return self._leader or self._endpoints[self._next % count]

    def succeeded(self, endpoint: str) -> None:
        """``endpoint`` served a leader-only call: it is the leader."""
        with self._lock:
            self._leader = endpoint
            self._stalled_until.pop(endpoint, None)

    def failed(self, endpoint: str, leader_hint: str = "", avoid_for: float = 0.0) -> None:
        """``endpoint`` could not serve (if it stalled, avoid it for ``avoid_for`` seconds);
        follow the hint, else move on to the next endpoint."""
        with self._lock:
            if avoid_for > 0:
                self._stalled_until[endpoint] = self._clock() + avoid_for
            if leader_hint and leader_hint != endpoint and not self._stalled(leader_hint):
                if leader_hint not in self._endpoints:
                    self._endpoints.append(leader_hint)
                self._leader = leader_hint
                return
            if self._leader == endpoint or self._leader is None or self._stalled(self._leader):
                self._leader = None
                position = self._endpoints.index(endpoint) if endpoint in self._endpoints else -1
                self._next = position + 1

    def stalled(self, endpoint: str) -> bool:
        """``endpoint`` timed out or was unreachable a moment ago (see ``failed``)."""
        with self._lock:
            return self._stalled(endpoint)

    def _stalled(self, endpoint: str) -> bool:
        until = self._stalled_until.get(endpoint)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._stalled_until[endpoint]
        return False
