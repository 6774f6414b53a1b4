"""The sync client's session stream: one ``Sessions.Stream`` per node, carrying the calls of
every thread of a ``Client`` (see ``stream_calls``).

A caller's thread queues its call and waits on a lock of its own; gRPC's request thread sends
every call queued by then in one message; a reader thread hands each answer to its caller.
A call that is not answered within its timeout is withdrawn and fails DEADLINE_EXCEEDED, as a
unary call would; when the stream breaks, every call on it fails with the stream's error, and
the retry loop sends it again (on a new stream) under the same request id.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

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

#: Calls sent in one message at most (a burst of threads, or a keep-alive with them).
MAX_CALLS_PER_MESSAGE = 256


class _Waiting:
    """One caller waiting for its answer: a lock it blocks on until the reader releases it."""

    __slots__ = ("answered", "renewed", "result")

    def __init__(self) -> None:
        self.answered = threading.Lock()
        self.answered.acquire()
        self.result: Message | StreamCallError | None = None
        self.renewed = False

    def resolve(self, result: Message | StreamCallError, renewed: bool = False) -> None:
        self.result = result
        self.renewed = renewed
        self.answered.release()


class SessionStream:
    """One open ``Sessions.Stream`` to one node. Thread-safe; call it as a unary stub method.

    ``renewed(session, sent_at)`` is told of each answer that renewed its session, with the
    time (by ``clock``) its call was sent.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        metadata: Sequence[tuple[str, str]],
        renewed: Callable[[int, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renewed = renewed
        self._clock = clock
        self._outgoing: queue.SimpleQueue[pb.StreamCall | None] = queue.SimpleQueue()
        self._waiting: dict[int, _Waiting] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._failed: StreamCallError | None = None
        #: The node answered UNIMPLEMENTED: a build without streams, called unary instead.
        self.unimplemented = False
        self._answers = pb_grpc.SessionsStub(channel).Stream(
            self._messages(), metadata=tuple(metadata)
        )
        threading.Thread(target=self._read, name="turnstile-stream", daemon=True).start()

    @property
    def broken(self) -> bool:
        return self._failed is not None

    def __call__(
        self,
        request: Message,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> Message:
        """``request``'s response, as its unary call would return it (``metadata`` is the
        stream's, sent when it opened)."""
        waiting = _Waiting()
        sent = self._clock()
        with self._lock:
            if self._failed is not None:
                raise self._failed
            call_id = next(self._ids)
            self._waiting[call_id] = waiting
        self._outgoing.put(call_message(call_id, request, timeout))
        try:
            answered = waiting.answered.acquire(timeout=-1 if timeout is None else timeout)
        except BaseException:  # interrupted: the call is withdrawn, as a unary one would be
            self._withdraw(call_id)
            raise
        if not answered:
            if self._withdraw(call_id):
                raise StreamCallError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded (session stream)"
                )
            waiting.answered.acquire()  # answered just now: the reader is releasing it
        result = waiting.result
        if isinstance(result, StreamCallError):
            raise result
        assert result is not None
        if waiting.renewed:
            self._renewed(written_session(request), sent)
        return result

    def close(self) -> None:
        """Ends the stream: the calls still open fail CANCELLED (and are withdrawn)."""
        self._answers.cancel()

    def _withdraw(self, call_id: int) -> bool:
        """Stops waiting for ``call_id`` and cancels it on the node; False if it was answered
        meanwhile."""
        with self._lock:
            if self._waiting.pop(call_id, None) is None:
                return False
        self._outgoing.put(cancel_message(call_id))
        return True

    def _messages(self) -> Iterator[pb.StreamRequest]:
        """The request side, iterated by gRPC's thread: each message every call queued."""
        outgoing = self._outgoing
        while True:
            call = outgoing.get()
            if call is None:
                return
            calls = [call]
            while len(calls) < MAX_CALLS_PER_MESSAGE:
                try:
                    call = outgoing.get_nowait()
                except queue.Empty:
                    break
                if call is None:
                    yield pb.StreamRequest(calls=calls)
                    return
                calls.append(call)
            yield pb.StreamRequest(calls=calls)

    def _read(self) -> None:
        error: grpc.RpcError | None = None
        try:
            for response in self._answers:
                for answer in response.answers:
                    with self._lock:
                        waiting = self._waiting.pop(answer.call_id, None)
                    if waiting is not None:
                        waiting.resolve(answer_result(answer), answer.renewed)
        except grpc.RpcError as rpc_error:
            error = rpc_error
        failed = stream_failed(error)
        with self._lock:
            self.unimplemented = error is not None and error.code() == grpc.StatusCode.UNIMPLEMENTED
            self._failed = failed
            waiting_calls, self._waiting = self._waiting, {}
        self._outgoing.put(None)
        for waiting in waiting_calls.values():
            waiting.resolve(failed)
