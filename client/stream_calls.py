"""What the sync and asyncio session streams share and does no I/O: which requests a stream
carries, a call's message, and an answer's response or error.

A stream call stands in for a unary call: it returns the same response message, or raises a
``StreamCallError`` carrying what that call's ``RpcError`` would (code, message, reason,
leader hint), so retries, routing and error mapping are the unary ones.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import Message

from turnstile.client.errors import StreamCallError, from_rpc_error
from turnstile.v1 import turnstile_pb2 as pb

#: Requests a session stream carries, by type: the name of their ``StreamCall.request`` field
#: (the same name holds the response in ``StreamAnswer.response``). Read from the proto, so a
#: request added there is carried without a change here.
STREAM_FIELDS: dict[type[Message], str] = {
    getattr(pb, f.message_type.name): f.name
    for f in pb.StreamCall.DESCRIPTOR.oneofs_by_name["request"].fields
    if f.message_type is not None and f.name != "cancel"
}
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def carried(request: Message) -> bool:
    """Whether a session stream carries ``request`` (admin calls stay unary)."""
    return type(request) in STREAM_FIELDS


def call_message(call_id: int, request: Message, timeout: float | None) -> pb.StreamCall:
    """``request`` as call ``call_id``, its server-side timeout that of the attempt."""
    call = pb.StreamCall(call_id=call_id, timeout_ms=max(1, int(timeout * 1000)) if timeout else 0)
    getattr(call, STREAM_FIELDS[type(request)]).CopyFrom(request)
    return call


def written_session(request: Message) -> int:
    """The session of a write (the only calls answered ``renewed``): its request id's; 0, no
    session, for a request without one."""
    request_id = getattr(request, "request", None)
    return request_id.session_id if isinstance(request_id, pb.RequestId) else 0


def cancel_message(call_id: int) -> pb.StreamCall:
    """Withdraws call ``call_id`` (its caller stopped waiting)."""
    return pb.StreamCall(call_id=call_id, cancel=pb.CancelCall())


def answer_result(answer: pb.StreamAnswer) -> Message | StreamCallError:
    """The response an answer carries, or the error of its call."""
    kind = answer.WhichOneof("response")
    if kind is None:
        return StreamCallError(grpc.StatusCode.INTERNAL, "INTERNAL: an empty stream answer")
    if kind == "error":
        error = answer.error
        return StreamCallError(
            _CODES.get(error.code, grpc.StatusCode.UNKNOWN),
            error.message,
            error.reason,
            error.leader_address,
        )
    response: Message = getattr(answer, kind)
    return response


def stream_failed(error: grpc.RpcError | None) -> StreamCallError:
    """The error of every call still open on a stream that ended with ``error`` (None: the
    node ended it without one, which only a node going away does)."""
    if error is None:
        return StreamCallError(grpc.StatusCode.UNAVAILABLE, "the node ended the session stream")
    code = error.code()
    if code == grpc.StatusCode.UNIMPLEMENTED:
        # A node of a build without streams: retried, and the client calls it unary from now.
        return StreamCallError(
            grpc.StatusCode.UNAVAILABLE,
            "UNAVAILABLE: the node has no session stream; calling it unary",
            "UNAVAILABLE",
        )
    known = from_rpc_error(error)
    reason = known.reason.value if known.reason else ""
    return StreamCallError(code, error.details() or code.name, reason, known.leader_hint)
