"""``AsyncSemaphore`` and ``AsyncHeld``: ``Semaphore`` and ``Held`` for asyncio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnstile.client import aio_acquiring
from turnstile.client.core import (
    AcquireAttempts,
    Hold,
    check_max_hold,
    hand_release_over,
    held,
    lock_repr,
)
from turnstile.client.describe_core import Description, SemaphoreInfo
from turnstile.client.permit_core import (
    check_limit,
    entered,
    leaving,
    permit_request,
    releasing_on_exit,
    wait_timeout,
)
from turnstile.client.routes import SEMAPHORES
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.aio import AsyncClient, AsyncSession


class AsyncHeld:
    """``Held`` for asyncio: a permit of an ``AsyncSemaphore``, or one lock of
    ``AsyncClient.lock_many``; ``async with`` releases it."""

    def __init__(self, client: AsyncClient, hold: Hold[AsyncSession]) -> None:
        self.client = client
        self.name = hold.name
        self._hold: Hold[AsyncSession] | None = hold
        #: The fencing token of the grant: kept after the release, to name what was held.
        self.token = hold.token

    @property
    def expires_at(self) -> float | None:
        """``time.monotonic()`` value when the max-hold ends; None if uncapped or released."""
        hold = self._hold
        return hold.expires_at if hold else None

    @property
    def released(self) -> bool:
        """True once released (or its Release handed to the keep-alive loop), even if the
        hold was found lost then."""
        return self._hold is None

    def locked(self) -> bool:
        """True until released, while the session is alive and the max-hold has not passed."""
        return held(self._hold, self.client.retry.clock)

    async def release(self) -> None:
        """Gives the hold back; see ``Lock.release`` (RuntimeError once released)."""
        hold = self._hold
        if hold is None:
            raise RuntimeError(f"release of {self!r}")
        self._hold = None
        await aio_acquiring.release(self.client, hold, self._left)

    def _left(self, hold: Hold[AsyncSession] | None) -> None:
        self._hold = hold

    async def extend(self, max_hold: float | None) -> None:
        """Restarts the max-hold at ``max_hold`` seconds from now; see ``Lock.extend``."""
        self._hold = await aio_acquiring.extend(self.client, self.name, self._hold, max_hold)

    def _hand_over(self) -> None:
        """See ``Lock._hand_over``."""
        if hand_release_over(self.name, self._hold):
            self._hold = None

    async def __aenter__(self) -> AsyncHeld:
        return self

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        with releasing_on_exit(repr(self), exc, self._hand_over):
            await self.release()

    def __repr__(self) -> str:
        hold = self._hold
        kind = "permit of" if hold is None or hold.service == SEMAPHORES else "hold of"
        return lock_repr(f"{kind} token {self.token}", self.name, hold)


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
        attempts = AcquireAttempts(
            self.name,
            self.max_hold,
            blocking,
            wait_timeout(timeout),
            self.client.retry,
            request=permit_request(self.name, self.limit, self.max_hold, description),
            service=SEMAPHORES,
            what=f"semaphore {self.name!r}",
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
