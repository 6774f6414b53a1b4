"""``Group``: named sets of members for service discovery and partitioning work, and ``Watch``,
the iterator of changes that follows a group or an election."""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING, Generic, TypeVar

from turnstile.client.group_core import (
    GroupInfo,
    GroupTracker,
    Member,
    check_member_id,
)
from turnstile.client.watch_core import Change, Cursor, Tracker, long_poll_timing
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.client import Client

TrackerT = TypeVar("TrackerT", bound=Tracker)


class Watch(Generic[TrackerT]):
    """The changes to one group or election, oldest first, each once, across leader changes
    (see ``turnstile.client.watch_core``). ``tracker`` holds the object's state as of
    ``revision``: a group's ``members``, an election's ``leader``.

    Iterating blocks until the next change (long polls on the server, in slices) and ends once
    ``timeout`` seconds pass without one (None: never). ``poll(timeout)`` returns what is there.
    """

    def __init__(
        self,
        client: Client,
        tracker: TrackerT,
        timeout: float | None = None,
        after_revision: int | None = None,
    ) -> None:
        self.client = client
        self.tracker = tracker
        self.timeout = timeout
        self._cursor = Cursor(tracker, after_revision)
        self._ready: collections.deque[Change] = collections.deque()

    @property
    def revision(self) -> int | None:
        """The revision seen up to; None before the first read."""
        return self._cursor.revision

    def poll(self, timeout: float = 0.0) -> list[Change]:
        """The changes not returned yet, waiting up to ``timeout`` seconds for the first (the
        first call only reads the object when no ``after_revision`` was given)."""
        clock = self.client.retry.clock
        ends = clock() + timeout
        while not self._ready:
            request = self._cursor.next_request(max(0.0, ends - clock()))
            deadline, attempt = long_poll_timing(request, self.client.retry)
            response = self.client.invoke(request, deadline=deadline, attempt_timeout=attempt)
            self._ready.extend(self._cursor.answered(response))
            if self._cursor.revision is not None and clock() >= ends:
                break
        changes = list(self._ready)
        self._ready.clear()
        return changes

    def __iter__(self) -> Watch[TrackerT]:
        return self

    def __next__(self) -> Change:
        if not self._ready:
            self._ready.extend(self.poll(math.inf if self.timeout is None else self.timeout))
        if not self._ready:
            raise StopIteration
        return self._ready.popleft()


class Group:
    """The group ``name``: members joined by sessions, each with an opaque capabilities value.

    A member belongs to the session that joined it and leaves when that session ends (closed,
    or expired), so a crashed process drops out of its groups within its session's TTL.

    .. code-block:: python

        workers = client.group("workers")
        workers.create()
        workers.join("worker-1", b"weight=2")
        for change in workers.watch():
            print(change.type, change.member_id)
    """

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def create(self) -> bool:
        """Creates the group; False if it existed already."""
        return bool(self.client.write(pb.CreateGroupRequest(name=self.name)).created)

    def delete(self) -> None:
        """Deletes the empty group.

        :raises NotFoundError: no such group. :raises FailedPreconditionError: it has members.
        """
        self.client.write(pb.DeleteGroupRequest(name=self.name))

    def join(self, member_id: str, capabilities: bytes = b"") -> bool:
        """Adds ``member_id`` for this client's session; False if that id is a member already
        (joined by any session). :raises NotFoundError: no such group."""
        check_member_id(member_id)
        request = pb.JoinGroupRequest(
            name=self.name, member_id=member_id, capabilities=capabilities
        )
        return bool(self.client.write(request).joined)

    def leave(self, member_id: str) -> bool:
        """Removes ``member_id``, whichever session joined it (so a replacement can remove a
        stale member); False if it was no member. :raises NotFoundError: no such group."""
        request = pb.LeaveGroupRequest(name=self.name, member_id=member_id)
        return bool(self.client.write(request).left)

    def update(self, member_id: str, capabilities: bytes) -> bool:
        """Replaces the capabilities of a member this session joined; False if it has none of
        that id. :raises NotFoundError: no such group."""
        request = pb.UpdateCapabilitiesRequest(
            name=self.name, member_id=member_id, capabilities=capabilities
        )
        return bool(self.client.write(request).updated)

    def describe(self) -> GroupInfo:
        """The group, its members and the revision it reflects (linearizable).

        :raises NotFoundError: no such group."""
        response = self.client.invoke(pb.DescribeGroupRequest(name=self.name))
        return GroupInfo.from_pb(response.group, response.revision)

    def members(self) -> dict[str, Member]:
        """The members by id. :raises NotFoundError: no such group."""
        return self.describe().members

    def watch(
        self, timeout: float | None = None, after_revision: int | None = None
    ) -> Watch[GroupTracker]:
        """The group's changes (created, joined, left, updated, deleted) after
        ``after_revision`` (None: after a first read of the group, which sets
        ``watch.tracker.members``); see ``Watch``."""
        return Watch(self.client, GroupTracker(self.name), timeout, after_revision)

    def __repr__(self) -> str:
        return f"<turnstile Group {self.name!r}>"
