"""The one hand-over from the Raft thread to the node's asyncio loop.

pysyncobj calls back on its own thread: applied entries, the outcomes of this node's proposals,
role changes, answers to membership and transfer requests. Each is posted here, and one drain
per burst runs them on the loop in the order they were posted. So an entry's applied events are
handled before the outcome of the proposal that wrote it, and the loop wakes once per burst of
commits, not once per command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class LoopBridge:
    """Runs callbacks posted from any thread on one asyncio loop, in posting order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._posted: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._drain_scheduled = False

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Any thread: ``callback(*args)`` runs on the loop soon. Dropped once the loop is
        closed (the node is stopping)."""
        self._posted.append((callback, args))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            # RuntimeError: the loop is closed.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        posted = self._posted
        while posted:
            callback, args = posted.popleft()
            try:
                callback(*args)
            except Exception:
                log.exception("a callback from the Raft thread failed: %r", callback)
