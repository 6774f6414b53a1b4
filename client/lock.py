"""``Lock``: a cluster-wide mutex that behaves like ``threading.Lock``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from turnstile.client import acquiring
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
    from turnstile.client.client import Client
    from turnstile.client.session import Session


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

    def acquire(
        self, blocking: bool = True, timeout: float = -1, description: Description | None = None
    ) -> bool:
        """Takes the lock, like ``threading.Lock.acquire``.

        The max-hold is counted from when the granted request was sent, not from the grant:
        a wait longer than ``max_hold`` ends in ``LockLostError``. An acquire that ends without
        its answer (an error below, or an interruption) is abandoned in the cluster, so it
        cannot leave the lock held.

        :param blocking: wait for the lock (on the server, in FIFO order) or try once.
        :param timeout: longest wait in seconds; -1 waits as long as it takes.
        :param description: who holds it and why, shown by ``describe()`` and the admin
            tools: text, or labels (a mapping) sent as ``key=value`` pairs.
        :returns: True if acquired, False if it was held elsewhere until the timeout.
        :raises LockLostError: granted, but the session was lost or the max-hold passed
            meanwhile (by this client's clock); the grant was given back.
        :raises SessionExpiredError: the session was lost while waiting.
        :raises UnavailableError: no leader could be reached within the retry deadline.
        :raises InvalidArgumentError: a bad name or duration.
        :raises ValueError: a description the cluster would refuse (too long, control
            characters).
        """
        attempts = AcquireAttempts(
            self.name,
            self.max_hold,
            blocking,
            timeout,
            self.client.retry,
            request=lock_request(self.name, self.max_hold, description),
        )
        if not self._local.acquire(blocking, timeout):
            return False
        try:
            holds = acquiring.acquire(self.client, attempts)
        except BaseException:
            self._local.release()
            raise
        if holds is None:
            self._local.release()
            return False
        self._hold = holds[0]
        return True

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
        acquiring.release(self.client, hold, self._left)

    def _left(self, hold: Hold[Session] | None) -> None:
        """What is left after a release (see ``acquiring.release``): None frees the object."""
        self._hold = hold
        if hold is None:
            self._local.release()

    def locked(self) -> bool:
        """True while this object holds the lock: session alive and max-hold not passed."""
        return held(self._hold, self.client.retry.clock)

    def extend(self, max_hold: float | None) -> None:
        """Restarts the max-hold at ``max_hold`` seconds from now (None: no cap).

        :raises RuntimeError: not held. :raises LockLostError: the hold already ended.
        """
        self._hold = acquiring.extend(self.client, self.name, self._hold, max_hold)

    def validate(self) -> bool:
        """Asks the cluster (linearizably) whether this object's token still holds the lock."""
        hold = self._hold
        if hold is None:
            return False
        response = self.client.invoke(pb.ValidateRequest(name=self.name, token=hold.token))
        return bool(response.valid)

    def describe(self) -> LockInfo:
        """The lock's holder and queue as the cluster sees them (any client's, with their
        descriptions): who holds it, and who waits."""
        response = self.client.invoke(pb.DescribeLockRequest(name=self.name))
        return LockInfo.from_pb(response.lock)

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        with releasing_on_exit(f"lock {self.name!r}", exc, self._hand_over):
            self.release()

    def _hand_over(self) -> None:
        """The block is over with a Release whose outcome is unknown: nobody will call
        ``release()`` again, so the keep-alive loop resends it, and the object is free."""
        if hand_release_over(self.name, self._hold):
            self._left(None)

    def __repr__(self) -> str:
        return lock_repr("Lock", self.name, self._hold)
