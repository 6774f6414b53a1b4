"""Turnstile client library for workers.

.. code-block:: python

    import turnstile.client

    with turnstile.client.connect(["node1:7001", "node2:7001", "node3:7001"]) as client:
        with client.lock("work-unit-42", max_hold=30) as held:
            write_result(fence=held.token)
        added, result_id = client.distinct_list("run-2024-06", ttl=3600).insert("key_foo")
"""

from turnstile.client.client import Client, connect
from turnstile.client.describe_core import HolderInfo, LockInfo, SemaphoreInfo, WaiterInfo
from turnstile.client.distinct_list import DistinctList
from turnstile.client.election import Election, Leadership
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
from turnstile.client.group import Group, Watch
from turnstile.client.group_core import Candidate, GroupInfo, Member
from turnstile.client.lock import Lock
from turnstile.client.lock_many import HeldLocks
from turnstile.client.retry import RetryPolicy
from turnstile.client.semaphore import Held, Semaphore
from turnstile.client.session import Session
from turnstile.client.session_state import SessionState
from turnstile.client.watch_core import Change, ChangeType, WatchKind, WatchResult

__all__ = [
    "Candidate",
    "Change",
    "ChangeType",
    "Client",
    "ClosedError",
    "DeadlineExceededError",
    "DistinctList",
    "Election",
    "FailedPreconditionError",
    "Group",
    "GroupInfo",
    "Held",
    "HeldLocks",
    "HolderInfo",
    "InternalError",
    "InvalidArgumentError",
    "Leadership",
    "LimitExceededError",
    "Lock",
    "LockInfo",
    "LockLostError",
    "Member",
    "NotFoundError",
    "NotHolderError",
    "NotLeaderError",
    "PermissionDeniedError",
    "RetryPolicy",
    "Semaphore",
    "SemaphoreInfo",
    "Session",
    "SessionExpiredError",
    "SessionState",
    "TurnstileError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownOutcomeError",
    "WaiterInfo",
    "Watch",
    "WatchKind",
    "WatchResult",
    "connect",
]
