"""The asyncio client: the same surface as the sync one, for async workers.

.. code-block:: python

    async with turnstile.client.aio.connect(endpoints) as client:
        async with client.lock("work-unit-42", max_hold=30) as held:
            await write_result(fence=held.token)

Leader routing, retry policy, error mapping, request ids and session state are the shared
ones of the sync client; only the I/O (``grpc.aio`` channels, tasks instead of threads) is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc

from turnstile.client.client import (
    CHANNEL_OPTIONS,
    STUBS,
    client_identity,
    open_session_request,
    parse_endpoints,
    pause_after,
)
from turnstile.client.credentials import Credentials
from turnstile.client.distinct_list import (
    PAGE,
    Member,
    insert_batches,
    insert_results,
    member_bytes,
)
from turnstile.client.errors import (
    ClosedError,
    LockLostError,
    NotFoundError,
    NotHolderError,
    SessionExpiredError,
    TurnstileError,
    outcome_unknown,
)
from turnstile.client.lock import AcquireAttempts, Hold, hand_release_over, unreleased
from turnstile.client.retry import RetryPolicy
from turnstile.client.routing import Router
from turnstile.client.session import (
    CLEANUP_DEADLINE,
    Listener,
    PendingRelease,
    PendingWrite,
    SessionCore,
    SessionState,
)
from turnstile.v1 import turnstile_pb2 as pb

log = logging.getLogger(__name__)


class AsyncSession:
    """A session of an ``AsyncClient``, kept alive by a task at TTL/3; ``lost`` is set when
    it is LOST."""

    def __init__(self, client: AsyncClient, core: SessionCore) -> None:
        self._client = client
        self.core = core
        self.lost = asyncio.Event()
        #: Wakes the keep-alive task early, to send a write handed to it.
        self._wake = asyncio.Event()
        core.add_listener(self._on_state)
        self._task = asyncio.get_running_loop().create_task(self._keep_alive())

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

    async def abandon(self, name: str, acquire: pb.RequestId) -> None:
        """See ``Session.abandon``."""
        await self._send(self.core.abandoning(name, acquire), CLEANUP_DEADLINE)

    def abandon_later(self, name: str, acquire: pb.RequestId) -> None:
        """See ``Session.abandon_later``: for a task being cancelled."""
        self._later(self.core.abandoning(name, acquire))

    def release_later(self, name: str, token: int, request: pb.RequestId) -> None:
        """See ``Session.release_later``: for a task cancelled in ``release()``."""
        self._later(PendingRelease(name, token, request))

    def _later(self, pending: PendingWrite) -> None:
        self.core.resend_later(pending)
        self._wake.set()

    async def _send(self, pending: PendingWrite, deadline: float) -> None:
        """See ``Session._send``."""
        try:
            await self._client.write(
                "locks",
                pending.method,
                pending.build,
                session=self,
                request=pending.request,
                deadline=deadline,
            )
        except BaseException as error:
            self.core.pending_answered(pending, error)
            if not isinstance(error, TurnstileError):
                self._wake.set()
                raise
        else:
            self.core.pending_answered(pending, None)

    async def _keep_alive(self) -> None:
        core = self.core
        next_send = core.clock() + core.keep_alive_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), max(0.0, core.keep_alive_wake(next_send) - core.clock())
                )
            self._wake.clear()
            if not core.alive():
                return
            if core.clock() >= next_send:
                sent = core.clock()
                next_send = sent + core.keep_alive_interval
                request, deadline = core.keep_alive_request(sent)
                error = None
                try:
                    await self._client.invoke("sessions", "KeepAlive", request, deadline=deadline)
                except TurnstileError as failed:
                    error = failed
                core.keep_alive_answered(sent, error)
            for pending in core.pending_writes():
                deadline = core.resend_deadline(next_send)
                if deadline is None:
                    break
                await self._send(pending, deadline)

    async def close(self) -> None:
        """Stops the keep-alives and ends the session in the cluster (releasing its locks)."""
        if self._task.done() and not self.core.alive():
            return
        self._task.cancel()
        error = None
        if self.core.alive():
            try:
                await self._client.invoke(
                    "sessions", "Close", pb.CloseSessionRequest(session_id=self.core.id), deadline=5
                )
            except TurnstileError as failed:
                error = failed
        self.core.close_answered(error)


class AsyncClient:
    """``turnstile.client.Client`` for asyncio (the same TLS and token options). Create it
    inside a running event loop."""

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
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, str], Any] = {}
        self._session: AsyncSession | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    def _stub(self, endpoint: str, service: str) -> Any:
        if self._closed:
            raise ClosedError("the client is closed")
        stub = self._stubs.get((endpoint, service))
        if stub is None:
            channel = self._channels.get(endpoint)
            if channel is None:
                channel = self._channels[endpoint] = self.credentials.aio_channel(
                    endpoint, CHANNEL_OPTIONS
                )
            stub = self._stubs[(endpoint, service)] = STUBS[service](channel)
        return stub

    async def invoke(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> Any:
        """See ``Client.invoke``."""
        return await self._retrying(
            service,
            method,
            request,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            read=_response,
        )

    async def invoke_stream(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> list[Any]:
        """See ``Client.invoke_stream``."""
        return await self._retrying(
            service,
            method,
            request,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            read=_messages,
        )

    async def _retrying(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        deadline: float | None,
        attempt_timeout: float | None,
        read: Callable[[Any], Awaitable[Any]],
    ) -> Any:
        """See ``Client._retrying``: ``read`` awaits what the stub returned."""
        attempts = self.retry.start(deadline)
        while True:
            endpoint = self.router.target()
            call = getattr(self._stub(endpoint, service), method)
            try:
                response = await read(
                    call(
                        request,
                        timeout=attempts.attempt_timeout(attempt_timeout),
                        metadata=self.credentials.metadata,
                    )
                )
            except grpc.aio.AioRpcError as rpc_error:
                await asyncio.sleep(pause_after(rpc_error, endpoint, self.router, attempts))
                continue
            self.router.succeeded(endpoint)
            return response

    async def write(
        self,
        service: str,
        method: str,
        build: Callable[[pb.RequestId], Any],
        *,
        session: AsyncSession | None = None,
        request: pb.RequestId | None = None,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> Any:
        """See ``Client.write``."""
        session = session or await self.session()
        with session.core.writing(request) as request_id:
            return await self.invoke(
                service,
                method,
                build(request_id),
                deadline=deadline,
                attempt_timeout=attempt_timeout,
            )

    async def session(self) -> AsyncSession:
        """The live session, opened on first use and again after one is LOST."""
        if self._closed:
            raise ClosedError("the client is closed")
        current = self._session
        if current is not None and current.alive():
            return current
        async with self._opening:
            if self._session is not None and self._session is not current:
                return self._session
            sent = self.retry.clock()
            opened = await self.invoke(
                "sessions", "Open", open_session_request(self.identity, self.session_ttl)
            )
            self._session = AsyncSession(
                self, SessionCore(opened.session_id, opened.ttl_ms / 1000, sent, self.retry.clock)
            )
            return self._session

    def lock(self, name: str, max_hold: float | None = None) -> AsyncLock:
        return AsyncLock(self, name, max_hold)

    def distinct_list(self, name: str, ttl: float | None = None) -> AsyncDistinctList:
        return AsyncDistinctList(self, name, ttl)

    async def close(self) -> None:
        """Closes the session (releasing every lock it holds at once) and the channels."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._closed = True
        channels, self._channels = self._channels, {}
        self._stubs.clear()
        for channel in channels.values():
            await channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _response(call: Awaitable[Any]) -> Any:
    return await call


async def _messages(call: AsyncIterable[Any]) -> list[Any]:
    return [message async for message in call]


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
) -> AsyncClient:
    """An ``AsyncClient``; no network traffic happens until the first call."""
    return AsyncClient(
        endpoints,
        session_ttl=session_ttl,
        retry=retry,
        name=name,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        token=token,
    )


class AsyncLock:
    """``turnstile.client.Lock`` for asyncio: ``await lock.acquire()``, ``async with lock``."""

    def __init__(self, client: AsyncClient, name: str, max_hold: float | None = None) -> None:
        if max_hold is not None and max_hold <= 0:
            raise ValueError("max_hold must be positive seconds, or None for no cap")
        self.client = client
        self.name = name
        self.max_hold = max_hold
        self._local = asyncio.Lock()
        #: Tasks waiting for this object (a non-blocking acquire must not queue behind them).
        self._queued = 0
        self._hold: Hold | None = None

    @property
    def token(self) -> int | None:
        return self._hold.token if self._hold else None

    @property
    def expires_at(self) -> float | None:
        return self._hold.expires_at if self._hold else None

    async def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """See ``Lock.acquire``."""
        attempts = AcquireAttempts(self.name, self.max_hold, blocking, timeout, self.client.retry)
        if not blocking:
            # Free and nobody queued on this object: acquire() returns at once.
            if self._local.locked() or self._queued:
                return False
            await self._local.acquire()
        else:
            self._queued += 1
            try:
                if timeout == -1:
                    await self._local.acquire()
                else:
                    await asyncio.wait_for(self._local.acquire(), timeout)
            except TimeoutError:
                return False
            finally:
                self._queued -= 1
        try:
            while True:
                session = await self.client.session()
                write = attempts.next(session.core)
                try:
                    response = await self.client.write("locks", "Acquire", session=session, **write)
                except BaseException as error:
                    if outcome_unknown(error):
                        await self._abandon(session, write["request"], error)
                    raise
                if response.acquired:
                    break
                if attempts.gave_up():
                    self._local.release()
                    return False
            hold = attempts.hold(session, response.token)  # type: ignore[arg-type]
            lost = attempts.lost(hold)
            if lost is not None:
                await self._give_back(hold)
                raise LockLostError(lost)
        except BaseException:
            self._local.release()
            raise
        self._hold = hold
        return True

    async def _abandon(
        self, session: AsyncSession, request: pb.RequestId, error: BaseException
    ) -> None:
        """See ``Lock._abandon``: a cancelled task leaves it to the keep-alive task."""
        if isinstance(error, Exception):
            await session.abandon(self.name, request)
        else:
            session.abandon_later(self.name, request)

    async def _give_back(self, hold: Hold) -> None:
        """See ``Lock._give_back``."""
        try:
            await self.client.write(
                "locks",
                "Release",
                lambda rid: pb.ReleaseRequest(request=rid, name=self.name, token=hold.token),
                session=hold.session,  # type: ignore[arg-type]
                deadline=CLEANUP_DEADLINE,
            )
        except TurnstileError as error:
            log.info("lock %r: giving back token %d failed: %s", self.name, hold.token, error)

    async def release(self) -> None:
        """See ``Lock.release``."""
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
            await self.client.write(
                "locks",
                "Release",
                lambda rid: pb.ReleaseRequest(request=rid, name=self.name, token=hold.token),
                session=hold.session,  # type: ignore[arg-type]
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
        """See ``Lock.locked``."""
        hold = self._hold
        if hold is None or not hold.session.alive():
            return False
        return hold.expires_at is None or self.client.retry.clock() < hold.expires_at

    async def extend(self, max_hold: float | None) -> None:
        """See ``Lock.extend``."""
        hold = self._hold
        if hold is None:
            raise RuntimeError("extend of an unlocked lock")
        if max_hold is not None and max_hold <= 0:
            raise ValueError("max_hold must be positive seconds, or None for no cap")
        sent = self.client.retry.clock()
        try:
            await self.client.write(
                "locks",
                "Extend",
                lambda rid: pb.ExtendRequest(
                    request=rid,
                    name=self.name,
                    token=hold.token,
                    max_hold_ms=int(max_hold * 1000) if max_hold else 0,
                ),
                session=hold.session,  # type: ignore[arg-type]
            )
        except (NotHolderError, SessionExpiredError) as error:
            raise LockLostError(f"lock {self.name!r} was lost: {error}") from error
        self._hold = replace(hold, expires_at=sent + max_hold if max_hold else None)

    async def validate(self) -> bool:
        """See ``Lock.validate``."""
        hold = self._hold
        if hold is None:
            return False
        response = await self.client.invoke(
            "locks", "Validate", pb.ValidateRequest(name=self.name, token=hold.token)
        )
        return bool(response.valid)

    async def __aenter__(self) -> AsyncLock:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            await self.release()
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
        return f"<turnstile AsyncLock {self.name!r} {state}>"


class AsyncDistinctList:
    """``turnstile.client.DistinctList`` for asyncio."""

    def __init__(self, client: AsyncClient, name: str, ttl: float | None = None) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive seconds, or None for no expiry")
        self.client = client
        self.name = name
        self.ttl = ttl
        self._set_up = False

    async def set_up(self) -> bool:
        ttl_ms = int(self.ttl * 1000) if self.ttl else 0
        response = await self.client.write(
            "lists",
            "SetUp",
            lambda rid: pb.SetUpListRequest(request=rid, name=self.name, ttl_ms=ttl_ms),
        )
        self._set_up = True
        return bool(response.created)

    async def insert(self, member: Member) -> tuple[bool, int]:
        return (await self.insert_many([member]))[0]

    async def _ensure_set_up(self) -> None:
        if not self._set_up:
            await self.set_up()

    async def insert_many(self, members: Iterable[Member]) -> list[tuple[bool, int]]:
        batches = insert_batches(self.name, members)
        await self._ensure_set_up()
        results: list[tuple[bool, int]] = []
        for build in batches:
            results += insert_results(await self.client.write("lists", "Insert", build))
        return results

    async def id_of(self, member: Member) -> int | None:
        try:
            response = await self.client.invoke(
                "lists",
                "Contains",
                pb.ContainsRequest(name=self.name, members=[member_bytes(member)]),
            )
        except NotFoundError:
            return None
        return response.ids[0] or None

    async def contains(self, member: Member) -> bool:
        return (await self.id_of(member)) is not None

    async def size(self) -> int:
        try:
            response = await self.client.invoke("lists", "Size", pb.SizeRequest(name=self.name))
        except NotFoundError:
            return 0
        return int(response.list.size)

    async def __aiter__(self) -> AsyncIterator[tuple[bytes, int]]:
        after = 0
        while True:
            try:
                response = await self.client.invoke(
                    "lists",
                    "Members",
                    pb.MembersRequest(name=self.name, after_id=after, limit=PAGE),
                )
            except NotFoundError:
                return
            for item in response.members:
                yield item.member, item.id
            if len(response.members) < PAGE:
                return
            after = response.members[-1].id

    async def tear_down(self) -> bool:
        response = await self.client.write(
            "lists", "TearDown", lambda rid: pb.TearDownListRequest(request=rid, name=self.name)
        )
        self._set_up = False
        return bool(response.removed)

    def __repr__(self) -> str:
        return f"<turnstile AsyncDistinctList {self.name!r}>"
