"""Timers: the pending expiries of the state machine (lock and permit max-hold, waiter
deadline, list TTL).

Pure and deterministic, like the state machine that owns them. Expiries due at the same
instant are applied in the order (due, kind, name, then the entry's ids). An entry is never
removed when what it times out changes (a renewed max-hold or TTL, a freed lock, a dropped
waiter): the owner checks each entry against its state when it is popped, and ``Timers``
drops the stale ones in bulk once they outnumber the live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import NamedTuple

#: Stale timers tolerated beyond twice the live bound before the heap is compacted.
_SLACK = 64


class TimerKind(IntEnum):
    """What a timer times out, in the order expiries due at the same instant are applied."""

    HOLD = 0
    WAIT = 1
    LIST = 2
    #: A semaphore permit's max-hold, and a permit waiter's deadline (cluster version 6).
    PERMIT_HOLD = 3
    PERMIT_WAIT = 4


class Timer(NamedTuple):
    """One pending expiry. A tuple, so entries order (due, kind, name, token, session, seq)
    and compare as fast as the heap needs; build them with ``hold``, ``wait`` or ``ttl``."""

    due: int
    kind: TimerKind
    #: The lock, semaphore or list.
    name: str
    #: HOLD, PERMIT_HOLD: the hold's fencing token.
    token: int = 0
    #: WAIT, PERMIT_WAIT: the waiter's session and acquire seq.
    session: int = 0
    seq: int = 0

    @classmethod
    def hold(cls, due: int, lock: str, token: int) -> Timer:
        """The max-hold of the hold ``token`` on ``lock`` ends at ``due``."""
        return cls(due, TimerKind.HOLD, lock, token=token)

    @classmethod
    def wait(cls, due: int, lock: str, session: int, seq: int) -> Timer:
        """The wait of acquire (``session``, ``seq``) for ``lock`` ends at ``due``."""
        return cls(due, TimerKind.WAIT, lock, session=session, seq=seq)

    @classmethod
    def permit_hold(cls, due: int, semaphore: str, token: int) -> Timer:
        """The max-hold of the permit ``token`` of ``semaphore`` ends at ``due``."""
        return cls(due, TimerKind.PERMIT_HOLD, semaphore, token=token)

    @classmethod
    def permit_wait(cls, due: int, semaphore: str, session: int, seq: int) -> Timer:
        """The wait of permit acquire (``session``, ``seq``) for ``semaphore`` ends at ``due``."""
        return cls(due, TimerKind.PERMIT_WAIT, semaphore, session=session, seq=seq)

    @classmethod
    def ttl(cls, due: int, name: str) -> Timer:
        """The list ``name`` expires at ``due``."""
        return cls(due, TimerKind.LIST, name)


class Timers:
    """A heap of timers, earliest first."""

    __slots__ = ("_heap",)

    def __init__(self, timers: Iterable[Timer] = ()) -> None:
        self._heap = list(timers)
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, timer: Timer, live_bound: int, is_live: Callable[[Timer], bool]) -> None:
        """Adds a timer; when stale entries outnumber the live ones, drops them all, so the
        heap stays O(live timers).

        ``live_bound`` bounds the live entries without a scan (at most one timer per lock
        holder, waiter and list is live). Rebuilding is O(n) after at least n pushes.
        """
        heapq.heappush(self._heap, timer)
        if len(self._heap) > 2 * live_bound + _SLACK:
            # A set: renewals to the same instant leave equal entries, all of them "live".
            # Sorted, the distinct entries are a heap already, whatever the set's order.
            self._heap = sorted({t for t in self._heap if is_live(t)})

    def pop_due(self, clock: int) -> Timer | None:
        """The earliest timer due at or before ``clock``, removed; None if none is due."""
        if self._heap and self._heap[0].due <= clock:
            return heapq.heappop(self._heap)
        return None

    def first_live(self, is_live: Callable[[Timer], bool]) -> Timer | None:
        """The earliest live timer, dropping the stale ones before it; None if none is."""
        while self._heap:
            if is_live(self._heap[0]):
                return self._heap[0]
            heapq.heappop(self._heap)
        return None
