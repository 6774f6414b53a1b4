"""``Lock``: a cluster-wide mutex that behaves like ``threading.Lock``."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from turnstile.client.errors import (
    LockLostError,
    NotHolderError,
    SessionExpiredError,
    TurnstileError,
    outcome_unknown,
)
from turnstile.client.retry import RetryPolicy
from turnstile.client.session import CLEANUP_DEADLINE
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.client import Client
    from turnstile.client.session import Session, SessionCore

log = logging.getLogger(__name__)

#: The longest wait one Acquire asks for; "wait forever" asks again after it.
MAX_WAIT_MS = 24 * 3600 * 1000
#: How long past its wait a blocked Acquire RPC may take before the client gives up on it.
WAIT_GRACE = 5.0


@dataclass(frozen=True)
class Hold:
    """One grant: the session that holds it, its fencing token, and until when it is ours."""

    session: Session
    token: int
    #: Client clock (``time.monotonic``) when the granted Acquire was first sent: the hold is
    #: counted from there, however long it waited, so it ends before the cluster's.
    acquired_at: float
    #: Client clock when the max-hold ends; None when uncapped.
    expires_at: float | None
    #: A Release whose outcome is unknown: the next ``release()`` sends this id again, so a
    #: release that did land is answered as such instead of NOT_HOLDER.
    release: pb.RequestId | None = None


def unreleased(
    name: str, hold: Hold, request: pb.RequestId | None, error: BaseException
) -> Hold | None:
    """What is left of ``hold`` once its ``release()`` raised ``error`` (not one saying the
    hold was over): the hold itself while the Release's outcome is unknown, its id kept for
    the next ``release()`` to resend; None once the object is free. An interrupted Release
    is handed to the keep-alive loop to resend instead: the interrupted caller will not call
    again, and neither the object (an ``async with`` being cancelled) nor the lock in the
    cluster (the keep-alives keep the session alive) may stay held."""
    if request is None or not outcome_unknown(error):
        return None
    if isinstance(error, Exception):
        return replace(hold, release=request)
    hand_release_over(name, replace(hold, release=request))
    return None


def hand_release_over(name: str, hold: Hold | None) -> bool:
    """Hands ``hold``'s Release whose outcome is unknown to the keep-alive loop, which resends
    it until it is known; False when there is none. For when the caller will not call
    ``release()`` again (interrupted, or its ``with`` block is over)."""
    if hold is None or hold.release is None:
        return False
    hold.session.release_later(name, hold.token, hold.release)
    return True


def acquire_timing(blocking: bool, timeout: float) -> int:
    """wait_ms for an acquire with threading.Lock's (blocking, timeout) arguments."""
    if not blocking:
        if timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return 0
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number or -1")
    if timeout == -1:
        return MAX_WAIT_MS
    return min(MAX_WAIT_MS, int(timeout * 1000))


class AcquireAttempts:
    """The timing of one ``acquire(blocking, timeout)`` call, shared by ``Lock`` and
    ``AsyncLock``: how long each Acquire request waits, and when to stop asking."""

    def __init__(
        self,
        name: str,
        max_hold: float | None,
        blocking: bool,
        timeout: float,
        retry: RetryPolicy,
    ) -> None:
        self._wait_ms = acquire_timing(blocking, timeout)
        self.name = name
        self.max_hold = max_hold
        self.blocking = blocking
        self.timeout = timeout
        self.retry = retry
        self.started = retry.clock()
        #: When the latest Acquire request id was first sent: a hold is counted from there.
        #: Only ``next`` sets it, with a new id; the retries of an id never move it.
        self.sent = self.started

    def next(self, core: SessionCore) -> dict[str, Any]:
        """The ``request``, ``build``, ``deadline`` and ``attempt_timeout`` of the next Acquire
        write: a new request id of ``core``, first sent now."""
        if self.blocking and self.timeout != -1:
            elapsed = self.retry.clock() - self.started
            self._wait_ms = max(0, int((self.timeout - elapsed) * 1000))
        request = core.requests.new()
        self.sent = self.retry.clock()
        wait_ms = self._wait_ms
        max_hold_ms = int(self.max_hold * 1000) if self.max_hold else 0
        return {
            "request": request,
            "build": lambda rid: pb.AcquireRequest(
                request=rid, name=self.name, max_hold_ms=max_hold_ms, wait_ms=wait_ms
            ),
            "deadline": self.retry.deadline + wait_ms / 1000,
            "attempt_timeout": wait_ms / 1000 + WAIT_GRACE,
        }

    def gave_up(self) -> bool:
        """After a "not acquired" answer: True if the call is over. Otherwise the wait ended
        early (its connection broke, or a 24 h wait ran out) and the caller asks again."""
        if not self.blocking:
            return True
        return self.timeout != -1 and self.retry.clock() - self.started >= self.timeout

    def hold(self, session: Session, token: int) -> Hold:
        expires_at = self.sent + self.max_hold if self.max_hold else None
        return Hold(session, token, self.sent, expires_at)

    def lost(self, hold: Hold) -> str | None:
        """Why a hold just granted is already not ours in this client's view, or None: its
        session is lost, or its max-hold (counted from the send) passed while it waited."""
        if not hold.session.alive():
            return (
                f"lock {self.name!r}: granted (token {hold.token}) after session "
                f"{hold.session.id} was lost"
            )
        now = self.retry.clock()
        if hold.expires_at is not None and now >= hold.expires_at:
            return (
                f"lock {self.name!r}: granted (token {hold.token}) {now - hold.acquired_at:.3f}s "
                f"after the acquire was sent, past its max_hold of {self.max_hold}s"
            )
        return None


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
        if max_hold is not None and max_hold <= 0:
            raise ValueError("max_hold must be positive seconds, or None for no cap")
        self.client = client
        self.name = name
        self.max_hold = max_hold
        self._local = threading.Lock()
        self._hold: Hold | None = None

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
                    response = self.client.write("locks", "Acquire", session=session, **write)
                except BaseException as error:
                    if outcome_unknown(error):
                        self._abandon(session, write["request"], error)
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

    def _give_back(self, hold: Hold) -> None:
        """Best-effort Release of a grant that came too late to use. Its errors are only
        logged: the cluster frees it soon anyway (max-hold, or the lost session's expiry)."""
        try:
            self.client.write(
                "locks",
                "Release",
                lambda rid: pb.ReleaseRequest(request=rid, name=self.name, token=hold.token),
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
        request = hold.release
        try:
            if request is None:
                if not hold.session.alive():
                    raise LockLostError(f"lock {self.name!r}: session {hold.session.id} was lost")
                request = hold.session.core.requests.new()
            self.client.write(
                "locks",
                "Release",
                lambda rid: pb.ReleaseRequest(request=rid, name=self.name, token=hold.token),
                session=hold.session,
                request=request,
            )
        except (NotHolderError, SessionExpiredError) as error:
            self._local.release()
            raise LockLostError(f"lock {self.name!r} was lost: {error}") from error
        except BaseException as error:
            self._hold = unreleased(self.name, hold, request, error)
            if self._hold is None:
                self._local.release()
            raise
        self._local.release()

    def locked(self) -> bool:
        """True while this object holds the lock: session alive and max-hold not passed."""
        hold = self._hold
        if hold is None or not hold.session.alive():
            return False
        return hold.expires_at is None or self.client.retry.clock() < hold.expires_at

    def extend(self, max_hold: float | None) -> None:
        """Restarts the max-hold at ``max_hold`` seconds from now (None: no cap).

        :raises RuntimeError: not held. :raises LockLostError: the hold already ended.
        """
        hold = self._hold
        if hold is None:
            raise RuntimeError("extend of an unlocked lock")
        if max_hold is not None and max_hold <= 0:
            raise ValueError("max_hold must be positive seconds, or None for no cap")
        sent = self.client.retry.clock()
        try:
            self.client.write(
                "locks",
                "Extend",
                lambda rid: pb.ExtendRequest(
                    request=rid,
                    name=self.name,
                    token=hold.token,
                    max_hold_ms=int(max_hold * 1000) if max_hold else 0,
                ),
                session=hold.session,
            )
        except (NotHolderError, SessionExpiredError) as error:
            raise LockLostError(f"lock {self.name!r} was lost: {error}") from error
        self._hold = replace(hold, expires_at=sent + max_hold if max_hold else None)

    def validate(self) -> bool:
        """Asks the cluster (linearizably) whether this object's token still holds the lock."""
        hold = self._hold
        if hold is None:
            return False
        response = self.client.invoke(
            "locks", "Validate", pb.ValidateRequest(name=self.name, token=hold.token)
        )
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
        state = f"held, token {self.token}" if self._hold else "not held"
        return f"<turnstile Lock {self.name!r} {state}>"
