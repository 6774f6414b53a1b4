"""The sync client: channels, leader discovery, retries, and the session its locks hang off."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from turnstile.client.core import (
    CHANNEL_OPTIONS,
    CallAttempts,
    Stubs,
    client_identity,
    numbered,
    open_session_request,
    parse_endpoints,
)
from turnstile.client.credentials import Credentials
from turnstile.client.describe_core import Description
from turnstile.client.distinct_list import DistinctList
from turnstile.client.election import Election
from turnstile.client.errors import ClosedError
from turnstile.client.group import Group
from turnstile.client.group_core import GroupInfo
from turnstile.client.lock import Lock
from turnstile.client.lock_many import HeldLocks, lock_many
from turnstile.client.retry import RetryPolicy
from turnstile.client.routes import NumberedRequest
from turnstile.client.routing import Router
from turnstile.client.semaphore import Semaphore
from turnstile.client.session import Session
from turnstile.client.session_state import SessionCore
from turnstile.client.stream import SessionStream
from turnstile.client.watch_core import (
    WatchKey,
    WatchResult,
    long_poll_timing,
    watch_request,
    watch_result,
)
from turnstile.v1 import turnstile_pb2 as pb


class Client:
    """A connection to a Turnstile cluster. Thread-safe; use one per process.

    :param endpoints: any subset of the cluster's client addresses.
    :param session_ttl: seconds the session (and so its locks) outlives a silent client.
    :param retry: how long and how often calls are retried across failovers.
    :param name: shown by the admin tools next to this client's session.
    :param ca_file: PEM CA that signed the nodes' certificates; connects over TLS.
    :param cert_file: PEM client certificate, for clusters requiring mutual TLS.
    :param key_file: its private key.
    :param token: bearer token sent with every call.
    :param credentials: all of the above at once (see ``Credentials``); when none is given,
        unset ones are taken from the ``TURNSTILE_*`` variables listed there.
    :param session_stream: carry the session's keep-alives and the workers' calls on one
        stream per node (``Sessions.Stream``); False sends each as a unary call.
    :param keep_alive: keep the session alive from a background thread; False leaves it to
        the caller's ``keep_alive()`` calls (tooz's model: a member that stops heartbeating
        drops out), and writes on a session stream renew it too.
    :raises ValueError: a file cannot be read, or a certificate comes without its key.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        *,
        session_ttl: float = 10.0,
        retry: RetryPolicy | None = None,
        name: str | None = None,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        token: str | None = None,
        credentials: Credentials | None = None,
        session_stream: bool = True,
        keep_alive: bool = True,
    ) -> None:
        self.credentials = credentials or Credentials.load(
            ca_file=ca_file, cert_file=cert_file, key_file=key_file, token=token
        )
        self.retry = retry or RetryPolicy()
        self.router = Router(parse_endpoints(endpoints), clock=self.retry.clock)
        self.session_ttl = session_ttl
        self.identity = client_identity(name)
        self._stubs: Stubs[grpc.Channel] = Stubs(
            lambda endpoint: self.credentials.channel(endpoint, CHANNEL_OPTIONS),
            self._open_stream if session_stream else None,
        )
        self._lock = threading.Lock()
        #: Held while a session is being opened, so threads share one.
        self._opening = threading.Lock()
        self._session: Session | None = None
        self._background = keep_alive

    # ------------------------------------------------------------------ calls

    def invoke(
        self,
        request: Message,
        *,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
        unreachable: Callable[[], None] | None = None,
    ) -> Any:
        """Sends ``request`` to the stub method its type chooses (``core.ROUTES``) on the
        leader, following redirects and retrying retryable errors until ``deadline`` (default:
        the retry policy's). Raises the last error as ``TurnstileError``. ``unreachable`` is
        called each time an attempt finds its node stalled or unreachable, while the call goes
        on retrying (the keep-alives announce SUSPENDED at once that way)."""
        return self._retrying(
            request,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            read=_response,
            unreachable=unreachable,
        )

    def invoke_stream(
        self,
        request: Message,
        *,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> list[Any]:
        """``invoke`` for a server-streaming method: every message, read from one node.
        A failure part-way restarts the whole stream (on the leader, if that moved)."""
        messages: list[Any] = self._retrying(
            request, deadline=deadline, attempt_timeout=attempt_timeout, read=list
        )
        return messages

    def _retrying(
        self,
        request: Message,
        *,
        deadline: float | None,
        attempt_timeout: float | None,
        read: Callable[[Any], Any],
        unreachable: Callable[[], None] | None = None,
    ) -> Any:
        """The retry loop of ``invoke`` and ``invoke_stream``: ``read`` takes what the stub
        returned (a response, or a stream to drain inside the attempt)."""
        attempts = CallAttempts(
            self.router,
            self.retry,
            deadline,
            attempt_timeout,
            on_stalled=self._drop_channel,
            on_unreachable=unreachable,
        )
        while True:
            endpoint = attempts.target()
            call = self._stubs.method(endpoint, request)
            try:
                response = read(
                    call(request, timeout=attempts.timeout(), metadata=self.credentials.metadata)
                )
            except grpc.RpcError as rpc_error:
                self.retry.sleep(attempts.failed(rpc_error, endpoint))
                continue
            except ValueError as error:  # grpc's "Cannot invoke RPC on closed channel!"
                if "closed channel" not in str(error):
                    raise
                continue  # dropped by another call just now (or the client closed: ClosedError)
            attempts.succeeded(endpoint)
            return response

    def write(
        self,
        request: NumberedRequest,
        *,
        session: Session | None = None,
        request_id: pb.RequestId | None = None,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> Any:
        """``invoke`` for a mutation, under a request id of ``session`` (default: the current
        one) set in ``request``: a fresh one, or ``request_id`` when the caller may send it
        again after an unknown outcome (see ``SessionCore.writing``). Every retry reuses the
        id, so the cluster applies it once."""
        session = session or self.session()
        with numbered(session.core, request, request_id):
            return self.invoke(request, deadline=deadline, attempt_timeout=attempt_timeout)

    # ------------------------------------------------------------------ session

    def session(self) -> Session:
        """The live session, opened (a call, and its keep-alive thread started) on first use
        and again after one is LOST."""
        with self._lock:
            if self._stubs.closed:
                raise ClosedError("the client is closed")
            current = self._session
        if current is not None and current.alive():
            return current
        with self._opening:
            if self._session is not None and self._session is not current:
                return self._session
            sent = self.retry.clock()
            opened = self.invoke(open_session_request(self.identity, self.session_ttl))
            core = SessionCore.opened(opened, sent, self.retry.clock)
            session = Session(self, core, background=self._background)
            with self._lock:
                self._session = session
            return session

    def keep_alive(self) -> float:
        """Keeps the session alive now (opening one if there is none, or after one was LOST),
        for a ``Client(keep_alive=False)``; returns the seconds until the next is due.

        :raises SessionExpiredError: the session was gone; the next call opens a new one.
        """
        session = self.session()
        session.keep_alive()
        return session.core.keep_alive_interval

    def watch(
        self, keys: Iterable[WatchKey], after_revision: int = 0, timeout: float = 0.0
    ) -> WatchResult:
        """One Watch: the changes to ``keys`` ((``WatchKind``, name) pairs) after
        ``after_revision``, waiting up to ``timeout`` seconds on the server for the first. The
        lower level of ``Group.watch`` and ``Election.observe``: pass the result's
        ``revision`` as the next ``after_revision``, and re-read on ``compacted``."""
        request = watch_request(keys, after_revision, timeout)
        deadline, attempt = long_poll_timing(request, self.retry)
        return watch_result(self.invoke(request, deadline=deadline, attempt_timeout=attempt))

    # ------------------------------------------------------------------ recipes

    def lock(self, name: str, max_hold: float | None = None) -> Lock:
        """A cluster-wide mutex named ``name`` (see ``Lock``); ``max_hold`` caps one hold."""
        return Lock(self, name, max_hold)

    def semaphore(self, name: str, limit: int, max_hold: float | None = None) -> Semaphore:
        """The semaphore ``name``: at most ``limit`` permits held at once (see ``Semaphore``);
        ``max_hold`` caps each permit."""
        return Semaphore(self, name, limit, max_hold)

    def lock_many(
        self,
        names: Sequence[str],
        max_hold: float | None = None,
        timeout: float | None = None,
        description: Description | None = None,
    ) -> HeldLocks | None:
        """Takes every lock of ``names`` together, in one replicated step, or none: waiting
        FIFO in each lock's queue as one waiter, so callers naming the same locks in any order
        never deadlock. ``Lock.acquire``'s rules otherwise (max-hold counted from the send, an
        acquire ended without its answer abandoned, ``LockLostError`` for a late grant).

        :param timeout: longest wait in seconds (0: try once); None waits as long as it takes.
        :param description: who holds them and why (see ``Lock.acquire``).
        :returns: the holds, by name (release them together or one by one), or None if some
            lock stayed held elsewhere until the timeout.
        """
        return lock_many(self, names, max_hold, timeout, description)

    def distinct_list(self, name: str, ttl: float | None = None) -> DistinctList:
        """The distinct list ``name``, set up on first use with ``ttl`` seconds to live."""
        return DistinctList(self, name, ttl)

    def group(self, name: str) -> Group:
        """The group ``name`` (see ``Group``)."""
        return Group(self, name)

    def groups(self, prefix: str = "") -> list[GroupInfo]:
        """Every group whose name starts with ``prefix``, in name order, with its members."""
        found: list[GroupInfo] = []
        while True:
            after = found[-1].name if found else ""
            response = self.invoke(pb.ListGroupsRequest(prefix=prefix, after_name=after))
            if not response.groups:
                return found
            found += [GroupInfo.from_pb(g, response.revision) for g in response.groups]

    def election(self, name: str, member_id: str | None = None) -> Election:
        """The election ``name``, this client standing as ``member_id`` (see ``Election``)."""
        return Election(self, name, member_id)

    # ------------------------------------------------------------------ lifecycle

    def _open_stream(self, channel: grpc.Channel) -> SessionStream:
        return SessionStream(channel, self.credentials.metadata, self._renewed, self.retry.clock)

    def _renewed(self, session_id: int, sent_at: float) -> None:
        """A write sent at ``sent_at`` renewed session ``session_id``: as a keep-alive would."""
        session = self._session
        if session is not None and session.id == session_id:
            session.core.acknowledged(sent_at)

    def _drop_channel(self, endpoint: str) -> None:
        """Closes the channel to a node that stalled: every call still waiting on it fails at
        once (``CANCELLED``) and is retried on another node, with the same request id, rather
        than waiting out its attempt timeout. The next call to it opens a new channel."""
        channel = self._stubs.drop(endpoint)
        if channel is not None:
            channel.close()

    def close(self) -> None:
        """Closes the session (releasing every lock it holds at once) and the channels."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
        for channel in self._stubs.close():
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _response(response: Any) -> Any:
    return response


def connect(
    endpoints: str | Sequence[str] | None = None,
    *,
    session_ttl: float = 10.0,
    retry: RetryPolicy | None = None,
    name: str | None = None,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    token: str | None = None,
    session_stream: bool = True,
    keep_alive: bool = True,
) -> Client:
    """A ``Client`` for the cluster at ``endpoints`` (any subset of its client addresses).
    No network traffic happens until the first call. TLS, token and stream options: see
    ``Client``."""
    return Client(
        endpoints,
        session_ttl=session_ttl,
        retry=retry,
        name=name,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        token=token,
        session_stream=session_stream,
        keep_alive=keep_alive,
    )
