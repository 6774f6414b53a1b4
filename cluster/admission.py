"""Admission: every stateless bound of a request, checked by the servicer before proposing.

A request that breaks a bound the state machine would refuse anyway (an oversize batch, a bad
name or duration, a malformed request id) must cost the cluster nothing: no command is built,
msgpack-encoded on the event loop, journaled or replicated to every node just to be refused.
A 700,000-member insert (about 6 MB, under gRPC's receive limit) took over five seconds and
leadership churn to refuse that way; here it is refused in O(1) from the batch length.

Each ``check_*`` takes the current replicated ``Limits`` and one request message and raises
``TurnstileError`` with the reason and wording the state machine itself would have used: the
checks are ``turnstile.cluster.limits``'s own, in the state machine's per-command order except
that the cheapest come first (request id, then batch length, then sizes). Bounds that depend on
the state (sessions, waiters, list sizes, retained results) stay with the state machine, which
also keeps every check here: replicas must agree whatever a proposer let through.

Nothing is checked for ``Close`` and ``KeepAlive`` (a session id is all they carry) or the
membership calls (``AddMember`` validates its addresses itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar, cast

from turnstile.cluster import limits as bounds
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.limits import Limits, RefusedError
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

Request = TypeVar("Request")
Options = ParamSpec("Options")


def _refusing(
    check: Callable[Concatenate[Limits, Request, Options], None],
) -> Callable[Concatenate[Limits, Request, Options], None]:
    """Turns the state machine's ``RefusedError`` into the servicer's ``TurnstileError``."""

    @wraps(check)
    def checked(
        limits: Limits, request: Request, /, *args: Options.args, **kwargs: Options.kwargs
    ) -> None:
        try:
            check(limits, request, *args, **kwargs)
        except RefusedError as refused:
            raise TurnstileError(refused.reason, refused.detail) from None

    return checked


def _request_id(limits: Limits, rid: pb.RequestId) -> None:
    """What ``StateMachine._apply_once`` refuses without looking at the session, in O(1)."""
    bounds.check_request_id(limits, rid.seq, rid.acked, len(rid.answered))
    late = next((seq for seq in rid.answered if seq >= rid.seq), None)
    if late is not None:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"answered seq {late} is not below the request's seq {rid.seq}",
        )


def _members(limits: Limits, members: Sequence[bytes]) -> None:
    # check_members only takes len() and iterates, so the repeated field itself will do: an
    # oversize batch is refused on its length before a single member is copied or read.
    bounds.check_members(limits, cast(tuple[bytes, ...], members))


@_refusing
def check_open(limits: Limits, request: pb.OpenSessionRequest) -> None:
    bounds.check_session_ttl(limits, request.ttl_ms)
    for what, text in (("client_name", request.client_name), ("client_host", request.client_host)):
        bounds.check_text(limits, what, text, limits.max_name_bytes, "max_name_bytes")


@_refusing
def check_acquire(limits: Limits, request: pb.AcquireRequest) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, "lock name", request.name)
    bounds.check_duration(limits, "max_hold_ms", request.max_hold_ms, zero_ok=True)
    bounds.check_duration(limits, "wait_ms", request.wait_ms, zero_ok=True)
    bounds.check_description(limits, request.description)


@_refusing
def check_acquire_many(limits: Limits, request: pb.AcquireManyRequest) -> None:
    _request_id(limits, request.request)
    bounds.check_lock_names(limits, request.names)
    bounds.check_duration(limits, "max_hold_ms", request.max_hold_ms, zero_ok=True)
    bounds.check_duration(limits, "wait_ms", request.wait_ms, zero_ok=True)
    bounds.check_description(limits, request.description)


@_refusing
def check_acquire_permit(limits: Limits, request: pb.AcquirePermitRequest) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, "semaphore name", request.name)
    bounds.check_permit_limit(limits, request.limit)
    bounds.check_duration(limits, "max_hold_ms", request.max_hold_ms, zero_ok=True)
    bounds.check_duration(limits, "wait_ms", request.wait_ms, zero_ok=True)
    bounds.check_description(limits, request.description)


@_refusing
def check_abandon(
    limits: Limits, request: pb.AbandonRequest | pb.AbandonPermitRequest, what: str = "lock name"
) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, what, request.name)
    if request.acquire_seq == request.request.seq or request.acquire_seq < 1:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"acquire_seq must be another request of the session, got {request.acquire_seq}",
        )


@_refusing
def check_release(
    limits: Limits, request: pb.ReleaseRequest | pb.ReleasePermitRequest, what: str = "lock name"
) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, what, request.name)


@_refusing
def check_extend(
    limits: Limits, request: pb.ExtendRequest | pb.ExtendPermitRequest, what: str = "lock name"
) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, what, request.name)
    bounds.check_duration(limits, "max_hold_ms", request.max_hold_ms, zero_ok=True)


@_refusing
def check_validate(limits: Limits, request: pb.ValidateRequest) -> None:
    bounds.check_name(limits, "lock name", request.name)


@_refusing
def check_describe(
    limits: Limits,
    request: pb.DescribeLockRequest | pb.DescribeSemaphoreRequest,
    what: str = "lock name",
) -> None:
    bounds.check_name(limits, what, request.name)


@_refusing
def check_force_release(limits: Limits, request: pb.ForceReleaseRequest) -> None:
    bounds.check_name(limits, "lock name", request.name)
    bounds.check_text(limits, "reason", request.reason, limits.max_reason_bytes, "max_reason_bytes")


@_refusing
def check_set_up(limits: Limits, request: pb.SetUpListRequest) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, "list name", request.name)
    bounds.check_duration(limits, "ttl_ms", request.ttl_ms, zero_ok=True)


@_refusing
def check_insert(limits: Limits, request: pb.InsertRequest) -> None:
    _request_id(limits, request.request)
    _members(limits, request.members)
    bounds.check_name(limits, "list name", request.name)


@_refusing
def check_contains(limits: Limits, request: pb.ContainsRequest) -> None:
    _members(limits, request.members)
    bounds.check_name(limits, "list name", request.name)


@_refusing
def check_list_read(limits: Limits, request: pb.SizeRequest | pb.MembersRequest) -> None:
    """A read of one list by name (``Size``, ``Members``)."""
    bounds.check_name(limits, "list name", request.name)


@_refusing
def check_tear_down(limits: Limits, request: pb.TearDownListRequest) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, "list name", request.name)


@_refusing
def check_group_call(
    limits: Limits, request: pb.CreateGroupRequest | pb.DeleteGroupRequest
) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, "group name", request.name)


@_refusing
def check_member_call(
    limits: Limits,
    request: pb.JoinGroupRequest | pb.LeaveGroupRequest | pb.UpdateCapabilitiesRequest,
) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, "group name", request.name)
    bounds.check_name(limits, "member id", request.member_id)
    if not isinstance(request, pb.LeaveGroupRequest):
        bounds.check_capabilities(limits, request.capabilities)


@_refusing
def check_campaign(limits: Limits, request: pb.CampaignRequest) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, "election name", request.name)
    bounds.check_name(limits, "member id", request.member_id)
    bounds.check_duration(limits, "wait_ms", request.wait_ms, zero_ok=True)


@_refusing
def check_resign(limits: Limits, request: pb.ResignRequest) -> None:
    _request_id(limits, request.request)
    bounds.check_name(limits, "election name", request.name)


@_refusing
def check_watch(limits: Limits, request: pb.WatchRequest) -> None:
    if not request.keys:
        raise RefusedError(Reason.INVALID_ARGUMENT, "keys must not be empty")
    if len(request.keys) > limits.max_batch:
        raise RefusedError(
            Reason.LIMIT_EXCEEDED,
            f"{len(request.keys)} keys in one watch, over max_batch={limits.max_batch}",
        )
    for index, key in enumerate(request.keys):
        if key.kind not in WATCH_KINDS:
            raise RefusedError(Reason.INVALID_ARGUMENT, f"key {index} has no valid kind")
        bounds.check_name(limits, f"key {index} name", key.name)
    bounds.check_duration(limits, "wait_ms", request.wait_ms, zero_ok=True)


#: The kinds of object a watch may follow.
WATCH_KINDS = frozenset({pb.WATCH_GROUP, pb.WATCH_ELECTION, pb.WATCH_LOCK, pb.WATCH_LIST})
