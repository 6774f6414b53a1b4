"""A session's state as the client sees it, shared by the sync and asyncio clients: request
numbering, the CONNECTED / SUSPENDED / LOST state, and the writes left to the keep-alive loop.
No I/O here: ``Session`` (a thread) and ``AsyncSession`` (a task) send what this decides.

The client counts a session alive until *send time of its last acknowledged keep-alive + TTL*.
The cluster acknowledges a keep-alive only after confirming its leadership, and measures the
TTL from the keep-alive's arrival, so the client's view always ends before the cluster's:
a worker is never left believing it holds a lock its session lost.

The keep-alive loop also resends the writes handed to it: the Abandons of acquires given up
on without their answer, and Releases interrupted before theirs, so neither can leave a lock
held while the session lives. Each such write has one sender at a time (the caller, then the
keep-alive loop once the caller hands it over): a sender reports its id answered once its
outcome is known, and the cluster would refuse another sender's copy after that.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from turnstile.client.errors import (
    FailedPreconditionError,
    NotHolderError,
    SessionExpiredError,
    TurnstileError,
    outcome_unknown,
)
from turnstile.client.routes import HOLD_REQUESTS, LOCKS
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.timeouts import KEEP_ALIVE_ATTEMPT_SHARE, KEEP_ALIVES_PER_TTL

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger(__name__)

#: Answered seqs reported per request at most (the rest go with the next requests).
_ANSWERED_PER_REQUEST = 256
#: How long the client spends cleaning up (an Abandon, giving back a grant it cannot use)
#: before raising the error it is about to raise; an Abandon not done by then is retried by
#: the keep-alive loop.
CLEANUP_DEADLINE = 2.0


class SessionState(enum.Enum):
    """Where a session stands, as far as this client can tell."""

    #: Keep-alives are acknowledged: locks are held.
    CONNECTED = "connected"
    #: Keep-alives are failing: locks may be lost (the session may expire at any moment).
    SUSPENDED = "suspended"
    #: The session expired, or could not be confirmed before its TTL ran out: every lock it
    #: held must be treated as lost. Final.
    LOST = "lost"


Listener = Callable[[SessionState], None]


class RequestIds:
    """Per-session request ids: ``seq`` numbering, the answered prefix ``acked``, and answered
    seqs above it still to be reported (so one long blocked acquire pins nothing)."""

    def __init__(self, session_id: int) -> None:
        self._session_id = session_id
        self._lock = threading.Lock()
        self._last = 0
        self._unanswered: set[int] = set()
        self._to_report: list[int] = []

    def new(self) -> pb.RequestId:
        with self._lock:
            self._last += 1
            seq = self._last
            self._unanswered.add(seq)
            acked = min(self._unanswered) - 1
            self._to_report = [s for s in self._to_report if s > acked]
            return pb.RequestId(
                session_id=self._session_id,
                seq=seq,
                acked=acked,
                answered=self._to_report[:_ANSWERED_PER_REQUEST],
            )

    def answered(self, request: pb.RequestId) -> None:
        """The request got its final answer (or was given up on): never sent again. The cluster
        refuses an id reported answered, so an id that will be sent again must not be here."""
        with self._lock:
            if request.seq not in self._unanswered:
                return
            self._unanswered.discard(request.seq)
            reported = set(request.answered)
            self._to_report = [s for s in self._to_report if s not in reported]
            self._to_report.append(request.seq)

    @property
    def outstanding(self) -> int:
        with self._lock:
            return len(self._unanswered)


@dataclass(frozen=True)
class PendingAbandon:
    """An Acquire given up on without its answer, and the Abandon write that undoes it."""

    name: str
    #: The abandoned Acquire's id: reported answered once the Abandon's outcome is known.
    acquire: pb.RequestId
    #: The Abandon's own id, reused by every retry.
    request: pb.RequestId
    #: The service the acquire went to (``routes.LOCKS`` or ``SEMAPHORES``).
    service: str = LOCKS

    def message(self) -> pb.AbandonRequest | pb.AbandonPermitRequest:
        """The Abandon, sent under ``request``."""
        return HOLD_REQUESTS[self.service].abandon(name=self.name, acquire_seq=self.acquire.seq)

    @property
    def ids(self) -> tuple[pb.RequestId, ...]:
        """The ids answered once the Abandon's outcome is known."""
        return (self.request, self.acquire)

    def __str__(self) -> str:
        return f"abandon of acquire {self.acquire.seq} of lock {self.name!r}"

    def ended(self, error: BaseException | None, session_over: bool) -> None:
        """Logs how it ended. A cluster that refuses Abandon (not yet upgraded:
        FAILED_PRECONDITION) leaves the acquire to max-hold or the session's end."""
        if error is None:
            log.info("acquire %d of lock %r abandoned", self.acquire.seq, self.name)
        elif isinstance(error, SessionExpiredError) or session_over:
            log.info("abandon of lock %r dropped: the session is over", self.name)
        else:
            unsupported = isinstance(error, FailedPreconditionError)
            log.warning(
                "acquire %d of lock %r could not be abandoned%s: %s",
                self.acquire.seq,
                self.name,
                " (the cluster does not support it yet)" if unsupported else "",
                error,
            )


@dataclass(frozen=True)
class PendingRelease:
    """A Release interrupted before its answer, resent under its id until it is known."""

    name: str
    token: int
    request: pb.RequestId
    #: The service the hold is of (``routes.LOCKS`` or ``SEMAPHORES``).
    service: str = LOCKS

    def message(self) -> pb.ReleaseRequest | pb.ReleasePermitRequest:
        """The Release, sent under ``request``."""
        return HOLD_REQUESTS[self.service].release(name=self.name, token=self.token)

    @property
    def ids(self) -> tuple[pb.RequestId, ...]:
        return (self.request,)

    def __str__(self) -> str:
        return f"release of lock {self.name!r} (token {self.token})"

    def ended(self, error: BaseException | None, session_over: bool) -> None:
        """Logs how it ended; a hold that was over already (NOT_HOLDER, SESSION_EXPIRED)
        needed nothing more, so that is no warning."""
        if error is None:
            log.info("lock %r released (token %d) after an interruption", self.name, self.token)
        elif isinstance(error, (NotHolderError, SessionExpiredError)) or session_over:
            why = "the session is over" if session_over else error
            log.info("lock %r (token %d) was free already: %s", self.name, self.token, why)
        else:
            log.warning("release of lock %r (token %d) failed: %s", self.name, self.token, error)


#: A write whose outcome is not known yet, sent by one party at a time.
PendingWrite = PendingAbandon | PendingRelease


class SessionCore:
    """A session's id, TTL and state; the part the sync and asyncio clients share."""

    @classmethod
    def opened(
        cls, response: pb.OpenSessionResponse, sent_at: float, clock: Callable[[], float]
    ) -> SessionCore:
        """The session an Open sent at ``sent_at`` opened: alive for its TTL from the send."""
        return cls(response.session_id, response.ttl_ms / 1000, sent_at, clock)

    def __init__(
        self,
        session_id: int,
        ttl: float,
        opened_sent_at: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = session_id
        self.ttl = ttl
        self.clock = clock
        self.requests = RequestIds(session_id)
        self._alive_until = opened_sent_at + ttl
        #: Send time of the latest call that renewed the session (a keep-alive, or a write on
        #: a session stream).
        self._renewed_sent = opened_sent_at
        self._state = SessionState.CONNECTED
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        #: Writes handed to the keep-alive loop, their one sender from then on, by seq.
        self._pending: dict[int, PendingWrite] = {}

    @property
    def state(self) -> SessionState:
        self._check_deadline()
        return self._state

    @property
    def alive_until(self) -> float:
        return self._alive_until

    def alive(self) -> bool:
        """True while the session is certainly alive in the cluster."""
        return self.state is not SessionState.LOST

    def add_listener(self, listener: Listener) -> None:
        """``listener(state)`` is called on every state change, from the thread that saw it."""
        with self._lock:
            self._listeners.append(listener)

    def acknowledged(self, sent_at: float) -> None:
        """A keep-alive (or a write that renewed the session) sent at ``sent_at`` was
        acknowledged; too late if LOST already."""
        self._check_deadline()
        with self._lock:
            if self._state is SessionState.LOST:
                return
            self._alive_until = max(self._alive_until, sent_at + self.ttl)
            self._renewed_sent = max(self._renewed_sent, sent_at)
        self._move(SessionState.CONNECTED)

    def keep_alive_failed(self) -> None:
        self._check_deadline()
        self._move(SessionState.SUSPENDED)

    def expire(self) -> None:
        """The cluster said the session is gone."""
        self._move(SessionState.LOST)

    def closed(self) -> None:
        """The client ended the session on purpose."""
        self._move(SessionState.LOST, quiet=True)

    @contextlib.contextmanager
    def writing(self, request: pb.RequestId | None = None) -> Iterator[pb.RequestId]:
        """The request id of one write, ``request`` or a fresh one, and its bookkeeping.

        The id is reported answered once the answer is known (a response or a refusal). A fresh
        id is also given up when the write ends without one: nothing sends it again. A
        ``request`` passed in stays open then, because its caller sends it again later (the
        cluster would refuse it once reported answered) or gives it up with
        ``requests.answered``.
        """
        rid = self.requests.new() if request is None else request
        known = False
        try:
            yield rid
            known = True
        except BaseException as error:
            known = not outcome_unknown(error)
            if isinstance(error, SessionExpiredError):
                self.expire()
            raise
        finally:
            if known or request is None:
                self.requests.answered(rid)

    # Writes whose outcome is not known yet (Abandons, interrupted Releases): the caller sends
    # one first, and hands it to the keep-alive loop when that leaves its outcome unknown.

    def abandoning(self, name: str, acquire: pb.RequestId, service: str = LOCKS) -> PendingAbandon:
        """The Abandon that undoes ``acquire`` (sent to ``service``), under an id of its own;
        ``acquire`` stays unanswered until the Abandon's outcome is known."""
        return PendingAbandon(name, acquire, self.requests.new(), service)

    def resend_later(self, pending: PendingWrite) -> None:
        """Hands ``pending`` to the keep-alive loop: from now on it is the only sender."""
        with self._lock:
            self._pending[pending.request.seq] = pending

    def pending_writes(self) -> list[PendingWrite]:
        """The writes handed to the keep-alive loop; none once the session is over, which
        frees everything."""
        if not self.alive():
            return []
        with self._lock:
            return list(self._pending.values())

    def resend_deadline(self, next_send: float) -> float | None:
        """How long the keep-alive loop may spend on pending writes now: until the next
        keep-alive is due, so they never delay one. None when no time is left."""
        left = self.keep_alive_wake(next_send) - self.clock()
        return left if left > 0 else None

    def pending_answered(self, pending: PendingWrite, error: BaseException | None) -> None:
        """Records how one send of ``pending`` ended, by its one sender. An unknown outcome
        (see ``outcome_unknown``) leaves it to the keep-alive loop while the session lives;
        anything else ends it and reports its ids answered."""
        session_over = not self.alive()
        if error is not None and outcome_unknown(error) and not session_over:
            odd = isinstance(error, TurnstileError) and not error.retryable  # INTERNAL, say
            level = logging.WARNING if odd else logging.INFO
            log.log(level, "%s failed, resending it: %r", pending, error)
            self.resend_later(pending)
            return
        with self._lock:
            self._pending.pop(pending.request.seq, None)
        for request in pending.ids:
            self.requests.answered(request)
        pending.ended(error, session_over)

    # The keep-alive loop's decisions; the sync and asyncio loops only wait and call.

    @property
    def keep_alive_interval(self) -> float:
        return self.ttl / KEEP_ALIVES_PER_TTL

    def keep_alive_wake(self, next_send: float) -> float:
        """When the loop wakes next: its next send, or the deadline if that comes first, so
        LOST is announced when it happens, not at the next send."""
        return min(next_send, self._alive_until)

    def next_keep_alive(self, last_sent: float) -> float:
        """When the next keep-alive is due: an interval after the later of the last one sent
        (at ``last_sent``) and the latest renewal, so writes on a session stream, which renew
        the session, make keep-alives needless."""
        return max(last_sent, self._renewed_sent) + self.keep_alive_interval

    def keep_alive_request(self, sent: float) -> tuple[pb.KeepAliveRequest, float, float]:
        """The request, how long it may be retried (until the session would lapse: a
        keep-alive that fails on a frozen leader goes on to the new one), and the longest
        attempt (a share of the interval, so a frozen node costs less than one interval)."""
        deadline = max(0.001, self._alive_until - sent)
        attempt = self.keep_alive_interval * KEEP_ALIVE_ATTEMPT_SHARE
        return pb.KeepAliveRequest(session_id=self.id), deadline, attempt

    def keep_alive_answered(self, sent: float, error: TurnstileError | None) -> None:
        """Records how the keep-alive sent at ``sent`` ended."""
        if error is None:
            self.acknowledged(sent)
        elif isinstance(error, SessionExpiredError):
            self.expire()
        else:
            log.info("keep-alive of session %d failed: %s", self.id, error)
            self.keep_alive_failed()

    def close_answered(self, error: TurnstileError | None) -> None:
        """Records how the Close call ended; the session is over either way."""
        if error is not None and not isinstance(error, SessionExpiredError):
            log.warning("closing session %d failed: %s", self.id, error)
        self.closed()

    def _check_deadline(self) -> None:
        if self._state is not SessionState.LOST and self.clock() >= self._alive_until:
            self._move(SessionState.LOST)

    def _move(self, state: SessionState, quiet: bool = False) -> None:
        with self._lock:
            if self._state is state or self._state is SessionState.LOST:
                return
            self._state = state
            listeners = list(self._listeners)
        log.log(
            logging.INFO if quiet or state is SessionState.CONNECTED else logging.WARNING,
            "session %d is %s",
            self.id,
            state.value,
        )
        for listener in listeners:
            try:
                listener(state)
            except Exception:
                log.exception("session listener failed")


EventT = TypeVar("EventT", threading.Event, "asyncio.Event")


class SessionHandle(Generic[EventT]):
    """What ``Session`` and ``AsyncSession`` share: the state, read from their ``core``, and
    the writes handed to their keep-alive loop. ``lost`` is set when the session is LOST;
    ``_wake`` wakes the loop early. Each adds its loop (a thread, a task) and the sends."""

    def __init__(self, core: SessionCore, lost: EventT, wake: EventT) -> None:
        self.core = core
        self.lost: EventT = lost
        self._wake: EventT = wake
        core.add_listener(self._on_state)

    @property
    def id(self) -> int:
        return self.core.id

    @property
    def state(self) -> SessionState:
        return self.core.state

    @property
    def ttl(self) -> float:
        return self.core.ttl

    def alive(self) -> bool:
        return self.core.alive()

    def add_listener(self, listener: Listener) -> None:
        self.core.add_listener(listener)

    def _on_state(self, state: SessionState) -> None:
        if state is SessionState.LOST:
            self.lost.set()

    def abandon_later(self, name: str, acquire: pb.RequestId, service: str = LOCKS) -> None:
        """``abandon`` sent by the keep-alive loop alone, for a caller being interrupted (it
        must not wait on the network)."""
        self._later(self.core.abandoning(name, acquire, service))

    def release_later(
        self, name: str, token: int, request: pb.RequestId, service: str = LOCKS
    ) -> None:
        """Hands the Release ``request`` of ``token``, interrupted before its answer, to the
        keep-alive loop, which resends it until its outcome is known or the session ends:
        otherwise the lock would stay held (the keep-alives keep the session alive) by a
        caller who gave up."""
        self._later(PendingRelease(name, token, request, service))

    def _later(self, pending: PendingWrite) -> None:
        self.core.resend_later(pending)
        self._wake.set()
