"""The one table from error reason to gRPC status code, and the status it travels in.

Servicers never build statuses by hand: they raise ``TurnstileError`` (or return an ``Err``
result) and ``to_status`` turns it into a ``grpc_status`` Status whose details carry a
``google.rpc.ErrorInfo`` with the reason, so clients switch on the reason, not the message.
"""

from __future__ import annotations

from typing import NamedTuple

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.error_info import DOMAIN
from turnstile.v1.reasons import Reason

#: Reason -> gRPC status code. Every reason appears exactly once.
STATUS_CODES: dict[Reason, grpc.StatusCode] = {
    Reason.NOT_LEADER: grpc.StatusCode.UNAVAILABLE,
    Reason.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.SESSION_EXPIRED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NOT_HOLDER: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.LIMIT_EXCEEDED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.UNKNOWN_OUTCOME: grpc.StatusCode.UNAVAILABLE,
    Reason.INTERNAL: grpc.StatusCode.INTERNAL,
}


class TurnstileError(Exception):
    """A refused request: a reason from the closed set and a human-readable detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def code(self) -> grpc.StatusCode:
        return STATUS_CODES[self.reason]


class _Status(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def to_status(reason: Reason, detail: str, metadata: dict[str, str] | None = None) -> _Status:
    """The gRPC status for a reason: code from the table, message "REASON: detail", and an
    ErrorInfo detail (domain turnstile.v1) carrying the reason and ``metadata``.
    ``metadata`` also goes out as plain trailing metadata (e.g. the leader hint)."""
    code = STATUS_CODES[reason]
    info = error_details_pb2.ErrorInfo(reason=reason.value, domain=DOMAIN, metadata=metadata)
    status = status_pb2.Status(code=code.value[0], message=f"{reason.value}: {detail}")
    status.details.add().Pack(info)
    rich = rpc_status.to_status(status)
    extra = tuple((metadata or {}).items())
    return _Status(rich.code, rich.details, tuple(rich.trailing_metadata) + extra)


def stream_error(reason: Reason, detail: str, leader_address: str = "") -> pb.StreamError:
    """A refused call of a session stream: what ``to_status`` makes of it for a unary call,
    as one answer message (``leader_address`` is the NOT_LEADER hint)."""
    return pb.StreamError(
        code=STATUS_CODES[reason].value[0],
        message=f"{reason.value}: {detail}",
        reason=reason.value,
        leader_address=leader_address,
    )
