"""Which node to call: the cached leader, else the endpoints in turn; follows redirects."""

from __future__ import annotations

import threading
from collections.abc import Sequence


class Router:
    """Thread-safe choice of endpoint, shared by the sync and asyncio clients."""

    def __init__(self, endpoints: Sequence[str]) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint (host:port) is required")
        self._endpoints = list(dict.fromkeys(endpoints))
        self._leader: str | None = None
        self._next = 0
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
            if self._leader is not None:
                return self._leader
            return self._endpoints[self._next % len(self._endpoints)]

    def succeeded(self, endpoint: str) -> None:
        """``endpoint`` served a leader-only call: it is the leader."""
        with self._lock:
            self._leader = endpoint

    def failed(self, endpoint: str, leader_hint: str = "") -> None:
        """``endpoint`` could not serve; follow the hint, else move on to the next endpoint."""
        with self._lock:
            if leader_hint and leader_hint != endpoint:
                if leader_hint not in self._endpoints:
                    self._endpoints.append(leader_hint)
                self._leader = leader_hint
                return
            if self._leader == endpoint or self._leader is None:
                self._leader = None
                position = self._endpoints.index(endpoint) if endpoint in self._endpoints else -1
                self._next = position + 1
