"""``AsyncGroup``, ``AsyncElection``, ``AsyncLeadership`` and ``AsyncWatch``: the groups,
elections and watches of ``turnstile.client`` for asyncio, over the same no-I/O cores
(``group_core``, ``watch_core``)."""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING, Generic

from turnstile.client.errors import SessionExpiredError
from turnstile.client.group import TrackerT
from turnstile.client.group_core import (
    CampaignTiming,
    Candidate,
    ElectionTracker,
    GroupInfo,
    GroupTracker,
    Member,
    check_member_id,
    default_member_id,
    leader_of,
)
from turnstile.client.watch_core import Change, Cursor, long_poll_timing
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.aio import AsyncClient, AsyncSession


class AsyncWatch(Generic[TrackerT]):
    """``turnstile.client.group.Watch`` for asyncio: ``async for change in watch``."""

    def __init__(
        self,
        client: AsyncClient,
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
        return self._cursor.revision

    async def poll(self, timeout: float = 0.0) -> list[Change]:
        """See ``Watch.poll``."""
        clock = self.client.retry.clock
        ends = clock() + timeout
        while not self._ready:
            request = self._cursor.next_request(max(0.0, ends - clock()))
            deadline, attempt = long_poll_timing(request, self.client.retry)
            response = await self.client.invoke(request, deadline=deadline, attempt_timeout=attempt)
            self._ready.extend(self._cursor.answered(response))
            if self._cursor.revision is not None and clock() >= ends:
                break
        changes = list(self._ready)
        self._ready.clear()
        return changes

    def __aiter__(self) -> AsyncWatch[TrackerT]:
        return self

    async def __anext__(self) -> Change:
        if not self._ready:
            timeout = math.inf if self.timeout is None else self.timeout
            self._ready.extend(await self.poll(timeout))
        if not self._ready:
            raise StopAsyncIteration
        return self._ready.popleft()


class AsyncGroup:
    """``turnstile.client.Group`` for asyncio."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = name

    async def create(self) -> bool:
        return bool((await self.client.write(pb.CreateGroupRequest(name=self.name))).created)

    async def delete(self) -> None:
        await self.client.write(pb.DeleteGroupRequest(name=self.name))

    async def join(self, member_id: str, capabilities: bytes = b"") -> bool:
        check_member_id(member_id)
        request = pb.JoinGroupRequest(
            name=self.name, member_id=member_id, capabilities=capabilities
        )
        return bool((await self.client.write(request)).joined)

    async def leave(self, member_id: str) -> bool:
        request = pb.LeaveGroupRequest(name=self.name, member_id=member_id)
        return bool((await self.client.write(request)).left)

    async def update(self, member_id: str, capabilities: bytes) -> bool:
        request = pb.UpdateCapabilitiesRequest(
            name=self.name, member_id=member_id, capabilities=capabilities
        )
        return bool((await self.client.write(request)).updated)

    async def describe(self) -> GroupInfo:
        response = await self.client.invoke(pb.DescribeGroupRequest(name=self.name))
        return GroupInfo.from_pb(response.group, response.revision)

    async def members(self) -> dict[str, Member]:
        return (await self.describe()).members

    def watch(
        self, timeout: float | None = None, after_revision: int | None = None
    ) -> AsyncWatch[GroupTracker]:
        return AsyncWatch(self.client, GroupTracker(self.name), timeout, after_revision)

    def __repr__(self) -> str:
        return f"<turnstile AsyncGroup {self.name!r}>"


class AsyncLeadership:
    """``turnstile.client.Leadership`` for asyncio: ``async with await election.campaign()``."""

    def __init__(self, election: AsyncElection, session: AsyncSession, token: int) -> None:
        self.election = election
        self.session = session
        self.token = token
        self._resigned = False

    @property
    def name(self) -> str:
        return self.election.name

    def alive(self) -> bool:
        return not self._resigned and self.session.alive()

    async def resign(self) -> bool:
        if self._resigned:
            return False
        self._resigned = True
        try:
            response = await self.election.client.write(
                pb.ResignRequest(name=self.name), session=self.session
            )
        except SessionExpiredError:
            return False
        return bool(response.was_leader)

    async def __aenter__(self) -> AsyncLeadership:
        return self

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        await self.resign()

    def __repr__(self) -> str:
        return f"<turnstile AsyncLeadership {self.name!r} token {self.token}>"


class AsyncElection:
    """``turnstile.client.Election`` for asyncio."""

    def __init__(self, client: AsyncClient, name: str, member_id: str | None = None) -> None:
        self.client = client
        self.name = name
        self.member_id = member_id or default_member_id(client.identity[0])

    async def campaign(self, timeout: float | None = None) -> AsyncLeadership:
        """See ``Election.campaign``."""
        clock = self.client.retry.clock
        timing = CampaignTiming(timeout, clock())
        first = True
        while True:
            wait = timing.wait(clock(), first)
            if wait is None:
                raise TimeoutError(f"election {self.name!r}: not elected within {timeout}s")
            first = False
            request, attempt = timing.request(self.name, self.member_id, wait)
            session = await self.client.session()
            response = await self.client.write(
                request,
                session=session,
                deadline=self.client.retry.deadline + wait,
                attempt_timeout=attempt,
            )
            if response.elected:
                return AsyncLeadership(self, session, response.token)

    async def resign(self) -> bool:
        return bool((await self.client.write(pb.ResignRequest(name=self.name))).was_candidate)

    async def leader(self) -> Candidate | None:
        return leader_of(await self.client.invoke(pb.DescribeElectionRequest(name=self.name)))

    async def candidates(self) -> list[Candidate]:
        response = await self.client.invoke(pb.DescribeElectionRequest(name=self.name))
        leader = leader_of(response)
        queued = [Candidate.from_pb(c) for c in response.election.candidates]
        return [leader, *queued] if leader else queued

    def observe(
        self, timeout: float | None = None, after_revision: int | None = None
    ) -> AsyncWatch[ElectionTracker]:
        return AsyncWatch(self.client, ElectionTracker(self.name), timeout, after_revision)

    def __repr__(self) -> str:
        return f"<turnstile AsyncElection {self.name!r} as {self.member_id!r}>"
