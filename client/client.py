"""The sync client: channels, leader discovery, retries, and the session its locks hang off."""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc

from turnstile.client.credentials import Credentials
from turnstile.client.distinct_list import DistinctList
from turnstile.client.errors import ClosedError, from_rpc_error
from turnstile.client.lock import Lock
from turnstile.client.retry import Attempts, RetryPolicy
from turnstile.client.routing import Router
from turnstile.client.session import Session, SessionCore
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc

Response = TypeVar("Response")

#: HTTP/2 keepalive pings, so a call held open (a blocked acquire) to a node that vanished
#: without closing its connection fails within seconds instead of hanging.
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)
#: Environment variable naming the endpoints when none are passed.
ENDPOINTS_ENV = "TURNSTILE_ENDPOINTS"
#: The services, by the names ``invoke`` takes.
STUBS: dict[str, type] = {
    "sessions": pb_grpc.SessionsStub,
    "locks": pb_grpc.LocksStub,
    "lists": pb_grpc.DistinctListsStub,
    "cluster": pb_grpc.ClusterStub,
}


def parse_endpoints(endpoints: str | Sequence[str] | None) -> list[str]:
    """``["h:p", ...]``, ``"h:p,h:p"``, or None for the ``TURNSTILE_ENDPOINTS`` variable."""
    if endpoints is None:
        endpoints = os.environ.get(ENDPOINTS_ENV, "")
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    found = [e.strip() for e in endpoints if e.strip()]
    if not found:
        raise ValueError(f"no endpoints given (pass host:port addresses or set {ENDPOINTS_ENV})")
    return found


def pause_after(
    rpc_error: grpc.RpcError, endpoint: str, router: Router, attempts: Attempts
) -> float:
    """After a failed attempt: the pause before the next one (having told the router), or
    raises the error as a ``TurnstileError`` when it is not retryable or time is up."""
    error = from_rpc_error(rpc_error)
    if not error.retryable:
        raise error from None
    router.failed(endpoint, error.leader_hint)
    pause = attempts.next_backoff()
    if pause is None:
        raise error from None
    return pause


def open_session_request(identity: tuple[str, str, int], ttl: float) -> pb.OpenSessionRequest:
    name, host, pid = identity
    return pb.OpenSessionRequest(
        ttl_ms=int(ttl * 1000), client_name=name, client_host=host, client_pid=pid
    )


def client_identity(name: str | None) -> tuple[str, str, int]:
    """(name, host, pid) shown by the admin tools next to each session."""
    return (name or os.path.basename(sys.argv[0] or "python"), socket.gethostname(), os.getpid())


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
    ) -> None:
        self.router = Router(parse_endpoints(endpoints))
        self.credentials = credentials or Credentials.load(
            ca_file=ca_file, cert_file=cert_file, key_file=key_file, token=token
        )
        self.retry = retry or RetryPolicy()
        self.session_ttl = session_ttl
        self.identity = client_identity(name)
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        #: Held while a session is being opened, so threads share one.
        self._opening = threading.Lock()
        self._session: Session | None = None
        self._closed = False

    # ------------------------------------------------------------------ calls

    def _stub(self, endpoint: str, service: str) -> Any:
        with self._lock:
            if self._closed:
                raise ClosedError("the client is closed")
            stub = self._stubs.get((endpoint, service))
            if stub is None:
                channel = self._channels.get(endpoint)
                if channel is None:
                    channel = self._channels[endpoint] = self.credentials.channel(
                        endpoint, CHANNEL_OPTIONS
                    )
                stub = self._stubs[(endpoint, service)] = STUBS[service](channel)
            return stub

    def invoke(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> Any:
        """Calls the leader, following redirects and retrying retryable errors until
        ``deadline`` (default: the retry policy's). Raises the last error as ``TurnstileError``.
        """
        return self._retrying(
            service,
            method,
            request,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            read=_as_is,
        )

    def invoke_stream(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> list[Any]:
        """``invoke`` for a server-streaming method: every message, read from one node.
        A failure part-way restarts the whole stream (on the leader, if that moved)."""
        return self._retrying(
            service, method, request, deadline=deadline, attempt_timeout=attempt_timeout, read=list
        )

    def _retrying(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        deadline: float | None,
        attempt_timeout: float | None,
        read: Callable[[Any], Any],
    ) -> Any:
        """The retry loop of ``invoke`` and ``invoke_stream``: ``read`` takes what the stub
        returned (a response, or a stream to drain inside the attempt)."""
        attempts = self.retry.start(deadline)
        while True:
            endpoint = self.router.target()
            call = getattr(self._stub(endpoint, service), method)
            try:
                response = read(
                    call(
                        request,
                        timeout=attempts.attempt_timeout(attempt_timeout),
                        metadata=self.credentials.metadata,
                    )
                )
            except grpc.RpcError as rpc_error:
                self.retry.sleep(pause_after(rpc_error, endpoint, self.router, attempts))
                continue
            self.router.succeeded(endpoint)
            return response

    def write(
        self,
        service: str,
        method: str,
        build: Callable[[pb.RequestId], Any],
        *,
        session: Session | None = None,
        request: pb.RequestId | None = None,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> Any:
        """A mutation under a request id of ``session`` (default: the current one): a fresh
        one, or ``request`` when the caller may send it again after an unknown outcome (see
        ``SessionCore.writing``). Every retry reuses the id, so the cluster applies it once."""
        session = session or self.session()
        with session.core.writing(request) as request_id:
            return self.invoke(
                service,
                method,
                build(request_id),
                deadline=deadline,
                attempt_timeout=attempt_timeout,
            )

    # ------------------------------------------------------------------ session

    def session(self) -> Session:
        """The live session, opened (a call, and its keep-alive thread started) on first use
        and again after one is LOST."""
        with self._lock:
            if self._closed:
                raise ClosedError("the client is closed")
            current = self._session
        if current is not None and current.alive():
            return current
        with self._opening:
            if self._session is not None and self._session is not current:
                return self._session
            sent = self.retry.clock()
            opened = self.invoke(
                "sessions", "Open", open_session_request(self.identity, self.session_ttl)
            )
            session = Session(
                self, SessionCore(opened.session_id, opened.ttl_ms / 1000, sent, self.retry.clock)
            )
            with self._lock:
                self._session = session
            return session

    # ------------------------------------------------------------------ recipes

    def lock(self, name: str, max_hold: float | None = None) -> Lock:
        """A cluster-wide mutex named ``name`` (see ``Lock``); ``max_hold`` caps one hold."""
        return Lock(self, name, max_hold)

    def distinct_list(self, name: str, ttl: float | None = None) -> DistinctList:
        """The distinct list ``name``, set up on first use with ``ttl`` seconds to live."""
        return DistinctList(self, name, ttl)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Closes the session (releasing every lock it holds at once) and the channels."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
        with self._lock:
            self._closed = True
            channels, self._channels = self._channels, {}
            self._stubs.clear()
        for channel in channels.values():
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _as_is(response: Any) -> Any:
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
) -> Client:
    """A ``Client`` for the cluster at ``endpoints`` (any subset of its client addresses).
    No network traffic happens until the first call. TLS and token options: see ``Client``."""
    return Client(
        endpoints,
        session_ttl=session_ttl,
        retry=retry,
        name=name,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        token=token,
    )
