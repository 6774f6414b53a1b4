"""outcome_unknown: which failed writes may have been applied. Those are abandoned (an Acquire)
or sent again (a Release, an Abandon) and their request ids kept unanswered; the rest are
answers. The errors are mapped from statuses as the client sees them (``from_rpc_error``)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from test_client_calls import refused, transport

from turnstile.client.errors import ClosedError, LockLostError, from_rpc_error, outcome_unknown
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

#: Reason-less statuses that only come before a handler runs (a proxy, the channel, a method
#: the server does not have): the write was not applied.
NOT_APPLIED = {
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
}


@pytest.mark.parametrize(
    "code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name
)
def test_a_status_without_a_turnstile_reason_is_unknown_unless_no_handler_ran(
    code: grpc.StatusCode,
) -> None:
    """INTERNAL or UNKNOWN (a server that crashed or raised mid-call), DEADLINE_EXCEEDED,
    CANCELLED, UNAVAILABLE after the send, a proxy's odd status: the write may have landed."""
    error = from_rpc_error(transport(code, "from somewhere"))
    assert outcome_unknown(error) is (code not in NOT_APPLIED)


@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.name)
def test_a_turnstile_refusal_is_an_answer_unless_retryable_or_internal(reason: Reason) -> None:
    """INTERNAL: the state machine raised mid-command, which may have applied part of it."""
    error = from_rpc_error(refused(reason))
    unknown = {Reason.NOT_LEADER, Reason.UNAVAILABLE, Reason.UNKNOWN_OUTCOME, Reason.INTERNAL}
    assert outcome_unknown(error) is (reason in unknown)


@pytest.mark.parametrize(
    "error",
    [KeyboardInterrupt(), asyncio.CancelledError(), RuntimeError("a bug under the call")],
    ids=lambda e: type(e).__name__,
)
def test_an_interruption_or_a_foreign_error_is_unknown(error: BaseException) -> None:
    assert outcome_unknown(error)


def test_errors_the_client_raises_itself_are_answers() -> None:
    """A closed client (its session was closed first, which freed everything) or a hold's end:
    nothing is left to abandon or to send again."""
    assert not outcome_unknown(ClosedError("the client is closed"))
    assert not outcome_unknown(LockLostError("lost"))
