"""``DistinctList``: a replicated set that gives every distinct member one stable id."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from turnstile.client.core import (
    PAGE,
    Member,
    check_ttl,
    first_id,
    insert_batches,
    insert_results,
    member_bytes,
    page_after,
    set_up_request,
)
from turnstile.client.errors import NotFoundError
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.client import Client


class DistinctList:
    """The distinct list ``name``: ``insert`` tells whether a member is new and gives its id.

    Ids are dense (1, 2, 3 ...) in insertion order; a member inserted again gets the id it was
    first given, whoever inserts it. The first insert through this object sets the list up
    (creates it, or renews its TTL to ``ttl``); reads never do, and read a missing list as
    empty. A list torn down later is not silently re-created by this object.

    .. code-block:: python

        results = client.distinct_list("run-2024-06", ttl=3600)
        added, result_id = results.insert("key_foo")
    """

    def __init__(self, client: Client, name: str, ttl: float | None = None) -> None:
        check_ttl(ttl)
        self.client = client
        self.name = name
        self.ttl = ttl
        self._set_up = False
        self._lock = threading.Lock()

    def set_up(self) -> bool:
        """Creates the list, or renews its TTL if it exists. Returns True if created."""
        response = self.client.write(set_up_request(self.name, self.ttl))
        self._set_up = True
        return bool(response.created)

    def _ensure_set_up(self) -> None:
        if not self._set_up:
            with self._lock:
                if not self._set_up:
                    self.set_up()

    def insert(self, member: Member) -> tuple[bool, int]:
        """Adds ``member``: (True, new id), or (False, the id it was first given).

        :raises NotFoundError: the list was torn down (it is not silently re-created).
        :raises InvalidArgumentError: an empty or oversize member.
        """
        return self.insert_many([member])[0]

    def insert_many(self, members: Iterable[Member]) -> list[tuple[bool, int]]:
        """``insert`` for many members, in batches; one (added, id) per member, in order."""
        batches = insert_batches(self.name, members)
        self._ensure_set_up()
        results: list[tuple[bool, int]] = []
        for batch in batches:
            results += insert_results(self.client.write(batch))
        return results

    def id_of(self, member: Member) -> int | None:
        """The member's id, or None if it is not in the list (or there is no such list)."""
        try:
            response = self.client.invoke(
                pb.ContainsRequest(name=self.name, members=[member_bytes(member)])
            )
        except NotFoundError:
            return None
        return first_id(response)

    def contains(self, member: Member) -> bool:
        return self.id_of(member) is not None

    def member(self, member_id: int) -> bytes | None:
        """The member that was given ``member_id``, or None if none was (or no such list)."""
        try:
            response = self.client.invoke(pb.LookupRequest(name=self.name, ids=[member_id]))
        except NotFoundError:
            return None
        return response.members[0] or None

    __contains__ = contains

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """Members in the list; 0 if there is no such list."""
        try:
            response = self.client.invoke(pb.SizeRequest(name=self.name))
        except NotFoundError:
            return 0
        return int(response.list.size)

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        """(member, id) pairs in id order, fetched a page at a time (none if no such list)."""
        after: int | None = 0
        while after is not None:
            try:
                response = self.client.invoke(
                    pb.MembersRequest(name=self.name, after_id=after, limit=PAGE)
                )
            except NotFoundError:
                return
            for item in response.members:
                yield item.member, item.id
            after = page_after(response)

    def tear_down(self) -> bool:
        """Deletes the list and its ids. Returns False if it did not exist."""
        response = self.client.write(pb.TearDownListRequest(name=self.name))
        self._set_up = False
        return bool(response.removed)

    def __repr__(self) -> str:
        return f"<turnstile DistinctList {self.name!r}>"
