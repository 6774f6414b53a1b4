"""Sessions: request numbering and the CONNECTED / SUSPENDED / LOST state, shared by the sync
and asyncio clients, plus the sync ``Session`` with its keep-alive thread.

The client counts a session alive until *send time of its last acknowledged keep-alive + TTL*.
The cluster acknowledges a keep-alive only after confirming its leadership, and measures the
TTL from the keep-alive's arrival, so the client's view always ends before the cluster's:
a worker is never left believing it holds a lock its session lost.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from turnstile.client.errors import SessionExpiredError, TurnstileError
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.client import Client

log = logging.getLogger(__name__)

#: Answered seqs reported per request at most (the rest go with the next requests).
_ANSWERED_PER_REQUEST = 256


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
        """The request got its final answer (or was given up on): never retried again."""
        with self._lock:
            self._unanswered.discard(request.seq)
            reported = set(request.answered)
            self._to_report = [s for s in self._to_report if s not in reported]
            self._to_report.append(request.seq)

    @property
    def outstanding(self) -> int:
        with self._lock:
            return len(self._unanswered)


class SessionCore:
    """A session's id, TTL and state; the part the sync and asyncio clients share."""

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
        self._state = SessionState.CONNECTED
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

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
        """A keep-alive sent at ``sent_at`` was acknowledged (too late if LOST already)."""
        self._check_deadline()
        with self._lock:
            if self._state is SessionState.LOST:
                return
            self._alive_until = max(self._alive_until, sent_at + self.ttl)
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

    # The keep-alive loop's decisions; the sync and asyncio loops only wait and call.

    @property
    def keep_alive_interval(self) -> float:
        return self.ttl / 3

    def keep_alive_wake(self, next_send: float) -> float:
        """When the loop wakes next: its next send, or the deadline if that comes first, so
        LOST is announced when it happens, not at the next send."""
        return min(next_send, self._alive_until)

    def keep_alive_request(self, sent: float) -> tuple[pb.KeepAliveRequest, float]:
        """The request, and how long it may be retried: no later than the deadline."""
        deadline = max(0.001, min(self.keep_alive_interval, self._alive_until - sent))
        return pb.KeepAliveRequest(session_id=self.id), deadline

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


class Session:
    """One session of a sync ``Client``, kept alive by a background thread at TTL/3.

    ``lost`` is set when the session is LOST; every lock it held is gone by then (or will be
    once the cluster notices), and the client opens a new session for later calls.
    """

    def __init__(self, client: Client, core: SessionCore) -> None:
        self._client = client
        self.core = core
        self.lost = threading.Event()
        self._closed = threading.Event()
        core.add_listener(self._on_state)
        self._thread = threading.Thread(
            target=self._keep_alive, name=f"turnstile-keepalive-{core.id}", daemon=True
        )
        self._thread.start()

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

    def _keep_alive(self) -> None:
        core = self.core
        next_send = core.clock() + core.keep_alive_interval
        while not self._closed.wait(max(0.0, core.keep_alive_wake(next_send) - core.clock())):
            if not core.alive():
                return
            if core.clock() < next_send:
                continue
            sent = core.clock()
            next_send = sent + core.keep_alive_interval
            request, deadline = core.keep_alive_request(sent)
            error = None
            try:
                self._client.invoke("sessions", "KeepAlive", request, deadline=deadline)
            except TurnstileError as failed:
                error = failed
            core.keep_alive_answered(sent, error)
            if not core.alive():
                return

    def close(self) -> None:
        """Stops the keep-alives and ends the session in the cluster (releasing its locks)."""
        if self._closed.is_set():
            return
        self._closed.set()
        error = None
        if self.core.alive():
            try:
                self._client.invoke(
                    "sessions", "Close", pb.CloseSessionRequest(session_id=self.core.id), deadline=5
                )
            except TurnstileError as failed:
                error = failed
        self.core.close_answered(error)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
