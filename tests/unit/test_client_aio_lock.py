"""AsyncLock's local queueing, with a fake client (no cluster)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from turnstile.client.aio import AsyncLock
from turnstile.client.retry import RetryPolicy
from turnstile.client.session import SessionCore
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit


class _Session:
    def __init__(self) -> None:
        self.core = SessionCore(1, 60.0, 0.0, clock=lambda: 1.0)
        self.id = 1

    def alive(self) -> bool:
        return True


class _Client:
    """Grants every Acquire at once and accepts every Release."""

    def __init__(self) -> None:
        self.retry = RetryPolicy(clock=lambda: 1.0)
        self._session = _Session()
        self._tokens = itertools.count(1)

    async def session(self) -> _Session:
        return self._session

    async def write(self, service: str, method: str, build: Any, **_: Any) -> Any:
        await asyncio.sleep(0)
        if method == "Acquire":
            return pb.AcquireResponse(acquired=True, token=next(self._tokens))
        return pb.ReleaseResponse()


def test_a_non_blocking_acquire_does_not_queue_behind_a_waiting_task() -> None:
    async def scenario() -> None:
        lock = AsyncLock(_Client(), "L")  # type: ignore[arg-type]
        assert await lock.acquire()
        waiting = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.01)
        await lock.release()
        started = asyncio.get_running_loop().time()
        assert not await lock.acquire(blocking=False)
        assert asyncio.get_running_loop().time() - started < 0.05
        assert await asyncio.wait_for(waiting, 1)
        assert lock.token == 2
        await lock.release()
        assert await lock.acquire(blocking=False)

    asyncio.run(scenario())
