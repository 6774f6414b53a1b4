"""The sync client's acquire, release and extend of any hold, shared by ``Lock``, ``Semaphore``
and ``lock_many`` (``aio_acquiring`` is the asyncio twin): one loop, so request ids, retries,
abandons and lost holds behave the same for every kind of hold."""

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
    from turnstile.client.client import Client
    from turnstile.client.session import Session

log = logging.getLogger(__name__)


def acquire(client: Client, attempts: AcquireAttempts) -> list[Hold[Session]] | None:
    """The holds ``attempts`` got, or None when it gave up ("not acquired").

    An Acquire that ends without its answer (an error, an interruption) is abandoned in the
    cluster, so it cannot leave anything held. A grant already lost by this client's view
    (session lost, max-hold passed while it waited) is given back and raises LockLostError.
    """
    while True:
        session = client.session()
        write = attempts.next(session.core)
        try:
            response = client.write(
                write.request,
                session=session,
                request_id=write.request_id,
                deadline=write.deadline,
                attempt_timeout=write.attempt_timeout,
            )
        except BaseException as error:
            if outcome_unknown(error):
                _abandon(session, attempts, write.request_id, error)
            raise
        if response.acquired:
            break
        if attempts.gave_up():
            return None
    holds = attempts.holds(session, response)
    lost = attempts.lost(holds[0])
    if lost is not None:
        for hold in holds:
            _give_back(client, hold)
        raise LockLostError(lost)
    return holds


def _abandon(
    session: Session, attempts: AcquireAttempts, request: pb.RequestId, error: BaseException
) -> None:
    """Abandons the Acquire ``request`` that ended with ``error``: now, or from the keep-alive
    thread when the caller is being interrupted (it must not wait on the network)."""
    if isinstance(error, Exception):
        session.abandon(attempts.name, request, attempts.service)
    else:
        session.abandon_later(attempts.name, request, attempts.service)


def _give_back(client: Client, hold: Hold[Session]) -> None:
    """Best-effort Release of a grant that came too late to use. Its errors are only logged:
    the cluster frees it soon anyway (max-hold, or the lost session's expiry)."""
    try:
        client.write(
            HOLD_REQUESTS[hold.service].release(name=hold.name, token=hold.token),
            session=hold.session,
            deadline=CLEANUP_DEADLINE,
        )
    except TurnstileError as error:
        log.info("%r: giving back token %d failed: %s", hold.name, hold.token, error)


def release(
    client: Client, hold: Hold[Session], left: Callable[[Hold[Session] | None], None]
) -> None:
    """Releases ``hold``; ``left`` is told what is left of it: None once it is over (released,
    or found lost: LockLostError), else the hold, its Release's id kept for the next
    ``release()`` to resend (see ``unreleased``)."""
    request_id = hold.release
    try:
        request, request_id = releasing(hold)
        client.write(request, session=hold.session, request_id=request_id)
    except (NotHolderError, SessionExpiredError) as error:
        left(None)
        raise hold_lost(hold, error) from error
    except BaseException as error:
        left(unreleased(hold.name, hold, request_id, error))
        raise
    left(None)


def extend(
    client: Client, name: str, hold: Hold[Session] | None, max_hold: float | None
) -> Hold[Session]:
    """``hold`` with its max-hold restarted at ``max_hold`` seconds from now (None: no cap).
    RuntimeError when not held, LockLostError when the hold already ended."""
    hold, request = extending(name, hold, max_hold)
    sent = client.retry.clock()
    try:
        client.write(request, session=hold.session)
    except (NotHolderError, SessionExpiredError) as error:
        raise hold_lost(hold, error) from error
    return extended(hold, max_hold, sent)
