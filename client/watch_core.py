"""What the sync and asyncio watches share and does no I/O: changes as the client sees them,
the Watch request and its answer, and a watch's cursor over one object.

A watch follows the state's revision: it reads the object (a Describe carries the revision it
reflects), then asks ``Watches.Watch`` for the changes after that revision, and after the
revision of each answer, so it misses nothing and sees nothing twice, whichever node answers
and however often the leader changes. Each Watch call long-polls on the leader (``wait_ms``,
at most ``WATCH_SLICE_S`` a call); nothing sleeps and asks again.

**Compacted.** Each node keeps a bounded history, which starts afresh when it restarts. A
watch whose revision the history no longer reaches is answered ``compacted``; the cursor then
reads the object again and reports the difference from what it knew as changes of their own
(``cause == "compacted"``, at the new read's revision), so a watcher's view of the object stays
right, though intermediate steps (a member that joined and left meanwhile) are not seen.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf.message import Message

from turnstile.client.retry import RetryPolicy
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.timeouts import CLIENT_WAIT_GRACE_S

#: The longest one Watch (or Campaign) call waits on the server; a longer wait asks again.
WATCH_SLICE_S = 30.0
#: The cause of a change a watch made up from a re-read after ``compacted``.
CAUSE_COMPACTED = "compacted"


class WatchKind(enum.Enum):
    """What a watch follows (the wire's ``WatchKind``)."""

    GROUP = pb.WATCH_GROUP
    ELECTION = pb.WATCH_ELECTION
    LOCK = pb.WATCH_LOCK
    LIST = pb.WATCH_LIST


class ChangeType(enum.Enum):
    """What happened (the wire's ``ChangeType``)."""

    CREATED = pb.CHANGE_CREATED
    DELETED = pb.CHANGE_DELETED
    JOINED = pb.CHANGE_JOINED
    LEFT = pb.CHANGE_LEFT
    UPDATED = pb.CHANGE_UPDATED
    ELECTED = pb.CHANGE_ELECTED
    RESIGNED = pb.CHANGE_RESIGNED
    GRANTED = pb.CHANGE_GRANTED
    FREED = pb.CHANGE_FREED
    INSERTED = pb.CHANGE_INSERTED


#: One watched object: its kind and name.
WatchKey = tuple[WatchKind, str]


@dataclass(frozen=True)
class Change:
    """One change to a watched object. Changes of one revision happened in one step."""

    revision: int
    kind: WatchKind
    name: str
    type: ChangeType
    #: The group member or election candidate concerned.
    member_id: str = ""
    #: The session concerned (member, leader or lock holder).
    session_id: int = 0
    #: The leadership's or lock hold's fencing token.
    token: int = 0
    #: Why a member left, a leader resigned, a hold ended or a list was deleted.
    cause: str = ""
    #: A joined or updated member's capabilities.
    capabilities: bytes = b""
    #: INSERTED: the ids the new list members got.
    first_id: int = 0
    last_id: int = 0

    @property
    def key(self) -> WatchKey:
        return (self.kind, self.name)

    @classmethod
    def from_pb(cls, change: pb.Change) -> Change:
        return cls(
            revision=change.revision,
            kind=WatchKind(change.kind),
            name=change.name,
            type=ChangeType(change.type),
            member_id=change.member_id,
            session_id=change.session_id,
            token=change.token,
            cause=change.cause,
            capabilities=change.capabilities,
            first_id=change.first_id,
            last_id=change.last_id,
        )


@dataclass(frozen=True)
class WatchResult:
    """One Watch answer: the changes after the revision asked for, up to ``revision`` (pass
    it as the next ``after_revision``); or ``compacted``: re-read the objects instead."""

    revision: int
    changes: tuple[Change, ...]
    compacted: bool


def watch_request(keys: Iterable[WatchKey], after_revision: int, timeout: float) -> pb.WatchRequest:
    """The Watch of ``keys`` after ``after_revision``, waiting up to ``timeout`` seconds on the
    server for the first change (0: answers at once)."""
    if timeout < 0:
        raise ValueError("timeout must be non-negative seconds")
    request = pb.WatchRequest(after_revision=after_revision, wait_ms=int(timeout * 1000))
    for kind, name in keys:
        request.keys.add(kind=kind.value, name=name)
    if not request.keys:
        raise ValueError("a watch needs at least one key")
    return request


def watch_result(response: pb.WatchResponse) -> WatchResult:
    return WatchResult(
        response.revision,
        tuple(Change.from_pb(c) for c in response.changes),
        response.compacted,
    )


class Tracker(Protocol):
    """One watched object's state as a watch knows it, kept by its changes (no I/O)."""

    @property
    def key(self) -> WatchKey: ...

    def read_request(self) -> Message:
        """The read that gives the object's state and the revision it reflects."""
        ...

    def load(self, response: Any) -> tuple[list[Change], int]:
        """Takes the state of a read: the changes from what was known (none on the first
        read, which only sets the state), and the read's revision."""
        ...

    def apply(self, change: Change) -> None:
        """Takes a change the Watch reported."""
        ...


class Cursor:
    """Where one watch stands: the revision it has seen up to, and its object's tracker. The
    sync and asyncio watches send what it asks for and hand it the answers."""

    def __init__(self, tracker: Tracker, after_revision: int | None = None) -> None:
        self.tracker = tracker
        #: None until the first read (or the caller's ``after_revision``).
        self.revision = after_revision

    def next_request(self, timeout: float | None) -> Message:
        """The next call: the read when nothing was read yet or the history was compacted,
        else the Watch after the revision seen."""
        if self.revision is None:
            return self.tracker.read_request()
        wait = WATCH_SLICE_S if timeout is None else min(timeout, WATCH_SLICE_S)
        return watch_request([self.tracker.key], self.revision, wait)

    def answered(self, response: Any) -> list[Change]:
        """The changes an answer of ``next_request`` brings, oldest first. A Watch of several
        keys may be handed to the cursor of each: each takes its own key's changes."""
        if not isinstance(response, pb.WatchResponse):
            changes, self.revision = self.tracker.load(response)
            return changes
        result = watch_result(response)
        if result.compacted:
            self.revision = None  # the next request reads again
            return []
        key = self.tracker.key
        fresh = [c for c in result.changes if c.revision > (self.revision or 0) and c.key == key]
        for change in fresh:
            self.tracker.apply(change)
        self.revision = result.revision
        return fresh


def long_poll_timing(request: Message, retry: RetryPolicy) -> tuple[float | None, float | None]:
    """The deadline and longest attempt of a call that waits ``wait_ms`` on the server (a
    Watch, a Campaign): the retry policy's plus the wait, and the wait plus the server's
    grace. (None, None), the defaults, for any other call."""
    wait = getattr(request, "wait_ms", 0) / 1000
    if not wait:
        return None, None
    return retry.deadline + wait, wait + CLIENT_WAIT_GRACE_S
