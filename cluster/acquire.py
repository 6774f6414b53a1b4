"""The blocking-acquire protocol on the node serving it (the leader, or a follower that
forwards a session stream's acquire to it): from an acquire request (of a lock, of several
locks at once, of a semaphore permit) to its final answer.

1. A waiter is registered for the request id *before* the ``Acquire`` is proposed, so a grant
   applied right after it (a release committed in the same batch) is not missed.
2. Granted, not acquired, or refused by the state machine: that is the answer.
3. Queued: the answer is the state machine's resolution of the waiter (a hand-off grant, or
   ``NotAcquired`` in the Tick at its deadline), awaited until the deadline plus
   ``SERVER_WAIT_GRACE_S``. Past that the answer is UNKNOWN_OUTCOME, never "not acquired": a
   retry of the same request id may already have been handed the grant, and only the state
   machine's own result is final.
4. The caller went away (its deadline passed or its connection broke): the queued wait is
   withdrawn with ``CancelWait(release_grant=False)``. A grant that raced in is left alone,
   because the caller may be retrying this very request id and be about to receive it. A
   client that gives up on the request for good says so with ``Abandon`` (``abandon``), which
   does release such a grant. When this node is stopping, nothing is withdrawn: the caller
   retries on the next leader and keeps its place in the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from turnstile.cluster.commands import (
    Abandon,
    Acquire,
    CancelWait,
    Command,
    Err,
    Granted,
    NotAcquired,
    Queued,
    Result,
    WaitCancelled,
)
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.semaphore_commands import (
    AbandonPermit,
    AcquireLocks,
    AcquirePermit,
    CancelPermitWait,
    GrantedMany,
)
from turnstile.v1.reasons import Reason
from turnstile.v1.timeouts import SERVER_WAIT_GRACE_S

if TYPE_CHECKING:
    from turnstile.cluster.node import Node, RequestFields

log = logging.getLogger(__name__)

#: An acquire waits for the resolution of (session, seq).
WaiterKey = tuple[int, int]


class BlockingAcquires:
    """The leader's blocked Acquire requests: each waits for the state machine's answer."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._waiting: dict[WaiterKey, list[asyncio.Future[Result]]] = {}

    async def acquire(
        self,
        name: str,
        max_hold_ms: int,
        wait_ms: int,
        request: RequestFields,
        description: str = "",
    ) -> Granted | NotAcquired:
        """Grants ``name``, or says it was not acquired within ``wait_ms``. Without a
        description it is the ``Acquire`` every cluster version applies.

        :raises TurnstileError: refused, not leader, or UNKNOWN_OUTCOME (retry the request id).
        """
        if description:
            result = await self._blocking(
                lambda now: AcquireLocks(
                    now,
                    names=(name,),
                    max_hold_ms=max_hold_ms,
                    wait_ms=wait_ms,
                    description=description,
                    **request,
                ),
                name,
                request,
            )
        else:
            result = await self._blocking(
                lambda now: Acquire(
                    now, name=name, max_hold_ms=max_hold_ms, wait_ms=wait_ms, **request
                ),
                name,
                request,
            )
        if isinstance(result, Granted | NotAcquired):
            return result
        raise _another_command(request)

    async def acquire_many(
        self,
        names: tuple[str, ...],
        max_hold_ms: int,
        wait_ms: int,
        request: RequestFields,
        description: str,
    ) -> GrantedMany | Granted | NotAcquired:
        """Grants every lock of ``names`` at once (``Granted`` for a single name), or none."""
        result = await self._blocking(
            lambda now: AcquireLocks(
                now,
                names=names,
                max_hold_ms=max_hold_ms,
                wait_ms=wait_ms,
                description=description,
                **request,
            ),
            names[0],
            request,
        )
        if isinstance(result, GrantedMany | Granted | NotAcquired):
            return result
        raise _another_command(request)

    async def acquire_permit(
        self,
        name: str,
        request: RequestFields,
        *,
        limit: int,
        max_hold_ms: int,
        wait_ms: int,
        description: str,
    ) -> Granted | NotAcquired:
        """Grants a permit of the semaphore ``name``, or says none was free within
        ``wait_ms``."""
        result = await self._blocking(
            lambda now: AcquirePermit(
                now,
                name=name,
                limit=limit,
                max_hold_ms=max_hold_ms,
                wait_ms=wait_ms,
                description=description,
                **request,
            ),
            name,
            request,
            withdraw=lambda now: CancelPermitWait(now, request["session"], name, request["seq"]),
        )
        if isinstance(result, Granted | NotAcquired):
            return result
        raise _another_command(request)

    async def _blocking(
        self,
        propose: Callable[[int], Command],
        name: str,
        request: RequestFields,
        withdraw: Callable[[int], Command] | None = None,
    ) -> Result:
        """Proposes an acquire and, if it is queued, waits for its resolution; a caller that
        goes away withdraws it (``withdraw``, by default the lock's ``CancelWait``)."""
        key = (request["session"], request["seq"])
        waiter = self._register(key)
        try:
            result = await self._node.execute(propose)
            if isinstance(result, Queued):
                result = await self._wait(result, waiter)
        except asyncio.CancelledError:
            if not self._node.stopping:
                self._node.spawn(
                    self._withdraw(
                        withdraw
                        or (
                            lambda now: CancelWait(
                                now, request["session"], name, request["seq"], release_grant=False
                            )
                        ),
                        name,
                        request,
                    )
                )
            raise
        finally:
            self._discard(key, waiter)
        if isinstance(result, Err):
            raise TurnstileError(result.reason, result.detail)
        return result

    async def abandon(
        self, name: str, acquire_seq: int, request: RequestFields, *, permit: bool = False
    ) -> WaitCancelled:
        """Gives up an earlier acquire of this session for good: its wait is withdrawn, and a
        grant it received is released (a permit's, with ``permit``)."""
        kind = AbandonPermit if permit else Abandon
        result = await self._node.execute(
            lambda now: kind(now, name=name, acquire_seq=acquire_seq, **request)
        )
        assert isinstance(result, WaitCancelled), result
        if result.released:
            log.info(
                "%s %r: a grant to session %d's abandoned acquire %d was released",
                "semaphore" if permit else "lock",
                name,
                request["session"],
                acquire_seq,
            )
        return result

    def resolve(self, key: WaiterKey, result: Result) -> None:
        """An applied entry resolved the wait of ``key``: its requests answer."""
        for future in self._waiting.pop(key, []):
            if not future.done():
                future.set_result(result)

    def fail_all(self, error: TurnstileError) -> None:
        """On losing leadership or stopping: every blocked request answers ``error`` now, so
        its client retries elsewhere (the waits stay queued in the cluster)."""
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    def __len__(self) -> int:
        return sum(len(futures) for futures in self._waiting.values())

    def _register(self, key: WaiterKey) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        return future

    def _discard(self, key: WaiterKey, future: asyncio.Future[Result]) -> None:
        futures = self._waiting.get(key)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiting[key]

    async def _wait(self, queued: Queued, waiter: asyncio.Future[Result]) -> Result:
        timeout = max(0, queued.deadline - self._node.clock_ms()) / 1000 + SERVER_WAIT_GRACE_S
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(waiter)
        except TimeoutError:
            raise TurnstileError(
                Reason.UNKNOWN_OUTCOME,
                "the wait's end was not committed in time; retry with the same request id",
            ) from None

    async def _withdraw(
        self, withdraw: Callable[[int], Command], name: str, request: RequestFields
    ) -> None:
        try:
            await self._node.execute(withdraw)
        except TurnstileError as exc:
            log.info("withdrawing wait %s/%d failed: %s", name, request["seq"], exc)


def _another_command(request: RequestFields) -> TurnstileError:
    """The state machine answers a retried seq with its first result, whatever wrote it."""
    return TurnstileError(
        Reason.INVALID_ARGUMENT,
        f"request {request['seq']} of session {request['session']} was another "
        "command; an acquire needs a request id of its own",
    )
