"""The asyncio client's session stream: one ``Sessions.Stream`` per node, carrying the calls
of every task of an ``AsyncClient`` (see ``stream_calls``).

A caller's task queues its call and awaits a future; one writer task at a time sends every
call queued by then in one message; a reader task resolves each answer's future. A call not
answered within its timeout, or whose task is cancelled, is withdrawn (as a cancelled unary
call is); when the stream breaks, every call on it fails with the stream's error and the
retry loop sends it again under the same request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Sequence

import grpc
from google.protobuf.message import Message

from turnstile.client.errors import StreamCallError
from turnstile.client.stream_calls import (
    answer_result,
    call_message,
    cancel_message,
    stream_failed,
    written_session,
)
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc


class AsyncSessionStream:
    """One open ``Sessions.Stream`` to one node; call it as a ``grpc.aio`` stub method. Create
    and use it on one running loop. ``renewed``: see ``SessionStream``."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        metadata: Sequence[tuple[str, str]],
        renewed: Callable[[int, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renewed = renewed
        self._clock = clock
        self._call = pb_grpc.SessionsStub(channel).Stream(metadata=tuple(metadata))
        self._waiting: dict[int, asyncio.Future[tuple[Message, bool]]] = {}
        self._ids = itertools.count(1)
        self._outgoing: list[pb.StreamCall] = []
        self._writer: asyncio.Task[None] | None = None
        self._failed: StreamCallError | None = None
        #: The node answered UNIMPLEMENTED: a build without streams, called unary instead.
        self.unimplemented = False
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def broken(self) -> bool:
        return self._failed is not None

    async def __call__(
        self,
        request: Message,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> Message:
        """``request``'s response, as its unary call would return it (``metadata`` is the
        stream's, sent when it opened)."""
        if self._failed is not None:
            raise self._failed
        call_id = next(self._ids)
        answer: asyncio.Future[tuple[Message, bool]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = answer
        sent = self._clock()
        self._send(call_message(call_id, request, timeout))
        try:
            async with asyncio.timeout(timeout):
                response, renewed = await answer
            if renewed:
                self._renewed(written_session(request), sent)
            return response
        except TimeoutError:
            raise StreamCallError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded (session stream)"
            ) from None
        finally:
            if self._waiting.pop(call_id, None) is not None and self._failed is None:
                self._send(cancel_message(call_id))

    def close(self) -> None:
        """Ends the stream: the calls still open fail CANCELLED (and are withdrawn)."""
        self._call.cancel()

    def _send(self, call: pb.StreamCall) -> None:
        self._outgoing.append(call)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Sends what is queued, one message per burst, until nothing is left."""
        try:
            while self._outgoing:
                calls, self._outgoing = self._outgoing, []
                await self._call.write(pb.StreamRequest(calls=calls))
        except (grpc.RpcError, asyncio.InvalidStateError):
            self._outgoing = []  # the stream is over: its reader fails the calls
        finally:
            self._writer = None

    async def _read(self) -> None:
        error: grpc.RpcError | None = None
        try:
            while True:
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    break
                assert isinstance(response, pb.StreamResponse)
                for answer in response.answers:
                    waiting = self._waiting.pop(answer.call_id, None)
                    if waiting is not None and not waiting.done():
                        result = answer_result(answer)
                        if isinstance(result, StreamCallError):
                            waiting.set_exception(result)
                        else:
                            waiting.set_result((result, answer.renewed))
        except grpc.RpcError as rpc_error:
            error = rpc_error
        except asyncio.CancelledError:
            error = StreamCallError(grpc.StatusCode.CANCELLED, "the session stream was closed")
            raise
        finally:
            self._fail(error)

    def _fail(self, error: grpc.RpcError | None) -> None:
        self.unimplemented = error is not None and error.code() == grpc.StatusCode.UNIMPLEMENTED
        failed = self._failed = stream_failed(error)
        waiting, self._waiting = self._waiting, {}
        for answer in waiting.values():
            if not answer.done():
                answer.set_exception(failed)
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._call.cancel()
