"""The client's exception tree, mapped from a gRPC status and its reason in one table.

Every exception the library raises for a refused or failed call is a ``TurnstileError``.
Retryable ones (``UnavailableError`` and its subclasses) are retried by the library within its
retry deadline; seeing one means that deadline ran out.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError
from grpc_status import rpc_status

from turnstile.v1.error_info import reason_of
from turnstile.v1.metadata import LEADER_METADATA_KEY
from turnstile.v1.reasons import Reason


class TurnstileError(Exception):
    """Base of every error the client raises. ``reason`` is the server's, when it sent one."""

    retryable = False

    def __init__(
        self,
        message: str,
        reason: Reason | None = None,
        leader_hint: str = "",
        code: grpc.StatusCode | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        #: Client address of the leader, when a follower named it.
        self.leader_hint = leader_hint
        #: The failed call's gRPC status code; None for errors the client raises itself.
        self.code = code


class UnavailableError(TurnstileError):
    """The cluster could not be reached or had no leader; retried until the deadline."""

    retryable = True


class NotLeaderError(UnavailableError):
    """The node asked is not the leader (``leader_hint`` says who is)."""


class UnknownOutcomeError(UnavailableError):
    """A write's outcome is unknown; retrying with the same request id is safe."""


class DeadlineExceededError(UnavailableError):
    """One attempt timed out (a slow or paused node)."""


class SessionExpiredError(TurnstileError):
    """The session is gone, and with it every lock it held."""


class NotHolderError(TurnstileError):
    """The token does not hold the lock (released, expired, or handed on)."""


class LockLostError(TurnstileError):
    """A lock this client believed it held was lost before it was released: the critical
    section may not have been exclusive to the end. Fence your writes with the token."""


class NotFoundError(TurnstileError):
    """No such list (or a lock to force-release is not held)."""


class InvalidArgumentError(TurnstileError):
    """The request is malformed: empty or oversize name, bad duration, empty member, ..."""


class LimitExceededError(TurnstileError):
    """A configured bound was reached; the message names it."""


class FailedPreconditionError(TurnstileError):
    """The request conflicts with the cluster's state."""


class UnauthenticatedError(TurnstileError):
    """Missing or wrong credentials."""


class PermissionDeniedError(TurnstileError):
    """The credentials may not make this call."""


class InternalError(TurnstileError):
    """A server-side bug, or a status the client does not know. Not retried, but a write
    that ends with one may have been applied (see ``outcome_unknown``)."""


class ClosedError(TurnstileError):
    """The client was closed."""


#: Statuses without a Turnstile reason that only come before a handler runs (the channel, a
#: proxy, a method the server lacks): the write was not applied. Any other reason-less status
#: (INTERNAL or UNKNOWN from a server that failed mid-call, a proxy's odd one) may follow it.
NOT_APPLIED_CODES = frozenset(
    {
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
    }
)


def outcome_unknown(error: BaseException) -> bool:
    """True when a write that raised ``error`` may or may not have been applied: a retryable
    error once its retries ran out (a timeout, a cancelled call, a lost connection, a leader
    lost mid-commit), a status no Turnstile handler decided, the state machine failing
    mid-command (``Reason.INTERNAL``), or an interruption (KeyboardInterrupt, a cancelled
    task) while it was in flight. Such a write is abandoned or sent again, never taken as
    answered. A Turnstile refusal is an answer."""
    if not isinstance(error, TurnstileError) or error.retryable:
        return True
    if error.reason is not None:
        return error.reason is Reason.INTERNAL
    return error.code is not None and error.code not in NOT_APPLIED_CODES


#: The one table: server reason -> exception class.
BY_REASON: dict[Reason, type[TurnstileError]] = {
    Reason.NOT_LEADER: NotLeaderError,
    Reason.UNAVAILABLE: UnavailableError,
    Reason.UNKNOWN_OUTCOME: UnknownOutcomeError,
    Reason.SESSION_EXPIRED: SessionExpiredError,
    Reason.NOT_HOLDER: NotHolderError,
    Reason.NOT_FOUND: NotFoundError,
    Reason.INVALID_ARGUMENT: InvalidArgumentError,
    Reason.LIMIT_EXCEEDED: LimitExceededError,
    Reason.FAILED_PRECONDITION: FailedPreconditionError,
    Reason.UNAUTHENTICATED: UnauthenticatedError,
    Reason.PERMISSION_DENIED: PermissionDeniedError,
    Reason.INTERNAL: InternalError,
}

#: Statuses without a Turnstile reason (transport failures, proxies): gRPC code -> class.
BY_CODE: dict[grpc.StatusCode, type[TurnstileError]] = {
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: UnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LimitExceededError,
}


class StreamCallError(grpc.RpcError):
    """A call of a session stream that failed, or the stream under it: the ``RpcError`` its
    unary call would have raised, so the retry loops treat both alike."""

    def __init__(
        self, code: grpc.StatusCode, message: str, reason: str = "", leader_address: str = ""
    ) -> None:
        super().__init__(message)
        self._code = code
        self._message = message
        #: The server's reason (a ``Reason`` value), empty when it sent none.
        self.reason = reason
        self.leader_address = leader_address

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> tuple[()]:
        return ()


def from_rpc_error(error: grpc.RpcError) -> TurnstileError:
    """The exception for a failed call (sync ``grpc.RpcError``, ``grpc.aio.AioRpcError``, or
    a ``StreamCallError``)."""
    if isinstance(error, StreamCallError):
        return _classified(
            error.code(), error.details(), _reason(error.reason), error.leader_address
        )
    code: grpc.StatusCode = error.code()
    details: str = error.details() or code.name
    # types-grpcio types the entries as a non-tuple class with bytes values: sync calls return
    # (key, value) namedtuples, grpc.aio a Metadata mapping; values are str but for -bin keys
    metadata: dict[str, str | bytes] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
    try:
        # types-grpcio-status wants a grpc.Call; from_call only reads code(), details() and
        # trailing_metadata(), which every RpcError the library sees (sync or aio) has
        reason = reason_of(rpc_status.from_call(error))  # type: ignore[arg-type]
    except (ValueError, DecodeError):  # inconsistent or corrupt details: map by code
        reason = None
    hint = metadata.get(LEADER_METADATA_KEY, "")
    return _classified(code, details, reason, hint if isinstance(hint, str) else "")


def _reason(value: str) -> Reason | None:
    try:
        return Reason(value) if value else None
    except ValueError:  # a reason this client does not know: map by code
        return None


def _classified(
    code: grpc.StatusCode, details: str, reason: Reason | None, hint: str
) -> TurnstileError:
    cls = BY_REASON.get(reason) if reason else None
    if cls is None:
        cls = BY_CODE.get(code, InternalError)
        details = f"{code.name}: {details}"
    return cls(details, reason, hint, code)
