"""In-process wake-ups on the leader: blocked acquires and the batched read barrier.

Both live on the node's asyncio loop. The apply path (raft thread) hands resolved waiters to
the loop with ``call_soon_threadsafe``; nothing here polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from turnstile.cluster.commands import Result


class WaiterRegistry:
    """Futures of blocked Acquire RPCs, keyed by the acquire's (session, seq)."""

    def __init__(self) -> None:
        self._futures: dict[tuple[int, int], list[asyncio.Future[Result]]] = {}

    def register(self, key: tuple[int, int]) -> asyncio.Future[Result]:
        """Register before proposing, so a resolution applied right after is not missed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(key, []).append(future)
        return future

    def discard(self, key: tuple[int, int], future: asyncio.Future[Result]) -> None:
        futures = self._futures.get(key)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._futures[key]

    def resolve(self, key: tuple[int, int], result: Result) -> None:
        for future in self._futures.pop(key, []):
            if not future.done():
                future.set_result(result)

    def fail_all(self, error: Exception) -> None:
        """On losing leadership: every blocked RPC returns, so its client retries elsewhere."""
        futures, self._futures = self._futures, {}
        for pending in futures.values():
            for future in pending:
                if not future.done():
                    future.set_exception(error)

    def __len__(self) -> int:
        return sum(len(f) for f in self._futures.values())


class ReadBarrier:
    """Linearizable reads and keep-alives share one commit through the log per round.

    A caller waits for a barrier *proposed after it arrived*: when that barrier commits in the
    leader's own term, the leader was still leader after the caller arrived, and its state
    holds every write acknowledged before. Callers that arrive while a round is in flight wait
    for the next round, which carries all of them.
    """

    def __init__(self, commit_barrier: Callable[[], Awaitable[None]]) -> None:
        self._commit_barrier = commit_barrier
        self._pending: list[asyncio.Future[None]] = []
        self._running = False

    async def wait(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._rounds())
        await future

    async def _rounds(self) -> None:
        try:
            while self._pending:
                round_, self._pending = self._pending, []
                try:
                    await self._commit_barrier()
                except Exception as exc:
                    for future in round_:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for future in round_:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._running = False
