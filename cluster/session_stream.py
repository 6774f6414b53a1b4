"""The session stream on the server (``Sessions.Stream``): many calls on one bidi RPC.

A unary call costs the leader a gRPC call's worth of work each (a third of a millisecond on
a small machine); a message on an open stream costs a fraction of that, and one message
carries every call a client has ready. Each call is served by the servicer method of its unary
RPC (``turnstile.cluster.service``), so the stream adds no rule of its own: it multiplexes.

- Every call runs as a task of its own and is answered when it finishes, so a blocked Acquire
  holds up nothing; answers ready together leave in one message.
- A call past its ``timeout_ms`` is cancelled and answered DEADLINE_EXCEEDED; a call the
  client cancels is cancelled without an answer; the calls still open when the stream ends are
  cancelled. Each is what happens to a unary call past its deadline or dropped by its caller
  (a blocked acquire withdraws its wait).
- Each call is counted and timed under its unary method's label, as the unary RPC would be.
- A write that succeeded renews its session from the call's arrival (``renewed`` in the
  answer): committed in this leader's term after the call arrived, it confirmed the
  leadership as the keep-alives' barrier does. A busy client sends no keep-alives.
- On a follower, the calls are forwarded to the leader (``turnstile.cluster.forwarder``): a
  client's stream is served by whichever node it reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from prometheus_client import Counter, Gauge, Histogram

from turnstile.cluster.errors import TurnstileError, stream_error
from turnstile.cluster.forwarder import forwarding
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

log = logging.getLogger(__name__)

#: Calls one stream may have open at once; more are answered LIMIT_EXCEEDED. Far above what a
#: process of threads has in flight, far below what would let one client exhaust the leader.
MAX_OPEN_CALLS = 10_000


@dataclass(frozen=True)
class StreamMethod:
    """How one kind of call is served: its unary method's metrics label (``Locks.Acquire``)
    and the servicer method body, which raises ``TurnstileError`` to refuse.

    ``serve_many``, when given, serves every call of the kind in one message at once (the
    keep-alives: one barrier round, one header), each answered with a response or its
    refusal; such calls change no state a cancel could undo, so a cancel leaves them be.
    """

    label: str
    serve: Callable[[Any], Awaitable[Message]]
    serve_many: Callable[[list[Any]], Awaitable[list[Any]]] | None = None


@dataclass
class _OpenCalls:
    """One stream's calls not yet answered, and the answers not yet sent."""

    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    #: Open calls served together by a ``serve_many`` task (also in ``tasks`` once it is
    #: started, as soon as their message is read): a cancel leaves them be.
    batched: set[int] = field(default_factory=set)
    ready: list[pb.StreamAnswer] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def answer(self, answer: pb.StreamAnswer) -> None:
        self.ready.append(answer)
        self.wake.set()


class SessionStreams:
    """Serves every ``Sessions.Stream`` of a node.

    :param methods: by the ``StreamCall.request`` field name, how that call is served.
    :param leader_address: the leader's client address, sent with NOT_LEADER.
    :param renew: renews a session from an arrival time (monotonic) on a write's success;
        False when this node could not (not leading, the session unknown or expiring).
    :param requests: calls served, by method label and status code (the unary RPCs' metric).
    :param seconds: their latency, by method label (the unary RPCs' metric).
    :param open_streams: streams open now.
    """

    def __init__(
        self,
        methods: Mapping[str, StreamMethod],
        leader_address: Callable[[], str],
        renew: Callable[[int, float], bool],
        *,
        requests: Counter,
        seconds: Histogram,
        open_streams: Gauge,
    ) -> None:
        self._methods = methods
        self._leader_address = leader_address
        self._renew = renew
        self._requests = requests
        self._seconds = seconds
        self._open_streams = open_streams
        #: The metric children of each (label, code), bound once: ``labels()`` on every call
        #: is a lookup under a lock.
        self._counted: dict[tuple[str, grpc.StatusCode], tuple[Any, Any]] = {}

    async def serve(
        self, requests: AsyncIterator[pb.StreamRequest]
    ) -> AsyncIterator[pb.StreamResponse]:
        """The answers to the calls read from ``requests``, in messages, as they finish."""
        calls = _OpenCalls()
        # Every call of the stream runs in a task started from here, in this context.
        forwarding.set(True)
        reader = asyncio.get_running_loop().create_task(self._read(requests, calls))
        self._open_streams.inc()
        try:
            while True:
                if calls.ready:
                    answers, calls.ready = calls.ready, []
                    yield pb.StreamResponse(answers=answers)
                    continue
                if reader.done() and (not calls.tasks or reader.exception() is not None):
                    reader.result()
                    return
                await calls.wake.wait()
                calls.wake.clear()
        finally:
            self._open_streams.dec()
            reader.cancel()
            for task in list(calls.tasks.values()):
                task.cancel()

    async def _read(self, requests: AsyncIterator[pb.StreamRequest], calls: _OpenCalls) -> None:
        try:
            async for request in requests:
                together: dict[str, list[pb.StreamCall]] = {}
                for call in request.calls:
                    self._start(call, calls, together)
                for kind, batch in together.items():
                    self._start_batch(kind, batch, calls)
        finally:
            calls.wake.set()

    def _start(
        self, call: pb.StreamCall, calls: _OpenCalls, together: dict[str, list[pb.StreamCall]]
    ) -> None:
        """Starts ``call``, or puts it in ``together`` when its kind is served many at once."""
        kind = call.WhichOneof("request")
        if kind == "cancel":
            task = calls.tasks.get(call.call_id)
            if task is not None and call.call_id not in calls.batched:
                task.cancel()
            return
        method = self._methods.get(kind) if kind else None
        if method is None or kind is None:
            detail = f"call {call.call_id} names no request the stream carries"
            calls.answer(_refused(call.call_id, Reason.INVALID_ARGUMENT, detail))
            return
        if call.call_id in calls.tasks or call.call_id in calls.batched:
            detail = f"call {call.call_id} is still open: a call id names one open call"
            calls.answer(_refused(call.call_id, Reason.INVALID_ARGUMENT, detail))
            return
        if len(calls.tasks) + sum(map(len, together.values())) >= MAX_OPEN_CALLS:
            detail = f"the stream has {MAX_OPEN_CALLS} calls open already"
            calls.answer(_refused(call.call_id, Reason.LIMIT_EXCEEDED, detail))
            return
        if method.serve_many is not None:
            together.setdefault(kind, []).append(call)
            calls.batched.add(call.call_id)
            return
        calls.tasks[call.call_id] = asyncio.get_running_loop().create_task(
            self._run(call, kind, method, calls)
        )

    def _start_batch(self, kind: str, batch: list[pb.StreamCall], calls: _OpenCalls) -> None:
        task = asyncio.get_running_loop().create_task(self._run_batch(kind, batch, calls))
        for call in batch:
            calls.tasks[call.call_id] = task

    async def _run(
        self, call: pb.StreamCall, kind: str, method: StreamMethod, calls: _OpenCalls
    ) -> None:
        call_id = call.call_id
        request: Message = getattr(call, kind)
        timeout = call.timeout_ms / 1000 if call.timeout_ms else None
        arrived = time.monotonic()
        started = time.perf_counter()
        code = grpc.StatusCode.CANCELLED
        try:
            async with asyncio.timeout(timeout):
                response = await method.serve(request)
            answer = pb.StreamAnswer(call_id=call_id)
            getattr(answer, kind).CopyFrom(response)
            written = getattr(request, "request", None)  # the RequestId of a write
            if written is not None:
                answer.renewed = self._renew(written.session_id, arrived)
            code = grpc.StatusCode.OK
        except Exception as error:  # every failure is this call's answer
            answer, code = self._failure(call_id, method.label, error)
        finally:
            calls.tasks.pop(call_id, None)
            calls.wake.set()
            requests, seconds = self._metrics(method.label, code)
            requests.inc()
            seconds.observe(time.perf_counter() - started)
        calls.answer(answer)

    async def _run_batch(self, kind: str, batch: list[pb.StreamCall], calls: _OpenCalls) -> None:
        """The calls of ``kind`` in one message, served by its ``serve_many`` at once, under
        the longest of their timeouts."""
        method = self._methods[kind]
        assert method.serve_many is not None
        timeouts = [call.timeout_ms for call in batch]
        timeout = max(timeouts) / 1000 if all(timeouts) else None
        started = time.perf_counter()
        results: list[Any]
        try:
            async with asyncio.timeout(timeout):
                results = await method.serve_many([getattr(call, kind) for call in batch])
        except Exception as error:  # the answer of every call of the batch
            results = [error] * len(batch)
        finally:
            for call in batch:
                calls.tasks.pop(call.call_id, None)
                calls.batched.discard(call.call_id)
            calls.wake.set()
        elapsed = time.perf_counter() - started
        codes: dict[grpc.StatusCode, int] = {}
        for call, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                answer, code = self._failure(call.call_id, method.label, result)
            else:
                answer, code = pb.StreamAnswer(call_id=call.call_id), grpc.StatusCode.OK
                getattr(answer, kind).CopyFrom(result)
            codes[code] = codes.get(code, 0) + 1
            calls.answer(answer)
        for code, count in codes.items():
            requests, seconds = self._metrics(method.label, code)
            requests.inc(count)
            for _ in range(count):
                seconds.observe(elapsed)

    def _metrics(self, label: str, code: grpc.StatusCode) -> tuple[Any, Any]:
        """The request counter and latency histogram children of ``label`` and ``code``."""
        bound = self._counted.get((label, code))
        if bound is None:
            bound = self._requests.labels(label, code.name), self._seconds.labels(label)
            self._counted[(label, code)] = bound
        return bound

    def _failure(
        self, call_id: int, label: str, error: Exception
    ) -> tuple[pb.StreamAnswer, grpc.StatusCode]:
        """The answer of a call that raised ``error``, and its status code: a refusal as the
        unary RPC's status, a passed timeout as DEADLINE_EXCEEDED, anything else INTERNAL."""
        if isinstance(error, TurnstileError):
            if error.reason is not Reason.NOT_LEADER:
                log.info("refused %s: %s", label, error)
            leader = self._leader_address() if error.reason is Reason.NOT_LEADER else ""
            failed = stream_error(error.reason, error.detail, leader)
            return pb.StreamAnswer(call_id=call_id, error=failed), error.code
        if isinstance(error, TimeoutError):
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            failed = pb.StreamError(
                code=code.value[0], message=f"{code.name}: the call's timeout_ms passed"
            )
            return pb.StreamAnswer(call_id=call_id, error=failed), code
        log.error("%s failed on a stream", label, exc_info=error)
        failed = stream_error(Reason.INTERNAL, f"{label} failed; see the node's log")
        return pb.StreamAnswer(call_id=call_id, error=failed), grpc.StatusCode.INTERNAL


def _refused(call_id: int, reason: Reason, detail: str) -> pb.StreamAnswer:
    return pb.StreamAnswer(call_id=call_id, error=stream_error(reason, detail))
