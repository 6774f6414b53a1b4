"""The closed set of error reasons shared by the state machine, the server and the client.

Part of the wire contract: the reason travels as ``google.rpc.ErrorInfo.reason`` in a failed
call's status details, and clients switch on it. Pure: no grpc import here, so the state
machine can use it. The table from reason to gRPC status code is the server's
(``turnstile.cluster.errors``); reading a reason back from a status is ``turnstile.v1.error_info``.
"""

from enum import StrEnum


class Reason(StrEnum):
    """Why a request was refused. Try-lock failure and wait timeout are results, not reasons."""

    #: This node is not the leader; the leader's client address is in the trailing metadata.
    NOT_LEADER = "NOT_LEADER"
    #: No leader is known, or the request could not be committed in time; retry later.
    UNAVAILABLE = "UNAVAILABLE"
    #: The session is unknown or has expired; every lock it held is gone.
    SESSION_EXPIRED = "SESSION_EXPIRED"
    #: The token does not hold the lock (released, expired, or handed to someone else).
    NOT_HOLDER = "NOT_HOLDER"
    #: The named lock, list or member does not exist.
    NOT_FOUND = "NOT_FOUND"
    #: The request is malformed: empty or oversize name, bad duration, unknown op, bad bytes.
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    #: A configured bound (waiters, lists, members, retained results, sessions) is reached.
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    #: A membership change is already in progress, or the request conflicts with the state.
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    #: A missing or wrong credential.
    UNAUTHENTICATED = "UNAUTHENTICATED"
    #: The credential is valid but its role may not make this call.
    PERMISSION_DENIED = "PERMISSION_DENIED"
    #: The request was proposed but its outcome is unknown (leader lost mid-commit); a retry
    #: with the same request id is safe and returns the first outcome.
    UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"
    #: A bug. Logged with detail on the server.
    INTERNAL = "INTERNAL"
