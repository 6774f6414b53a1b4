"""``AsyncDistinctList``: ``turnstile.client.DistinctList`` for asyncio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
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
    from turnstile.client.aio import AsyncClient


class AsyncDistinctList:
    """``turnstile.client.DistinctList`` for asyncio."""

    def __init__(self, client: AsyncClient, name: str, ttl: float | None = None) -> None:
        check_ttl(ttl)
        self.client = client
        self.name = name
        self.ttl = ttl
        self._set_up = False

    async def set_up(self) -> bool:
        response = await self.client.write(set_up_request(self.name, self.ttl))
        self._set_up = True
        return bool(response.created)

    async def insert(self, member: Member) -> tuple[bool, int]:
        return (await self.insert_many([member]))[0]

    async def _ensure_set_up(self) -> None:
        if not self._set_up:
            await self.set_up()

    async def insert_many(self, members: Iterable[Member]) -> list[tuple[bool, int]]:
        batches = insert_batches(self.name, members)
        await self._ensure_set_up()
        results: list[tuple[bool, int]] = []
        for batch in batches:
            results += insert_results(await self.client.write(batch))
        return results

    async def id_of(self, member: Member) -> int | None:
        try:
            response = await self.client.invoke(
                pb.ContainsRequest(name=self.name, members=[member_bytes(member)])
            )
        except NotFoundError:
            return None
        return first_id(response)

    async def member(self, member_id: int) -> bytes | None:
        """The member that was given ``member_id``, or None if none was (or no such list)."""
        try:
            response = await self.client.invoke(pb.LookupRequest(name=self.name, ids=[member_id]))
        except NotFoundError:
            return None
        return response.members[0] or None

    async def contains(self, member: Member) -> bool:
        return (await self.id_of(member)) is not None

    async def size(self) -> int:
        try:
            response = await self.client.invoke(pb.SizeRequest(name=self.name))
        except NotFoundError:
            return 0
        return int(response.list.size)

    async def __aiter__(self) -> AsyncIterator[tuple[bytes, int]]:
        after: int | None = 0
        while after is not None:
            try:
                response = await self.client.invoke(
                    pb.MembersRequest(name=self.name, after_id=after, limit=PAGE)
                )
            except NotFoundError:
                return
            for item in response.members:
                yield item.member, item.id
            after = page_after(response)

    async def tear_down(self) -> bool:
        response = await self.client.write(pb.TearDownListRequest(name=self.name))
        self._set_up = False
        return bool(response.removed)

    def __repr__(self) -> str:
        return f"<turnstile AsyncDistinctList {self.name!r}>"
