"""``Lock``: a cluster-wide mutex that behaves like ``threading.Lock``."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from turnstile.client.core import (
    AcquireAttempts,
    Hold,
    check_max_hold,
    extended,
    extending,
    hand_release_over,
    held,
    hold_lost,
    lock_repr,
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
from turnstile.client.session_state import CLEANUP_DEADLINE
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.client import Client
    from turnstile.client.session import Session

log = logging.getLogger(__name__)


class Lock:
    """A mutex shared by every client of the cluster, with a fencing token per grant.

    Blocking waits happen on the server (the RPC is held; no polling): a release hands the lock
    to the longest waiter in the same replicated step. Usable from many threads: threads of this
    process queue on the object first, like ``threading.Lock``. Not re-entrant.

    .. code-block:: python

        with client.lock("work-unit-42", max_hold=30) as held:
            write_result(fence=held.token)

    .. warning:: The lock is held only while the session is alive and within ``max_hold``:
       check ``locked()`` before irreversible steps, and pass ``token`` to what you write so a
       late write from a paused ex-holder can be refused.
    """

    def __init__(self, client: Client, name: str, max_hold: float | None = None) -> None:
        check_max_hold(max_hold)
        self.client = client
        self.name = name
        self.max_hold = max_hold
        self._local = threading.Lock()
        self._hold: Hold[Session] | None = None

    @property
    def token(self) -> int | None:
        """Fencing token of the current hold, or None."""
        hold = self._hold
        return hold.token if hold else None

    @property
    def expires_at(self) -> float | None:
        """``time.monotonic()`` value when the max-hold ends; None if uncapped or not held."""
        hold = self._hold
        return hold.expires_at if hold else None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Takes the lock, like ``threading.Lock.acquire``.

        The max-hold is counted from when the granted request was sent, not from the grant:
        a wait longer than ``max_hold`` ends in ``LockLostError``. An acquire that ends without
        its answer (an error below, or an interruption) is abandoned in the cluster, so it
        cannot leave the lock held.

        :param blocking: wait for the lock (on the server, in FIFO order) or try once.
        :param timeout: longest wait in seconds; -1 waits as long as it takes.
        :returns: True if acquired, False if it was held elsewhere until the timeout.
        :raises LockLostError: granted, but the session was lost or the max-hold passed
            meanwhile (by this client's clock); the grant was given back.
        :raises SessionExpiredError: the session was lost while waiting.
        :raises UnavailableError: no leader could be reached within the retry deadline.
        :raises InvalidArgumentError: a bad name or duration.
        """
        attempts = AcquireAttempts(self.name, self.max_hold, blocking, timeout, self.client.retry)
        if not self._local.acquire(blocking, timeout):
            return False
        try:
            while True:
                session = self.client.session()
                write = attempts.next(session.core)
                try:
                    response = self.client.write(
                        write.request,
                        session=session,
                        request_id=write.request_id,
                        deadline=write.deadline,
                        attempt_timeout=write.attempt_timeout,
                    )
                except BaseException as error:
                    if outcome_unknown(error):
                        self._abandon(session, write.request_id, error)
                    raise
                if response.acquired:
                    break
                if attempts.gave_up():
                    self._local.release()
                    return False
            hold = attempts.hold(session, response.token)
            lost = attempts.lost(hold)
            if lost is not None:
                self._give_back(hold)
                raise LockLostError(lost)
        except BaseException:
            self._local.release()
            raise
        self._hold = hold
        return True

    def _abandon(self, session: Session, request: pb.RequestId, error: BaseException) -> None:
        """Abandons the Acquire ``request`` that ended with ``error``: now, or from the
        keep-alive thread when the caller is being interrupted (it must not wait on the
        network)."""
        if isinstance(error, Exception):
            session.abandon(self.name, request)
        else:
            session.abandon_later(self.name, request)

    def _give_back(self, hold: Hold[Session]) -> None:
        """Best-effort Release of a grant that came too late to use. Its errors are only
        logged: the cluster frees it soon anyway (max-hold, or the lost session's expiry)."""
        try:
            self.client.write(
                pb.ReleaseRequest(name=self.name, token=hold.token),
                session=hold.session,
                deadline=CLEANUP_DEADLINE,
            )
        except TurnstileError as error:
            log.info("lock %r: giving back token %d failed: %s", self.name, hold.token, error)

    def release(self) -> None:
        """Releases the lock; the next waiter gets it at once.

        :raises RuntimeError: the lock is not held by this object.
        :raises LockLostError: the hold had already ended (session lost, max-hold passed,
            force-released): the critical section may not have been exclusive to the end.
        :raises UnavailableError: the cluster could not be reached; the lock is still held by
            this object, so call ``release()`` again (or close the client): it resends the
            same request, so a release that did land counts as one. The same goes for an
            ``InternalError`` from an INTERNAL or UNKNOWN status (the call failed mid-way).

        An interrupted release (Ctrl-C) frees the object at once and leaves the Release to
        the keep-alive thread, which resends it until it is answered or the session ends.
        """
        hold = self._hold
        if hold is None:
            raise RuntimeError("release unlocked lock")
        self._hold = None
        request_id = hold.release
        try:
            request, request_id = releasing(self.name, hold)
            self.client.write(request, session=hold.session, request_id=request_id)
        except (NotHolderError, SessionExpiredError) as error:
            self._local.release()
            raise hold_lost(self.name, error) from error
        except BaseException as error:
            self._hold = unreleased(self.name, hold, request_id, error)
            if self._hold is None:
                self._local.release()
            raise
        self._local.release()

    def locked(self) -> bool:
        """True while this object holds the lock: session alive and max-hold not passed."""
        return held(self._hold, self.client.retry.clock)

    def extend(self, max_hold: float | None) -> None:
        """Restarts the max-hold at ``max_hold`` seconds from now (None: no cap).

        :raises RuntimeError: not held. :raises LockLostError: the hold already ended.
        """
        hold, request = extending(self.name, self._hold, max_hold)
        sent = self.client.retry.clock()
        try:
            self.client.write(request, session=hold.session)
        except (NotHolderError, SessionExpiredError) as error:
            raise hold_lost(self.name, error) from error
        self._hold = extended(hold, max_hold, sent)

    def validate(self) -> bool:
        """Asks the cluster (linearizably) whether this object's token still holds the lock."""
        hold = self._hold
        if hold is None:
            return False
        response = self.client.invoke(pb.ValidateRequest(name=self.name, token=hold.token))
        return bool(response.valid)

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            self.release()
        except LockLostError:
            if exc is None:
                raise
            log.warning("lock %r was lost inside a block that raised", self.name)
        except TurnstileError:
            # The block is over: nobody will call release() again.
            if hand_release_over(self.name, self._hold):
                self._hold = None
                self._local.release()
            raise

    def __repr__(self) -> str:
        return lock_repr("Lock", self.name, self._hold)
