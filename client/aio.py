"""The asyncio client: the same surface as the sync one, for async workers.

.. code-block:: python

    async with turnstile.client.aio.connect(endpoints) as client:
        async with client.lock("work-unit-42", max_hold=30) as held:
            await write_result(fence=held.token)

Leader routing, retry policy, error mapping, request ids, session state and lock holds are the
shared ones of ``turnstile.client.core`` and ``session_state``; only the I/O (``grpc.aio``
channels, tasks instead of threads) is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from turnstile.client.aio_distinct_list import AsyncDistinctList
from turnstile.client.aio_group import AsyncElection, AsyncGroup
from turnstile.client.aio_lock import AsyncLock
from turnstile.client.aio_lock_many import AsyncHeldLocks, lock_many
from turnstile.client.aio_semaphore import AsyncSemaphore
from turnstile.client.aio_stream import AsyncSessionStream
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
from turnstile.client.errors import ClosedError, TurnstileError
from turnstile.client.group_core import GroupInfo
from turnstile.client.retry import RetryPolicy
from turnstile.client.routes import LOCKS, NumberedRequest
from turnstile.client.routing import Router
from turnstile.client.session_state import (
    CLEANUP_DEADLINE,
    PendingWrite,
    SessionCore,
    SessionHandle,
)
from turnstile.client.watch_core import (
    WatchKey,
    WatchResult,
    long_poll_timing,
    watch_request,
    watch_result,
)
from turnstile.v1 import turnstile_pb2 as pb

log = logging.getLogger(__name__)


class AsyncSession(SessionHandle[asyncio.Event]):
    """A session of an ``AsyncClient``, kept alive by a task at TTL/3; ``lost`` is set when
    it is LOST."""

    def __init__(self, client: AsyncClient, core: SessionCore, background: bool = True) -> None:
        #: ``_wake`` wakes the keep-alive task early, to send a write handed to it.
        super().__init__(core, lost=asyncio.Event(), wake=asyncio.Event())
        self._client = client
        self._task: asyncio.Task[None] | None = None
        if background:
            self._task = asyncio.get_running_loop().create_task(self._keep_alive())

    async def keep_alive(self) -> None:
        """See ``Session.keep_alive``."""
        error = await self._send_keep_alive(self.core.clock())
        if error is not None:
            raise error
        for pending in self.core.pending_writes():
            await self._send(pending, CLEANUP_DEADLINE)

    async def _send_keep_alive(self, sent: float) -> TurnstileError | None:
        """See ``Session._send_keep_alive``."""
        core = self.core
        request, deadline, attempt = core.keep_alive_request(sent)
        error = None
        try:
            await self._client.invoke(
                request,
                deadline=deadline,
                attempt_timeout=attempt,
                unreachable=core.keep_alive_failed,
            )
        except TurnstileError as failed:
            error = failed
        core.keep_alive_answered(sent, error)
        return error

    async def abandon(self, name: str, acquire: pb.RequestId, service: str = LOCKS) -> None:
        """See ``Session.abandon``."""
        await self._send(self.core.abandoning(name, acquire, service), CLEANUP_DEADLINE)

    async def _send(self, pending: PendingWrite, deadline: float) -> None:
        """See ``Session._send``."""
        try:
            await self._client.write(
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

    async def _keep_alive(self) -> None:
        core = self.core
        sent = core.clock()  # the first keep-alive is due an interval from now
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(),
                    max(0.0, core.keep_alive_wake(core.next_keep_alive(sent)) - core.clock()),
                )
            self._wake.clear()
            if not core.alive():
                return
            if core.clock() >= core.next_keep_alive(sent):
                sent = core.clock()
                await self._send_keep_alive(sent)
            for pending in core.pending_writes():
                time_left = core.resend_deadline(core.next_keep_alive(sent))
                if time_left is None:
                    break
                await self._send(pending, time_left)

    async def close(self) -> None:
        """Stops the keep-alives and ends the session in the cluster (releasing its locks)."""
        task = self._task
        if (task is None or task.done()) and not self.core.alive():
            return
        if task is not None:
            task.cancel()
        error = None
        if self.core.alive():
            try:
                await self._client.invoke(
                    pb.CloseSessionRequest(session_id=self.core.id), deadline=5
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
        #: Channels of stalled nodes being closed (``_drop_channel``), kept until they are.
        self._closing: set[asyncio.Task[None]] = set()
        self._stubs: Stubs[grpc.aio.Channel] = Stubs(
            lambda endpoint: self.credentials.aio_channel(endpoint, CHANNEL_OPTIONS),
            self._open_stream if session_stream else None,
        )
        self._session: AsyncSession | None = None
        self._opening = asyncio.Lock()
        self._background = keep_alive

    async def invoke(
        self,
        request: Message,
        *,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
        unreachable: Callable[[], None] | None = None,
    ) -> Any:
        """See ``Client.invoke``."""
        return await self._retrying(
            request,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            read=_response,
            unreachable=unreachable,
        )

    async def invoke_stream(
        self,
        request: Message,
        *,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> list[Any]:
        """See ``Client.invoke_stream``."""
        messages: list[Any] = await self._retrying(
            request, deadline=deadline, attempt_timeout=attempt_timeout, read=_messages
        )
        return messages

    async def _retrying(
        self,
        request: Message,
        *,
        deadline: float | None,
        attempt_timeout: float | None,
        read: Callable[[Any], Awaitable[Any]],
        unreachable: Callable[[], None] | None = None,
    ) -> Any:
        """See ``Client._retrying``: ``read`` awaits what the stub returned."""
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
                response = await read(
                    call(request, timeout=attempts.timeout(), metadata=self.credentials.metadata)
                )
            except grpc.RpcError as rpc_error:  # AioRpcError, or a stream's StreamCallError
                await asyncio.sleep(attempts.failed(rpc_error, endpoint))
                continue
            except grpc.aio.UsageError as error:  # "Channel is closed."
                if "closed" not in str(error):
                    raise
                continue  # dropped by another call just now (or the client closed: ClosedError)
            attempts.succeeded(endpoint)
            return response

    async def write(
        self,
        request: NumberedRequest,
        *,
        session: AsyncSession | None = None,
        request_id: pb.RequestId | None = None,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
    ) -> Any:
        """See ``Client.write``."""
        session = session or await self.session()
        with numbered(session.core, request, request_id):
            return await self.invoke(request, deadline=deadline, attempt_timeout=attempt_timeout)

    async def session(self) -> AsyncSession:
        """The live session, opened on first use and again after one is LOST."""
        if self._stubs.closed:
            raise ClosedError("the client is closed")
        current = self._session
        if current is not None and current.alive():
            return current
        async with self._opening:
            if self._session is not None and self._session is not current:
                return self._session
            sent = self.retry.clock()
            opened = await self.invoke(open_session_request(self.identity, self.session_ttl))
            core = SessionCore.opened(opened, sent, self.retry.clock)
            self._session = AsyncSession(self, core, background=self._background)
            return self._session

    async def keep_alive(self) -> float:
        """See ``Client.keep_alive``."""
        session = await self.session()
        await session.keep_alive()
        return session.core.keep_alive_interval

    async def watch(
        self, keys: Iterable[WatchKey], after_revision: int = 0, timeout: float = 0.0
    ) -> WatchResult:
        """See ``Client.watch``."""
        request = watch_request(keys, after_revision, timeout)
        deadline, attempt = long_poll_timing(request, self.retry)
        response = await self.invoke(request, deadline=deadline, attempt_timeout=attempt)
        return watch_result(response)

    def group(self, name: str) -> AsyncGroup:
        return AsyncGroup(self, name)

    async def groups(self, prefix: str = "") -> list[GroupInfo]:
        """See ``Client.groups``."""
        found: list[GroupInfo] = []
        while True:
            after = found[-1].name if found else ""
            response = await self.invoke(pb.ListGroupsRequest(prefix=prefix, after_name=after))
            if not response.groups:
                return found
            found += [GroupInfo.from_pb(g, response.revision) for g in response.groups]

    def election(self, name: str, member_id: str | None = None) -> AsyncElection:
        return AsyncElection(self, name, member_id)

    def lock(self, name: str, max_hold: float | None = None) -> AsyncLock:
        return AsyncLock(self, name, max_hold)

    def semaphore(self, name: str, limit: int, max_hold: float | None = None) -> AsyncSemaphore:
        return AsyncSemaphore(self, name, limit, max_hold)

    async def lock_many(
        self,
        names: Sequence[str],
        max_hold: float | None = None,
        timeout: float | None = None,
        description: Description | None = None,
    ) -> AsyncHeldLocks | None:
        """See ``Client.lock_many``."""
        return await lock_many(self, names, max_hold, timeout, description)

    def distinct_list(self, name: str, ttl: float | None = None) -> AsyncDistinctList:
        return AsyncDistinctList(self, name, ttl)

    def _open_stream(self, channel: grpc.aio.Channel) -> AsyncSessionStream:
        return AsyncSessionStream(
            channel, self.credentials.metadata, self._renewed, self.retry.clock
        )

    def _renewed(self, session_id: int, sent_at: float) -> None:
        """A write sent at ``sent_at`` renewed session ``session_id``: as a keep-alive would."""
        session = self._session
        if session is not None and session.id == session_id:
            session.core.acknowledged(sent_at)

    def _drop_channel(self, endpoint: str) -> None:
        """See ``Client._drop_channel``; the channel closes in a task of its own."""
        channel = self._stubs.drop(endpoint)
        if channel is not None:
            task = asyncio.get_running_loop().create_task(channel.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Closes the session (releasing every lock it holds at once) and the channels."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        for channel in self._stubs.close():
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
    session_stream: bool = True,
    keep_alive: bool = True,
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
        session_stream=session_stream,
        keep_alive=keep_alive,
    )
