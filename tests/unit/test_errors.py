"""The reason -> status table is total, and the reason survives the trip through a status."""

import grpc
import pytest
from google.rpc import status_pb2

from turnstile.cluster.errors import STATUS_CODES, TurnstileError, to_status
from turnstile.v1.error_info import reason_of
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def test_every_reason_has_exactly_one_status_code() -> None:
    assert set(STATUS_CODES) == set(Reason)
    assert all(isinstance(code, grpc.StatusCode) for code in STATUS_CODES.values())
    assert grpc.StatusCode.OK not in STATUS_CODES.values()


@pytest.mark.parametrize("reason", list(Reason))
def test_status_carries_code_message_and_reason(reason: Reason) -> None:
    status = to_status(reason, "lock 'a' is not held", {"leader": "127.0.0.1:1"})
    assert status.code == STATUS_CODES[reason]
    assert status.details == f"{reason.value}: lock 'a' is not held"
    (key, packed) = status.trailing_metadata[0]
    assert key == "grpc-status-details-bin"
    parsed = status_pb2.Status.FromString(packed)
    assert reason_of(parsed) is reason


def test_reason_of_ignores_foreign_or_unknown_details() -> None:
    assert reason_of(None) is None
    assert reason_of(status_pb2.Status(code=14, message="plain")) is None


def test_turnstile_error_names_reason_and_code() -> None:
    error = TurnstileError(Reason.NOT_HOLDER, "token 3 does not hold lock 'a'")
    assert str(error) == "NOT_HOLDER: token 3 does not hold lock 'a'"
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
