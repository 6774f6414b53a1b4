"""``AsyncHeldLocks`` and the ``lock_many`` of ``AsyncClient``: ``lock_many`` for asyncio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from turnstile.client import aio_acquiring
from turnstile.client.aio_semaphore import AsyncHeld
from turnstile.client.describe_core import Description
from turnstile.client.permit_core import HeldLocksState, many_attempts

if TYPE_CHECKING:
    from turnstile.client.aio import AsyncClient


class AsyncHeldLocks(HeldLocksState[AsyncHeld]):
    """``HeldLocks`` for asyncio: an ``AsyncHeld`` per name; ``async with`` releases them."""

    async def release(self) -> None:
        """Releases every lock still held, each with its token; raises the first error once all
        were tried (``LockLostError`` for one that had ended already)."""
        first: Exception | None = None
        for held in self._unreleased():
            try:
                await held.release()
            except Exception as error:
                first = first or error
        if first is not None:
            raise first

    async def extend(self, max_hold: float | None) -> None:
        """Restarts the max-hold of every lock at ``max_hold`` seconds from now."""
        for held in self._holds.values():
            await held.extend(max_hold)

    async def __aenter__(self) -> AsyncHeldLocks:
        return self

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        first: Exception | None = None
        for held in self._holds.values():
            if held.released:
                continue  # released inside the block
            try:
                await held.__aexit__(exc_type, exc, traceback)
            except Exception as error:
                first = first or error
        if first is not None:
            raise first


async def lock_many(
    client: AsyncClient,
    names: Sequence[str],
    max_hold: float | None = None,
    timeout: float | None = None,
    description: Description | None = None,
) -> AsyncHeldLocks | None:
    """See ``lock_many.lock_many``."""
    attempts = many_attempts(names, max_hold, timeout, description, client.retry)
    holds = await aio_acquiring.acquire(client, attempts)
    return None if holds is None else AsyncHeldLocks([AsyncHeld(client, hold) for hold in holds])
