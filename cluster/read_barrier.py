"""The batched read barrier of the leader: linearizable reads and keep-alives share one commit
through the log per round. It lives on the node's asyncio loop; nothing here polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


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
