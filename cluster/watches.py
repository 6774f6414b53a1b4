"""The watch history: every node's bounded record of recent changes, by revision.

The state machine numbers the applied commands that change something a watcher follows (its
``revision``, moved by ``WATCHED`` events) identically on every replica. Each node records the
changes of the entries it applies, in apply order, on its event loop, and answers "changes to
these objects after revision N" from that record:

- A watcher reads an object (its view carries the revision), then asks for the changes after
  that revision, then after the revision of each answer. It misses nothing and sees nothing
  twice, whichever node answers.
- The record is bounded (``HISTORY_CHANGES``, whole revisions dropped oldest first) and starts
  afresh when the node starts or installs a snapshot (a gap in the revisions it applied). A
  watcher asking for changes the record no longer reaches back to is told so (``compacted``),
  never given a partial list: it reads the object again.
- Waiting is on the event loop: a long poll wakes when a change is recorded, nothing polls.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from turnstile.cluster import commands as cmd
from turnstile.cluster import group_commands as group
from turnstile.cluster.state import Applied

#: Changes kept per node (whole revisions are dropped past it).
HISTORY_CHANGES = 10_000


class Kind(IntEnum):
    """What a watch follows (the wire's ``WatchKind`` values)."""

    GROUP = 1
    ELECTION = 2
    LOCK = 3
    LIST = 4


@dataclass(frozen=True, slots=True)
class Change:
    """One change, as a watcher sees it. ``change`` is the event's change string (``joined``,
    ``elected``, ``granted``, ...)."""

    revision: int
    kind: Kind
    name: str
    change: str
    member_id: str = ""
    session: int = 0
    token: int = 0
    cause: str = ""
    capabilities: bytes = b""
    first_id: int = 0
    last_id: int = 0

    @property
    def key(self) -> tuple[Kind, str]:
        return (self.kind, self.name)


GRANTED = "granted"
FREED = "freed"
EXPIRED = "expired"


def changes_of(revision: int, events: Iterable[cmd.Event]) -> list[Change]:
    """The changes watchers see in one applied command's events."""
    found: list[Change] = []
    for event in events:
        match event:
            case group.GroupChanged():
                found.append(
                    Change(
                        revision,
                        Kind.GROUP,
                        event.name,
                        event.change,
                        event.member_id,
                        event.session,
                        cause=event.cause,
                        capabilities=event.capabilities,
                    )
                )
            case group.LeadershipChanged():
                found.append(
                    Change(
                        revision,
                        Kind.ELECTION,
                        event.name,
                        event.change,
                        event.member_id,
                        event.session,
                        event.token,
                        event.cause,
                    )
                )
            case cmd.LockGranted():
                found.append(
                    Change(revision, Kind.LOCK, event.name, GRANTED, "", event.session, event.token)
                )
            case cmd.LockFreed():
                found.append(
                    Change(
                        revision,
                        Kind.LOCK,
                        event.name,
                        FREED,
                        "",
                        event.session,
                        event.token,
                        event.cause,
                    )
                )
            case cmd.ListChanged():
                found.append(
                    Change(
                        revision,
                        Kind.LIST,
                        event.name,
                        event.change,
                        first_id=event.first_id,
                        last_id=event.last_id,
                    )
                )
            case cmd.ListExpired():
                found.append(
                    Change(revision, Kind.LIST, event.name, cmd.LIST_TORN_DOWN, cause=EXPIRED)
                )
            case _:
                pass
    return found


@dataclass(frozen=True, slots=True)
class Answer:
    """The changes after a revision, up to ``revision``; or ``compacted``: re-read instead."""

    revision: int
    changes: tuple[Change, ...]
    compacted: bool


class WatchHistory:
    """Fed with every applied command in apply order (event loop only); see the module."""

    def __init__(self, keep: int = HISTORY_CHANGES) -> None:
        self.keep = keep
        self._changes: collections.deque[Change] = collections.deque()
        #: Every change with a revision above this is recorded (None: nothing observed yet).
        self._complete_after: int | None = None
        #: The revision of the last command observed.
        self._last = 0
        self._wakeups: list[asyncio.Future[None]] = []

    def observe(self, applied: Applied) -> None:
        if applied.revision == 0:
            return  # below cluster version 5: nothing is numbered
        changes = changes_of(applied.revision, applied.events)
        before = applied.revision - 1 if changes else applied.revision
        if self._complete_after is None or before != self._last:
            # The first entry this process applied, or a gap (a snapshot was installed).
            self._changes.clear()
            self._complete_after = before
        self._last = applied.revision
        if not changes:
            return
        self._changes.extend(changes)
        while len(self._changes) > self.keep:
            dropped = self._changes.popleft().revision
            while self._changes and self._changes[0].revision == dropped:
                self._changes.popleft()
            self._complete_after = dropped
        wakeups, self._wakeups = self._wakeups, []
        for wakeup in wakeups:
            if not wakeup.done():
                wakeup.set_result(None)

    def read(self, keys: set[tuple[Kind, str]], after: int) -> Answer:
        """The recorded changes to ``keys`` with a revision above ``after``."""
        if self._complete_after is None or after < self._complete_after:
            return Answer(self._last, (), compacted=True)
        found = tuple(c for c in self._changes if c.revision > after and c.key in keys)
        return Answer(self._last, found, compacted=False)

    async def next_change(self, timeout: float) -> None:
        """Returns when a change is recorded, or after ``timeout`` seconds."""
        wakeup: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wakeups.append(wakeup)
        try:
            await asyncio.wait_for(asyncio.shield(wakeup), timeout)
        except TimeoutError:
            return
        finally:
            if wakeup in self._wakeups:
                self._wakeups.remove(wakeup)
