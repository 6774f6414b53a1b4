"""``acquiring`` for the asyncio client: the acquire, release and extend of any hold, shared by
``AsyncLock``, ``AsyncSemaphore`` and ``AsyncClient.lock_many``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from turnstile.client.core import (
    AcquireAttempts,
    Hold,
    extended,
    extending,
    hold_lost,
    releasing,
    unreleased,
)
from turnstile.client.errors import (
    LockLostError,
    NotHolderError,
    SessionExpiredError,
    TurnstileError,
    outcome_unknown,
)
from turnstile.client.routes import HOLD_REQUESTS
from turnstile.client.session_state import CLEANUP_DEADLINE
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.aio import AsyncClient, AsyncSession

log = logging.getLogger(__name__)


async def acquire(
    client: AsyncClient, attempts: AcquireAttempts
) -> list[Hold[AsyncSession]] | None:
    """See ``acquiring.acquire``; a cancelled task leaves the Abandon to the keep-alive task."""
    while True:
        session = await client.session()
        write = attempts.next(session.core)
        try:
            response = await client.write(
                write.request,
                session=session,
                request_id=write.request_id,
                deadline=write.deadline,
                attempt_timeout=write.attempt_timeout,
            )
        except BaseException as error:
            if outcome_unknown(error):
                await _abandon(session, attempts, write.request_id, error)
            raise
        if response.acquired:
            break
        if attempts.gave_up():
            return None
    holds = attempts.holds(session, response)
    lost = attempts.lost(holds[0])
    if lost is not None:
        for hold in holds:
            await _give_back(client, hold)
        raise LockLostError(lost)
    return holds


async def _abandon(
    session: AsyncSession, attempts: AcquireAttempts, request: pb.RequestId, error: BaseException
) -> None:
    """See ``acquiring._abandon``."""
    if isinstance(error, Exception):
        await session.abandon(attempts.name, request, attempts.service)
    else:
        session.abandon_later(attempts.name, request, attempts.service)


async def _give_back(client: AsyncClient, hold: Hold[AsyncSession]) -> None:
    """See ``acquiring._give_back``."""
    try:
        await client.write(
            HOLD_REQUESTS[hold.service].release(name=hold.name, token=hold.token),
            session=hold.session,
            deadline=CLEANUP_DEADLINE,
        )
    except TurnstileError as error:
        log.info("%r: giving back token %d failed: %s", hold.name, hold.token, error)


async def release(
    client: AsyncClient, hold: Hold[AsyncSession], left: Callable[[Hold[AsyncSession] | None], None]
) -> None:
    """See ``acquiring.release``."""
    request_id = hold.release
    try:
        request, request_id = releasing(hold)
        await client.write(request, session=hold.session, request_id=request_id)
    except (NotHolderError, SessionExpiredError) as error:
        left(None)
        raise hold_lost(hold, error) from error
    except BaseException as error:
        left(unreleased(hold.name, hold, request_id, error))
        raise
    left(None)


async def extend(
    client: AsyncClient, name: str, hold: Hold[AsyncSession] | None, max_hold: float | None
) -> Hold[AsyncSession]:
    """See ``acquiring.extend``."""
    hold, request = extending(name, hold, max_hold)
    sent = client.retry.clock()
    try:
        await client.write(request, session=hold.session)
    except (NotHolderError, SessionExpiredError) as error:
        raise hold_lost(hold, error) from error
    return extended(hold, max_hold, sent)
