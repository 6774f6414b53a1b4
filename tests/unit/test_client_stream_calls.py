"""What the client's session streams share (client/stream_calls.py) and how ``Stubs`` picks
between a stream and a unary stub: a stream call stands in for its unary call exactly."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from turnstile.client.core import Stubs
from turnstile.client.errors import (
    DeadlineExceededError,
    NotHolderError,
    NotLeaderError,
    StreamCallError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
)
from turnstile.client.routes import ROUTES, route_of
from turnstile.client.stream_calls import (
    STREAM_FIELDS,
    answer_result,
    call_message,
    cancel_message,
    carried,
    stream_failed,
)
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit

A = "a:7001"


def test_each_carried_request_is_answered_with_its_unary_response_type() -> None:
    answers = pb.StreamAnswer.DESCRIPTOR.oneofs_by_name["response"].fields
    response_of = {f.name: f.message_type.full_name for f in answers}
    services = {s.name: s for s in pb.DESCRIPTOR.services_by_name.values()}
    names = {
        "sessions": "Sessions",
        "locks": "Locks",
        "lists": "DistinctLists",
        "semaphores": "Semaphores",
    }
    for request, field in STREAM_FIELDS.items():
        route = ROUTES[request]
        method = services[names[route.service]].methods_by_name[route.method]
        assert response_of[field] == method.output_type.full_name, field
    assert set(response_of) == {*STREAM_FIELDS.values(), "error"}


def test_the_stream_carries_a_workers_calls_and_no_admin_call() -> None:
    assert carried(pb.AcquireRequest()) and carried(pb.KeepAliveRequest())
    assert carried(pb.InsertRequest()) and carried(pb.OpenSessionRequest())
    for admin in (pb.ForceReleaseRequest(), pb.AddMemberRequest(), pb.SaveSnapshotRequest()):
        assert not carried(admin)


def test_a_call_message_carries_the_request_and_its_timeout() -> None:
    request = pb.AcquireRequest(name="L", wait_ms=5)
    call = call_message(7, request, 2.5)
    assert call.call_id == 7 and call.timeout_ms == 2500
    assert call.WhichOneof("request") == "acquire" and call.acquire == request
    assert call_message(8, request, None).timeout_ms == 0
    assert call_message(9, request, 0.0001).timeout_ms == 1  # never "no limit" by rounding
    assert cancel_message(7).WhichOneof("request") == "cancel"


def _error(code: grpc.StatusCode, reason: str, message: str, leader: str = "") -> Any:
    answer = pb.StreamAnswer(
        call_id=1,
        error=pb.StreamError(
            code=code.value[0], message=message, reason=reason, leader_address=leader
        ),
    )
    result = answer_result(answer)
    assert isinstance(result, StreamCallError)
    return from_rpc_error(result)


def test_an_error_answer_becomes_the_error_its_unary_call_raises() -> None:
    moved = _error(grpc.StatusCode.UNAVAILABLE, "NOT_LEADER", "NOT_LEADER: ask n2", "h:2")
    assert isinstance(moved, NotLeaderError) and moved.leader_hint == "h:2"
    assert str(moved) == "NOT_LEADER: ask n2"
    lost = _error(grpc.StatusCode.FAILED_PRECONDITION, "NOT_HOLDER", "NOT_HOLDER: token 3")
    assert isinstance(lost, NotHolderError) and not lost.retryable
    late = _error(grpc.StatusCode.DEADLINE_EXCEEDED, "", "DEADLINE_EXCEEDED: timeout_ms passed")
    assert isinstance(late, DeadlineExceededError) and late.reason is None
    newer = _error(grpc.StatusCode.UNAVAILABLE, "A_REASON_FROM_LATER", "A_REASON_FROM_LATER: x")
    assert type(newer) is UnavailableError  # an unknown reason maps by code


def test_a_response_answer_is_the_response() -> None:
    response = pb.AcquireResponse(acquired=True, token=4)
    assert answer_result(pb.StreamAnswer(call_id=1, acquire=response)) == response
    empty = answer_result(pb.StreamAnswer(call_id=1))
    assert isinstance(empty, StreamCallError) and empty.code() == grpc.StatusCode.INTERNAL


class _Ended(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[()]:
        return ()


def test_a_streams_end_fails_its_calls_retryably_or_as_refused() -> None:
    gone = from_rpc_error(stream_failed(_Ended(grpc.StatusCode.UNAVAILABLE, "connection reset")))
    assert isinstance(gone, UnavailableError) and gone.retryable
    assert from_rpc_error(stream_failed(None)).retryable
    old = from_rpc_error(stream_failed(_Ended(grpc.StatusCode.UNIMPLEMENTED, "no Stream")))
    assert isinstance(old, UnavailableError)  # retried, unary this time
    refused = from_rpc_error(stream_failed(_Ended(grpc.StatusCode.UNAUTHENTICATED, "no token")))
    assert isinstance(refused, UnauthenticatedError) and not refused.retryable


class FakeStream:
    def __init__(self) -> None:
        self.unimplemented = False
        self.broken = False
        self.closed = False

    def __call__(self, request: Any, *, timeout: float | None, metadata: Any) -> Any:
        raise AssertionError("not called here")

    def close(self) -> None:
        self.closed = True


def test_stubs_send_carried_requests_on_the_stream_and_admin_ones_unary() -> None:
    opened: list[FakeStream] = []

    def open_stream(_channel: Any) -> FakeStream:
        opened.append(FakeStream())
        return opened[-1]

    stubs: Stubs[Any] = Stubs(grpc.insecure_channel, open_stream)  # lazy: nothing connects
    assert stubs.method(A, pb.AcquireRequest()) is stubs.method(A, pb.InsertRequest())
    assert len(opened) == 1
    admin = stubs.method(A, pb.ForceReleaseRequest())
    assert admin is not opened[0] and callable(admin)
    opened[0].broken = True
    assert stubs.method(A, pb.KeepAliveRequest()) is opened[1]  # a broken stream is replaced
    opened[1].broken = opened[1].unimplemented = True
    unary = stubs.method(A, pb.AcquireRequest())  # a node without streams: unary from now on
    assert unary is not opened[1] and len(opened) == 2
    assert route_of(pb.AcquireRequest()).method == "Acquire"
    channel = stubs.drop(A)
    assert opened[1].closed and channel is not None
    channel.close()
    stubs.method(A, pb.AcquireRequest())
    for left in stubs.close():
        left.close()
    assert all(stream.closed for stream in opened)
