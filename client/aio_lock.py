"""``AsyncLock``: ``turnstile.client.Lock`` for asyncio."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from turnstile.client import aio_acquiring
from turnstile.client.core import (
    AcquireAttempts,
    Hold,
    check_max_hold,
    hand_release_over,
    held,
    lock_repr,
    lock_request,
)
from turnstile.client.describe_core import Description, LockInfo
from turnstile.client.permit_core import releasing_on_exit
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.aio import AsyncClient, AsyncSession


class AsyncLock:
    """``turnstile.client.Lock`` for asyncio: ``await lock.acquire()``, ``async with lock``."""

    def __init__(self, client: AsyncClient, name: str, max_hold: float | None = None) -> None:
        check_max_hold(max_hold)
        self.client = client
        self.name = name
        self.max_hold = max_hold
        self._local = asyncio.Lock()
        #: Tasks waiting for this object (a non-blocking acquire must not queue behind them).
        self._queued = 0
        self._hold: Hold[AsyncSession] | None = None

    @property
    def token(self) -> int | None:
        return self._hold.token if self._hold else None

    @property
    def expires_at(self) -> float | None:
        return self._hold.expires_at if self._hold else None

    async def acquire(
        self, blocking: bool = True, timeout: float = -1, description: Description | None = None
    ) -> bool:
        """See ``Lock.acquire``."""
        attempts = AcquireAttempts(
            self.name,
            self.max_hold,
            blocking,
            timeout,
            self.client.retry,
            request=lock_request(self.name, self.max_hold, description),
        )
        if not blocking:
            # Free and nobody queued on this object: acquire() returns at once.
            if self._local.locked() or self._queued:
                return False
            await self._local.acquire()
        else:
            self._queued += 1
            try:
                if timeout == -1:
                    await self._local.acquire()
                else:
                    await asyncio.wait_for(self._local.acquire(), timeout)
            except TimeoutError:
                return False
            finally:
                self._queued -= 1
        try:
            holds = await aio_acquiring.acquire(self.client, attempts)
        except BaseException:
            self._local.release()
            raise
        if holds is None:
            self._local.release()
            return False
        self._hold = holds[0]
        return True

    async def release(self) -> None:
        """See ``Lock.release``."""
        hold = self._hold
        if hold is None:
            raise RuntimeError("release unlocked lock")
        self._hold = None
        await aio_acquiring.release(self.client, hold, self._left)

    def _left(self, hold: Hold[AsyncSession] | None) -> None:
        """See ``Lock._left``."""
        self._hold = hold
        if hold is None:
            self._local.release()

    def locked(self) -> bool:
        """See ``Lock.locked``."""
        return held(self._hold, self.client.retry.clock)

    async def extend(self, max_hold: float | None) -> None:
        """See ``Lock.extend``."""
        self._hold = await aio_acquiring.extend(self.client, self.name, self._hold, max_hold)

    async def validate(self) -> bool:
        """See ``Lock.validate``."""
        hold = self._hold
        if hold is None:
            return False
        response = await self.client.invoke(pb.ValidateRequest(name=self.name, token=hold.token))
        return bool(response.valid)

    async def describe(self) -> LockInfo:
        """See ``Lock.describe``."""
        response = await self.client.invoke(pb.DescribeLockRequest(name=self.name))
        return LockInfo.from_pb(response.lock)

    async def __aenter__(self) -> AsyncLock:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        with releasing_on_exit(f"lock {self.name!r}", exc, self._hand_over):
            await self.release()

    def _hand_over(self) -> None:
        """The block is over with a Release whose outcome is unknown: nobody will call
        ``release()`` again, so the keep-alive loop resends it, and the object is free."""
        if hand_release_over(self.name, self._hold):
            self._left(None)

    def __repr__(self) -> str:
        return lock_repr("AsyncLock", self.name, self._hold)
