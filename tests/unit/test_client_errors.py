"""from_rpc_error: a failed call becomes the right TurnstileError, by reason first, else by code.

The statuses are the ones the server sends: built by ``turnstile.cluster.errors.to_status``
and carried by a fake ``grpc.RpcError`` with the call's code, details and trailing metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from turnstile.client import errors
from turnstile.client.errors import (
    BY_CODE,
    BY_REASON,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    LimitExceededError,
    NotFoundError,
    NotHolderError,
    NotLeaderError,
    PermissionDeniedError,
    SessionExpiredError,
    TurnstileError,
    UnauthenticatedError,
    UnavailableError,
    UnknownOutcomeError,
    from_rpc_error,
)
from turnstile.cluster.errors import STATUS_CODES, to_status
from turnstile.v1.error_info import DOMAIN
from turnstile.v1.metadata import LEADER_METADATA_KEY
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

DETAILS_KEY = "grpc-status-details-bin"
LEADER = "10.0.0.2:7001"

Metadata = Sequence[tuple[str, str | bytes]]


class FakeRpcError(grpc.RpcError):
    """What a failed sync call raises: a ``grpc.RpcError`` that is also a ``grpc.Call``."""

    def __init__(
        self, code: grpc.StatusCode, details: str | None, metadata: Metadata | None = ()
    ) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self._metadata = None if metadata is None else tuple(metadata)

    @classmethod
    def of(
        cls, reason: Reason, detail: str, metadata: dict[str, str] | None = None
    ) -> FakeRpcError:
        """The error a client sees when the server refuses with ``to_status(reason, ...)``."""
        status = to_status(reason, detail, metadata)
        return cls(status.code, status.details, status.trailing_metadata)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...] | None:
        return self._metadata


def rich_status(code: grpc.StatusCode, message: str, info: error_details_pb2.ErrorInfo) -> bytes:
    """A serialized google.rpc.Status carrying ``info``, as the details trailer holds it."""
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return status.SerializeToString()


#: Written out, not read from BY_REASON, so a changed table entry fails here.
EXPECTED: dict[Reason, type[TurnstileError]] = {
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
RETRYABLE_REASONS = {Reason.NOT_LEADER, Reason.UNAVAILABLE, Reason.UNKNOWN_OUTCOME}


def test_every_reason_has_a_class_and_the_table_is_the_expected_one() -> None:
    assert set(BY_REASON) == set(Reason)
    assert BY_REASON == EXPECTED
    assert all(issubclass(cls, TurnstileError) for cls in BY_REASON.values())


@pytest.mark.parametrize("reason", list(Reason))
def test_each_reason_maps_to_its_class_and_keeps_the_reason(reason: Reason) -> None:
    error = from_rpc_error(FakeRpcError.of(reason, "lock 'a' is not held"))
    assert type(error) is EXPECTED[reason]
    assert type(error) is BY_REASON[reason]
    assert error.reason is reason
    assert str(error) == f"{reason.value}: lock 'a' is not held"
    assert error.leader_hint == ""


@pytest.mark.parametrize("reason", list(Reason))
def test_retryable_exactly_for_unavailable_subclasses(reason: Reason) -> None:
    error = from_rpc_error(FakeRpcError.of(reason, "x"))
    assert error.retryable is (reason in RETRYABLE_REASONS)
    assert error.retryable is isinstance(error, UnavailableError)


def test_retryable_is_a_class_property_of_the_whole_tree() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, TurnstileError)
    ]
    assert len(classes) >= 16
    for cls in classes:
        assert cls.retryable is issubclass(cls, UnavailableError), cls.__name__
    assert DeadlineExceededError.retryable


def test_not_leader_carries_the_leader_hint_from_trailing_metadata() -> None:
    error = from_rpc_error(
        FakeRpcError.of(Reason.NOT_LEADER, "ask the leader", {LEADER_METADATA_KEY: LEADER})
    )
    assert isinstance(error, NotLeaderError)
    assert error.leader_hint == LEADER
    assert error.retryable


def test_not_leader_without_a_known_leader_has_an_empty_hint() -> None:
    error = from_rpc_error(FakeRpcError.of(Reason.NOT_LEADER, "no leader yet"))
    assert isinstance(error, NotLeaderError)
    assert error.leader_hint == ""


def test_hint_is_read_from_plain_metadata_not_from_the_error_info() -> None:
    """Only the ``turnstile-leader`` trailer names the leader (ErrorInfo metadata is ignored)."""
    info = error_details_pb2.ErrorInfo(
        reason=Reason.NOT_LEADER.value, domain=DOMAIN, metadata={LEADER_METADATA_KEY: LEADER}
    )
    code = STATUS_CODES[Reason.NOT_LEADER]
    packed = rich_status(code, "NOT_LEADER: x", info)
    error = from_rpc_error(FakeRpcError(code, "NOT_LEADER: x", [(DETAILS_KEY, packed)]))
    assert isinstance(error, NotLeaderError)
    assert error.leader_hint == ""


def test_binary_leader_metadata_is_not_taken_as_a_hint() -> None:
    status = to_status(Reason.NOT_LEADER, "x")
    metadata = (*status.trailing_metadata, (LEADER_METADATA_KEY, b"\x00\x01"))
    error = from_rpc_error(FakeRpcError(status.code, status.details, metadata))
    assert isinstance(error, NotLeaderError)
    assert error.leader_hint == ""


# ---------------------------------------------------------------------- no reason: by code


def test_plain_unavailable_maps_to_retryable_unavailable_error() -> None:
    error = from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect"))
    assert type(error) is UnavailableError
    assert error.retryable
    assert error.reason is None
    assert error.leader_hint == ""
    assert str(error) == "UNAVAILABLE: failed to connect"


def test_plain_deadline_exceeded_maps_to_deadline_exceeded_error() -> None:
    error = from_rpc_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert type(error) is DeadlineExceededError
    assert error.retryable
    assert error.reason is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
        (grpc.StatusCode.CANCELLED, UnavailableError),
        (grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, NotFoundError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, LimitExceededError),
    ],
    ids=lambda v: getattr(v, "name", None) or getattr(v, "__name__", None),
)
def test_codes_without_a_reason_map_by_the_code_table(
    code: grpc.StatusCode, expected: type[TurnstileError]
) -> None:
    assert BY_CODE[code] is expected
    error = from_rpc_error(FakeRpcError(code, "from a proxy", None))
    assert type(error) is expected
    assert error.reason is None
    assert str(error) == f"{code.name}: from a proxy"


@pytest.mark.parametrize(
    "code",
    [c for c in grpc.StatusCode if c not in BY_CODE and c is not grpc.StatusCode.OK],
    ids=lambda c: c.name,
)
def test_unknown_codes_map_to_internal_error(code: grpc.StatusCode) -> None:
    error = from_rpc_error(FakeRpcError(code, "something odd"))
    assert type(error) is InternalError
    assert not error.retryable
    assert error.reason is None
    assert str(error).startswith(code.name)


def test_missing_details_fall_back_to_the_code_name() -> None:
    error = from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, None, None))
    assert type(error) is UnavailableError
    assert str(error) == "UNAVAILABLE: UNAVAILABLE"


# ---------------------------------------------------------------------- unusable rich status


def test_mismatched_details_still_map_by_code_and_keep_the_hint() -> None:
    status = to_status(Reason.NOT_LEADER, "ask elsewhere", {LEADER_METADATA_KEY: LEADER})
    # a proxy rewrote the message: rpc_status.from_call refuses the rich status
    rpc = FakeRpcError(status.code, "rewritten by a proxy", status.trailing_metadata)
    error = from_rpc_error(rpc)
    assert type(error) is UnavailableError
    assert error.reason is None
    assert error.retryable
    assert error.leader_hint == LEADER
    assert str(error) == "UNAVAILABLE: rewritten by a proxy"


def test_mismatched_code_maps_by_the_calls_code_not_the_reason() -> None:
    status = to_status(Reason.SESSION_EXPIRED, "gone")
    rpc = FakeRpcError(grpc.StatusCode.UNAVAILABLE, status.details, status.trailing_metadata)
    error = from_rpc_error(rpc)
    assert type(error) is UnavailableError
    assert error.reason is None


def test_mismatched_details_with_an_unmapped_code_become_internal_error() -> None:
    status = to_status(Reason.NOT_HOLDER, "token 3")
    rpc = FakeRpcError(status.code, "other text", status.trailing_metadata)
    error = from_rpc_error(rpc)
    assert type(error) is InternalError  # FAILED_PRECONDITION is not in BY_CODE
    assert error.reason is None


def test_error_info_from_a_foreign_domain_is_ignored() -> None:
    info = error_details_pb2.ErrorInfo(reason="NOT_HOLDER", domain="example.com")
    code = grpc.StatusCode.NOT_FOUND
    packed = rich_status(code, "msg", info)
    error = from_rpc_error(FakeRpcError(code, "msg", [(DETAILS_KEY, packed)]))
    assert type(error) is NotFoundError
    assert error.reason is None


def test_unknown_reason_in_our_domain_maps_by_code() -> None:
    info = error_details_pb2.ErrorInfo(reason="FROM_THE_FUTURE", domain=DOMAIN)
    code = grpc.StatusCode.UNAVAILABLE
    packed = rich_status(code, "msg", info)
    error = from_rpc_error(FakeRpcError(code, "msg", [(DETAILS_KEY, packed)]))
    assert type(error) is UnavailableError
    assert error.reason is None


def test_corrupt_status_details_still_map_by_code() -> None:
    rpc = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "bad proxy", [(DETAILS_KEY, b"\xff\xff\xff")])
    error = from_rpc_error(rpc)
    assert type(error) is UnavailableError
    assert error.reason is None
