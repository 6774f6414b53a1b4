"""``AsyncSemaphore`` and ``AsyncHeld``: ``Semaphore`` and ``Held`` for asyncio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnstile.client import aio_acquiring
from turnstile.client.core import Hold, check_max_hold
from turnstile.client.describe_core import Description, SemaphoreInfo
from turnstile.client.permit_core import (
    HeldState,
    check_limit,
    entered,
    leaving,
    permit_attempts,
    releasing_on_exit,
)
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.aio import AsyncClient, AsyncSession


class AsyncHeld(HeldState["AsyncSession"]):
    """``Held`` for asyncio: a permit of an ``AsyncSemaphore``, or one lock of
    ``AsyncClient.lock_many``; ``async with`` releases it."""

    def __init__(self, client: AsyncClient, hold: Hold[AsyncSession]) -> None:
        super().__init__(hold, client.retry.clock)
        self.client = client

    async def release(self) -> None:
        """See ``Held.release``."""
        await aio_acquiring.release(self.client, self._releasing(), self._left)

    async def extend(self, max_hold: float | None) -> None:
        """See ``Held.extend``."""
        self._hold = await aio_acquiring.extend(self.client, self.name, self._hold, max_hold)

    async def __aenter__(self) -> AsyncHeld:
        return self

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        with releasing_on_exit(repr(self), exc, self._hand_over):
            await self.release()


class AsyncSemaphore:
    """``Semaphore`` for asyncio: ``await sem.acquire()``, ``async with sem as permit``."""

    def __init__(
        self, client: AsyncClient, name: str, limit: int, max_hold: float | None = None
    ) -> None:
        check_limit(limit)
        check_max_hold(max_hold)
        self.client = client
        self.name = name
        self.limit = limit
        self.max_hold = max_hold

    async def acquire(
        self,
        blocking: bool = True,
        timeout: float | None = None,
        description: Description | None = None,
    ) -> AsyncHeld | None:
        """One permit, or None if none was free until the timeout (``Lock.acquire``'s rules:
        max-hold counted from the send, an acquire ended without its answer abandoned).

        :param timeout: longest wait in seconds; None waits as long as it takes.
        :param description: who holds it and why (see ``Lock.acquire``).
        """
        attempts = permit_attempts(
            self.name,
            self.limit,
            self.max_hold,
            blocking=blocking,
            timeout=timeout,
            description=description,
            retry=self.client.retry,
        )
        holds = await aio_acquiring.acquire(self.client, attempts)
        return None if holds is None else AsyncHeld(self.client, holds[0])

    async def release(self, permit: AsyncHeld) -> None:
        """``permit.release()``."""
        await permit.release()

    async def extend(self, permit: AsyncHeld, max_hold: float | None) -> None:
        """``permit.extend(max_hold)``."""
        await permit.extend(max_hold)

    async def describe(self) -> SemaphoreInfo:
        """The limit, the permit holders and the queue, as the cluster sees them."""
        response = await self.client.invoke(pb.DescribeSemaphoreRequest(name=self.name))
        return SemaphoreInfo.from_pb(response.semaphore)

    async def __aenter__(self) -> AsyncHeld:
        permit = await self.acquire()
        assert permit is not None  # a wait without a timeout ends granted or raises
        entered(self, permit)
        return permit

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        permit: AsyncHeld = leaving(self)
        await permit.__aexit__(exc_type, exc, traceback)

    def __repr__(self) -> str:
        return f"<turnstile AsyncSemaphore {self.name!r} limit {self.limit}>"
