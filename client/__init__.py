"""Turnstile client library for workers.

.. code-block:: python

    import turnstile.client

    with turnstile.client.connect(["node1:7001", "node2:7001", "node3:7001"]) as client:
        with client.lock("work-unit-42", max_hold=30) as held:
            write_result(fence=held.token)
        added, result_id = client.distinct_list("run-2024-06", ttl=3600).insert("key_foo")
"""

from turnstile.client.client import Client, connect
from turnstile.client.distinct_list import DistinctList
from turnstile.client.errors import (
    ClosedError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    LimitExceededError,
    LockLostError,
    NotFoundError,
    NotHolderError,
    NotLeaderError,
    PermissionDeniedError,
    SessionExpiredError,
    TurnstileError,
    UnauthenticatedError,
    UnavailableError,
    UnknownOutcomeError,
)
from turnstile.client.lock import Lock
from turnstile.client.retry import RetryPolicy
from turnstile.client.session import Session
from turnstile.client.session_state import SessionState

__all__ = [
    "Client",
    "ClosedError",
    "DeadlineExceededError",
    "DistinctList",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "LimitExceededError",
    "Lock",
    "LockLostError",
    "NotFoundError",
    "NotHolderError",
    "NotLeaderError",
    "PermissionDeniedError",
    "RetryPolicy",
    "Session",
    "SessionExpiredError",
    "SessionState",
    "TurnstileError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownOutcomeError",
    "connect",
]
