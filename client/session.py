"""The sync ``Session``: its keep-alive thread sends what ``SessionCore`` decides (keep-alives,
and the writes handed to it) until the session is closed or LOST."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from turnstile.client.errors import TurnstileError
from turnstile.client.routes import LOCKS
from turnstile.client.session_state import (
    CLEANUP_DEADLINE,
    PendingWrite,
    SessionCore,
    SessionHandle,
)
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.client import Client


class Session(SessionHandle[threading.Event]):
    """One session of a sync ``Client``, kept alive by a background thread at TTL/3, or, with
    ``background=False``, only by ``keep_alive()`` calls (and writes on a session stream).

    ``lost`` is set when the session is LOST; every lock it held is gone by then (or will be
    once the cluster notices), and the client opens a new session for later calls.
    """

    def __init__(self, client: Client, core: SessionCore, background: bool = True) -> None:
        #: ``_wake`` wakes the keep-alive thread early: to stop, or to send a write handed to it.
        super().__init__(core, lost=threading.Event(), wake=threading.Event())
        self._client = client
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._keep_alive, name=f"turnstile-keepalive-{core.id}", daemon=True
            )
            self._thread.start()

    def keep_alive(self) -> None:
        """Sends one keep-alive now, then the writes handed to the keep-alive loop (Abandons,
        interrupted Releases). What keeps a session of a ``Client(keep_alive=False)`` alive.

        :raises SessionExpiredError: the session is gone (LOST from now on).
        :raises UnavailableError: not confirmed in time (SUSPENDED; LOST once its TTL passed).
        """
        error = self._send_keep_alive(self.core.clock())
        if error is not None:
            raise error
        for pending in self.core.pending_writes():
            self._send(pending, CLEANUP_DEADLINE)

    def _send_keep_alive(self, sent: float) -> TurnstileError | None:
        """One keep-alive sent at ``sent``, its answer recorded (an attempt that finds its node
        stalled or unreachable suspends the session at once); the error it ended with."""
        core = self.core
        request, deadline, attempt = core.keep_alive_request(sent)
        error = None
        try:
            self._client.invoke(
                request,
                deadline=deadline,
                attempt_timeout=attempt,
                unreachable=core.keep_alive_failed,
            )
        except TurnstileError as failed:
            error = failed
        core.keep_alive_answered(sent, error)
        return error

    def abandon(self, name: str, acquire: pb.RequestId, service: str = LOCKS) -> None:
        """Gives up ``acquire``, whose answer never came, so it cannot leave ``name`` held:
        Abandon now, for up to ``CLEANUP_DEADLINE``; if its outcome stays unknown the
        keep-alive thread takes it over and resends it until it is known or the session ends."""
        self._send(self.core.abandoning(name, acquire, service), CLEANUP_DEADLINE)

    def _send(self, pending: PendingWrite, deadline: float) -> None:
        """One send of ``pending`` by its current sender. An interruption hands it to the
        keep-alive thread, woken to take it on, and is raised on."""
        try:
            self._client.write(
                pending.message(),
                session=self,
                request_id=pending.request,
                deadline=deadline,
            )
        except BaseException as error:
            self.core.pending_answered(pending, error)
            if not isinstance(error, TurnstileError):
                self._wake.set()
                raise
        else:
            self.core.pending_answered(pending, None)

    def _keep_alive(self) -> None:
        core = self.core
        sent = core.clock()  # the first keep-alive is due an interval from now
        while True:
            self._wake.wait(
                max(0.0, core.keep_alive_wake(core.next_keep_alive(sent)) - core.clock())
            )
            self._wake.clear()
            if self._closed.is_set() or not core.alive():
                return
            if core.clock() >= core.next_keep_alive(sent):
                sent = core.clock()
                self._send_keep_alive(sent)
            for pending in core.pending_writes():
                time_left = core.resend_deadline(core.next_keep_alive(sent))
                if time_left is None:
                    break
                self._send(pending, time_left)

    def close(self) -> None:
        """Stops the keep-alives and ends the session in the cluster (releasing its locks)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        error = None
        if self.core.alive():
            try:
                self._client.invoke(pb.CloseSessionRequest(session_id=self.core.id), deadline=5)
            except TurnstileError as failed:
                error = failed
        self.core.close_answered(error)
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
