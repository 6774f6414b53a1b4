"""What the sync and asyncio clients share and does no I/O: which stub method a request goes to,
one call's attempts, a write's request id, a lock's hold and acquire timing, and a list's
batches. The I/O is theirs (channels, threads or tasks, sleeping): ``client``, ``session``,
``lock`` and ``distinct_list`` for the sync client, ``aio`` for the asyncio one.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from turnstile.client.describe_core import Description, render_description
from turnstile.client.errors import (
    ClosedError,
    DeadlineExceededError,
    LockLostError,
    NotHolderError,
    SessionExpiredError,
    from_rpc_error,
    outcome_unknown,
)
from turnstile.client.retry import RetryPolicy
from turnstile.client.routes import (
    HOLD_REQUESTS,
    LOCKS,
    SEMAPHORES,
    STUBS,
    NumberedRequest,
    route_of,
)
from turnstile.client.routing import Router
from turnstile.client.session_state import SessionCore
from turnstile.client.stream_calls import carried
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.timeouts import (
    CLIENT_WAIT_GRACE_S,
    STALLED_NODE_AVOID_S,
    UNREACHABLE_NODE_AVOID_S,
)

# ---------------------------------------------------------------------------- calls

#: HTTP/2 keepalive pings, so a call held open (a blocked acquire) to a node that vanished
#: without closing its connection fails within seconds instead of hanging.
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # A restarted node is back within seconds: reconnect at most a second apart (gRPC's
    # default backoff grows to two minutes, so a node down for a while stayed unreachable).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
#: Environment variable naming the endpoints when none are passed.
ENDPOINTS_ENV = "TURNSTILE_ENDPOINTS"


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


def client_identity(name: str | None) -> tuple[str, str, int]:
    """(name, host, pid) shown by the admin tools next to each session."""
    return (name or os.path.basename(sys.argv[0] or "python"), socket.gethostname(), os.getpid())


def open_session_request(identity: tuple[str, str, int], ttl: float) -> pb.OpenSessionRequest:
    name, host, pid = identity
    return pb.OpenSessionRequest(
        ttl_ms=int(ttl * 1000), client_name=name, client_host=host, client_pid=pid
    )


ChannelT = TypeVar("ChannelT", grpc.Channel, grpc.aio.Channel)


class CallStream(Protocol):
    """A session stream to one node (``SessionStream`` or ``AsyncSessionStream``), called as
    a stub method."""

    unimplemented: bool

    @property
    def broken(self) -> bool: ...

    def __call__(self, request: Any, *, timeout: float | None, metadata: Any) -> Any: ...

    def close(self) -> None: ...


class Stubs(Generic[ChannelT]):
    """The channel to each endpoint, opened on first use, the stubs on it, and the session
    stream on it when ``open_stream`` is given. Thread-safe."""

    def __init__(
        self,
        open_channel: Callable[[str], ChannelT],
        open_stream: Callable[[ChannelT], CallStream] | None = None,
    ) -> None:
        self._open_channel: Callable[[str], ChannelT] = open_channel
        self._open_stream: Callable[[ChannelT], CallStream] | None = open_stream
        self._channels: dict[str, ChannelT] = {}
        self._stubs: dict[tuple[str, str], Any] = {}
        self._streams: dict[str, CallStream] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def method(self, endpoint: str, request: Message) -> Any:
        """What sends ``request`` to ``endpoint``: the session stream when it carries the
        request and the node has one, else the unary stub method its route names."""
        route = route_of(request)
        with self._lock:
            if self._closed:
                raise ClosedError("the client is closed")
            channel = self._channels.get(endpoint)
            if channel is None:
                channel = self._channels[endpoint] = self._open_channel(endpoint)
            if self._open_stream is not None and carried(request):
                stream = self._streams.get(endpoint)
                if stream is None or (stream.broken and not stream.unimplemented):
                    if stream is not None:
                        stream.close()  # over already; lets go of what gRPC still holds
                    stream = self._streams[endpoint] = self._open_stream(channel)
                if not stream.unimplemented:
                    return stream
            stub = self._stubs.get((endpoint, route.service))
            if stub is None:
                stub = self._stubs[(endpoint, route.service)] = STUBS[route.service](channel)
        return getattr(stub, route.method)

    def drop(self, endpoint: str) -> ChannelT | None:
        """Forgets ``endpoint``'s channel, stubs and stream (the next call opens new ones);
        returns the channel, for the caller to close."""
        with self._lock:
            for key in [k for k in self._stubs if k[0] == endpoint]:
                del self._stubs[key]
            stream = self._streams.pop(endpoint, None)
            channel = self._channels.pop(endpoint, None)
        if stream is not None:
            stream.close()
        return channel

    def close(self) -> list[ChannelT]:
        """Refuses calls from now on; returns the channels, for the caller to close."""
        with self._lock:
            self._closed = True
            channels, self._channels = list(self._channels.values()), {}
            streams, self._streams = list(self._streams.values()), {}
            self._stubs.clear()
        for stream in streams:
            stream.close()
        return channels


class CallAttempts:
    """One call's attempts: the endpoint and timeout of each, and what a failure means."""

    def __init__(
        self,
        router: Router,
        retry: RetryPolicy,
        deadline: float | None,
        attempt_timeout: float | None,
        on_stalled: Callable[[str], None] | None = None,
        *,
        on_unreachable: Callable[[], None] | None = None,
    ) -> None:
        self._router = router
        self._attempts = retry.start(deadline)
        self._longest = attempt_timeout
        #: Told of an endpoint that stalled or could not be reached (the client drops its
        #: channel, which fails every other call still waiting on it).
        self._on_stalled = on_stalled
        #: The caller's: told of every such attempt, while the call goes on retrying.
        self._on_unreachable = on_unreachable

    def target(self) -> str:
        return self._router.target()

    def timeout(self) -> float:
        return self._attempts.attempt_timeout(self._longest)

    def succeeded(self, endpoint: str) -> None:
        self._router.succeeded(endpoint)

    def failed(self, rpc_error: grpc.RpcError, endpoint: str) -> float:
        """The pause before the next attempt (having told the router), or raises the error as
        a ``TurnstileError`` when it is not retryable or time is up."""
        error = from_rpc_error(rpc_error)
        if not error.retryable:
            raise error from None
        # No answer in time (a frozen node: costly to try again), or no connection at all (no
        # Turnstile reason: a dead node, cheap to try again once it restarted).
        avoid_for = 0.0
        if isinstance(error, DeadlineExceededError):
            avoid_for = STALLED_NODE_AVOID_S
        elif error.reason is None and error.code == grpc.StatusCode.UNAVAILABLE:
            avoid_for = UNREACHABLE_NODE_AVOID_S
        self._router.failed(endpoint, error.leader_hint, avoid_for=avoid_for)
        if avoid_for and self._on_stalled is not None:
            self._on_stalled(endpoint)
        if avoid_for and self._on_unreachable is not None:
            self._on_unreachable()
        pause = self._attempts.next_backoff()
        if pause is None:
            raise error from None
        return pause


@contextlib.contextmanager
def numbered(
    core: SessionCore, request: NumberedRequest, request_id: pb.RequestId | None
) -> Iterator[None]:
    """``request`` under its id for one write: ``request_id``, which its caller may send again
    after an unknown outcome, or a fresh one of ``core`` (see ``SessionCore.writing``)."""
    with core.writing(request_id) as rid:
        request.request.CopyFrom(rid)
        yield


# ---------------------------------------------------------------------------- locks

#: The longest wait one Acquire asks for; "wait forever" asks again after it.
MAX_WAIT_MS = 24 * 3600 * 1000


class HoldingSession(Protocol):
    """What a hold needs of its session: a ``Session`` or an ``AsyncSession``."""

    core: SessionCore

    @property
    def id(self) -> int: ...

    def alive(self) -> bool: ...

    def release_later(
        self, name: str, token: int, request: pb.RequestId, service: str = LOCKS
    ) -> None: ...


SessionT = TypeVar("SessionT", bound=HoldingSession)


@dataclass(frozen=True)
class Hold(Generic[SessionT]):
    """One grant: the session that holds it, its fencing token, and until when it is ours."""

    session: SessionT
    token: int
    #: Client clock (``time.monotonic``) when the granted Acquire was first sent: the hold is
    #: counted from there, however long it waited, so it ends before the cluster's.
    acquired_at: float
    #: Client clock when the max-hold ends; None when uncapped.
    expires_at: float | None
    #: A Release whose outcome is unknown: the next ``release()`` sends this id again, so a
    #: release that did land is answered as such instead of NOT_HOLDER.
    release: pb.RequestId | None = None
    #: The lock's (or semaphore's) name, and its service (``routes.LOCKS`` or ``SEMAPHORES``).
    name: str = ""
    service: str = LOCKS


def check_max_hold(max_hold: float | None) -> None:
    if max_hold is not None and max_hold <= 0:
        raise ValueError("max_hold must be positive seconds, or None for no cap")


def max_hold_ms(max_hold: float | None) -> int:
    return int(max_hold * 1000) if max_hold else 0


def lock_request(
    name: str, max_hold: float | None, description: Description | None
) -> pb.AcquireRequest:
    """A Locks.Acquire of ``name`` but for its wait (see ``AcquireAttempts``)."""
    return pb.AcquireRequest(
        name=name,
        max_hold_ms=max_hold_ms(max_hold),
        description=render_description(description),
    )


def hold_what(hold: Hold[SessionT]) -> str:
    """How errors name what ``hold`` holds."""
    return f"{'semaphore' if hold.service == SEMAPHORES else 'lock'} {hold.name!r}"


def releasing(
    hold: Hold[SessionT],
) -> tuple[pb.ReleaseRequest | pb.ReleasePermitRequest, pb.RequestId]:
    """The Release of ``hold`` and its id: the one of an earlier Release whose outcome is
    unknown, else a fresh one. LockLostError when the session is lost already."""
    request_id = hold.release
    if request_id is None:
        if not hold.session.alive():
            raise LockLostError(f"{hold_what(hold)}: session {hold.session.id} was lost")
        request_id = hold.session.core.requests.new()
    return HOLD_REQUESTS[hold.service].release(name=hold.name, token=hold.token), request_id


def hold_lost(hold: Hold[SessionT], error: NotHolderError | SessionExpiredError) -> LockLostError:
    """The error for a hold the cluster says is over."""
    return LockLostError(f"{hold_what(hold)} was lost: {error}")


def unreleased(
    name: str, hold: Hold[SessionT], request: pb.RequestId | None, error: BaseException
) -> Hold[SessionT] | None:
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


def hand_release_over(name: str, hold: Hold[SessionT] | None) -> bool:
    """Hands ``hold``'s Release whose outcome is unknown to the keep-alive loop, which resends
    it until it is known; False when there is none. For when the caller will not call
    ``release()`` again (interrupted, or its ``with`` block is over)."""
    if hold is None or hold.release is None:
        return False
    hold.session.release_later(name, hold.token, hold.release, hold.service)
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


#: What an acquire sends: a lock's, a semaphore permit's, or several locks' at once.
AcquireLike = pb.AcquireRequest | pb.AcquirePermitRequest | pb.AcquireManyRequest


class AcquireWrite(NamedTuple):
    """One Acquire write: the request, its id, and how long it may take."""

    request: AcquireLike
    request_id: pb.RequestId
    deadline: float
    attempt_timeout: float


class AcquireAttempts:
    """The timing of one ``acquire(blocking, timeout)`` call, shared by ``Lock``, ``Semaphore``,
    ``lock_many`` and their asyncio twins: how long each Acquire request waits, and when to
    stop asking. ``request`` is what each sends but for its wait (default: a Locks.Acquire of
    ``name``), of ``service``; ``name`` is what an Abandon of it names."""

    def __init__(
        self,
        name: str,
        max_hold: float | None,
        blocking: bool,
        timeout: float,
        retry: RetryPolicy,
        *,
        request: AcquireLike | None = None,
        service: str = LOCKS,
        what: str | None = None,
    ) -> None:
        self._wait_ms = acquire_timing(blocking, timeout)
        self._request = request or pb.AcquireRequest(name=name, max_hold_ms=max_hold_ms(max_hold))
        self.service = service
        #: How errors name what was acquired.
        self.what = what or f"lock {name!r}"
        self.name = name
        self.max_hold = max_hold
        self.blocking = blocking
        self.timeout = timeout
        self.retry = retry
        self.started = retry.clock()
        #: When the latest Acquire request id was first sent: a hold is counted from there.
        #: Only ``next`` sets it, with a new id; the retries of an id never move it.
        self.sent = self.started

    def next(self, core: SessionCore) -> AcquireWrite:
        """The next Acquire write: under a new request id of ``core``, first sent now."""
        if self.blocking and self.timeout != -1:
            elapsed = self.retry.clock() - self.started
            self._wait_ms = max(0, int((self.timeout - elapsed) * 1000))
        request_id = core.requests.new()
        self.sent = self.retry.clock()
        wait_ms = self._wait_ms
        request = copy.deepcopy(self._request)
        request.wait_ms = wait_ms
        return AcquireWrite(
            request,
            request_id,
            self.retry.deadline + wait_ms / 1000,
            wait_ms / 1000 + CLIENT_WAIT_GRACE_S,
        )

    def gave_up(self) -> bool:
        """After a "not acquired" answer: True if the call is over. Otherwise the wait ended
        early (its connection broke, or a 24 h wait ran out) and the caller asks again."""
        if not self.blocking:
            return True
        return self.timeout != -1 and self.retry.clock() - self.started >= self.timeout

    def hold(self, session: SessionT, token: int, name: str | None = None) -> Hold[SessionT]:
        expires_at = self.sent + self.max_hold if self.max_hold else None
        return Hold(
            session, token, self.sent, expires_at, name=name or self.name, service=self.service
        )

    def holds(self, session: SessionT, response: Any) -> list[Hold[SessionT]]:
        """The holds a granted ``response`` gave: one per name of an AcquireMany (in the
        request's order), else the one."""
        if isinstance(response, pb.AcquireManyResponse):
            return [self.hold(session, g.token, g.name) for g in response.grants]
        return [self.hold(session, response.token)]

    def lost(self, hold: Hold[SessionT]) -> str | None:
        """Why a hold just granted is already not ours in this client's view, or None: its
        session is lost, or its max-hold (counted from the send) passed while it waited."""
        if not hold.session.alive():
            return (
                f"{self.what}: granted (token {hold.token}) after session "
                f"{hold.session.id} was lost"
            )
        now = self.retry.clock()
        if hold.expires_at is not None and now >= hold.expires_at:
            return (
                f"{self.what}: granted (token {hold.token}) {now - hold.acquired_at:.3f}s "
                f"after the acquire was sent, past its max_hold of {self.max_hold}s"
            )
        return None


def held(hold: Hold[SessionT] | None, clock: Callable[[], float]) -> bool:
    """``locked()``: a hold whose session is alive and whose max-hold has not passed."""
    if hold is None or not hold.session.alive():
        return False
    return hold.expires_at is None or clock() < hold.expires_at


def lock_repr(kind: str, name: str, hold: Hold[SessionT] | None) -> str:
    state = f"held, token {hold.token}" if hold else "not held"
    return f"<turnstile {kind} {name!r} {state}>"


def extending(
    name: str, hold: Hold[SessionT] | None, max_hold: float | None
) -> tuple[Hold[SessionT], pb.ExtendRequest | pb.ExtendPermitRequest]:
    """The hold ``extend(max_hold)`` extends, and its Extend request."""
    if hold is None:
        raise RuntimeError("extend of an unlocked lock")
    check_max_hold(max_hold)
    return hold, HOLD_REQUESTS[hold.service].extend(
        name=hold.name or name, token=hold.token, max_hold_ms=max_hold_ms(max_hold)
    )


def extended(hold: Hold[SessionT], max_hold: float | None, sent: float) -> Hold[SessionT]:
    """``hold`` once an Extend sent at ``sent`` was answered."""
    return replace(hold, expires_at=sent + max_hold if max_hold else None)


# ---------------------------------------------------------------------------- distinct lists

Member = str | bytes
#: Members per Insert/Contains call; larger batches are split (the server's default bound).
BATCH = 1000
#: Members per page when iterating.
PAGE = 1000


def check_ttl(ttl: float | None) -> None:
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be positive seconds, or None for no expiry")


def member_bytes(member: Member) -> bytes:
    """Members travel as bytes; ``str`` is encoded as UTF-8."""
    if isinstance(member, bytes):
        return member
    if isinstance(member, str):
        return member.encode("utf-8")
    raise TypeError(f"a member is str or bytes, not {type(member).__name__}")


def set_up_request(name: str, ttl: float | None) -> pb.SetUpListRequest:
    return pb.SetUpListRequest(name=name, ttl_ms=int(ttl * 1000) if ttl else 0)


def insert_batches(name: str, members: Iterable[Member]) -> list[pb.InsertRequest]:
    """Insert requests for ``members``, at most ``BATCH`` per request."""
    encoded = [member_bytes(m) for m in members]
    return [
        pb.InsertRequest(name=name, members=encoded[start : start + BATCH])
        for start in range(0, len(encoded), BATCH)
    ]


def insert_results(response: pb.InsertResponse) -> list[tuple[bool, int]]:
    return [(r.added, r.id) for r in response.results]


def first_id(response: pb.ContainsResponse) -> int | None:
    return response.ids[0] or None


def page_after(response: pb.MembersResponse) -> int | None:
    """The id to read the next page after, or None when this page was the last."""
    if len(response.members) < PAGE:
        return None
    return int(response.members[-1].id)
