"""Which stub method a request goes to: every RPC of turnstile.proto, chosen by the request's
type (each RPC takes a type of its own), and the Release, Abandon and Extend types of a hold
of each service. No I/O; ``Stubs`` and the session streams send."""

from __future__ import annotations

import enum
from typing import NamedTuple

from google.protobuf.message import Message

from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc


class Idempotency(enum.Enum):
    """What sending a request again does. The library resends every request on a retryable
    error until its deadline; this says why that is safe for each."""

    #: Changes nothing: a resend reads again.
    READ = "read"
    #: Carries a request id, reused by every resend, so the cluster applies it once.
    NUMBERED = "numbered"
    #: Changes state without a request id: a resend of one that landed is applied again
    #: harmlessly (a KeepAlive renews again, an Open leaves a spare session to expire) or
    #: refused as done already (Close, ForceRelease, a membership change).
    UNNUMBERED = "unnumbered"


class Route(NamedTuple):
    """Where a request goes: its service (a key of ``STUBS``), method, and idempotency."""

    service: str
    method: str
    idempotency: Idempotency


#: The stub class of each service.
STUBS: dict[str, type] = {
    "sessions": pb_grpc.SessionsStub,
    "locks": pb_grpc.LocksStub,
    "lists": pb_grpc.DistinctListsStub,
    "cluster": pb_grpc.ClusterStub,
    "groups": pb_grpc.GroupsStub,
    "elections": pb_grpc.ElectionsStub,
    "watches": pb_grpc.WatchesStub,
    "semaphores": pb_grpc.SemaphoresStub,
}
_READ, _NUMBERED, _UNNUMBERED = Idempotency.READ, Idempotency.NUMBERED, Idempotency.UNNUMBERED
#: The request type chooses the stub method: every RPC of turnstile.proto, by request type.
ROUTES: dict[type[Message], Route] = {
    pb.OpenSessionRequest: Route("sessions", "Open", _UNNUMBERED),
    pb.KeepAliveRequest: Route("sessions", "KeepAlive", _UNNUMBERED),
    pb.CloseSessionRequest: Route("sessions", "Close", _UNNUMBERED),
    pb.ListSessionsRequest: Route("sessions", "List", _READ),
    pb.AcquireRequest: Route("locks", "Acquire", _NUMBERED),
    pb.AcquireManyRequest: Route("locks", "AcquireMany", _NUMBERED),
    pb.ReleaseRequest: Route("locks", "Release", _NUMBERED),
    pb.AbandonRequest: Route("locks", "Abandon", _NUMBERED),
    pb.ExtendRequest: Route("locks", "Extend", _NUMBERED),
    pb.ValidateRequest: Route("locks", "Validate", _READ),
    pb.DescribeLockRequest: Route("locks", "Describe", _READ),
    pb.ListLocksRequest: Route("locks", "List", _READ),
    pb.SetUpListRequest: Route("lists", "SetUp", _NUMBERED),
    pb.InsertRequest: Route("lists", "Insert", _NUMBERED),
    pb.ContainsRequest: Route("lists", "Contains", _READ),
    pb.MembersRequest: Route("lists", "Members", _READ),
    pb.LookupRequest: Route("lists", "Lookup", _READ),
    pb.SizeRequest: Route("lists", "Size", _READ),
    pb.TearDownListRequest: Route("lists", "TearDown", _NUMBERED),
    pb.ListListsRequest: Route("lists", "List", _READ),
    pb.StatusRequest: Route("cluster", "Status", _READ),
    pb.MembersListRequest: Route("cluster", "Members", _READ),
    pb.AddMemberRequest: Route("cluster", "AddMember", _UNNUMBERED),
    pb.RemoveMemberRequest: Route("cluster", "RemoveMember", _UNNUMBERED),
    pb.ForceReleaseRequest: Route("cluster", "ForceRelease", _UNNUMBERED),
    pb.TransferLeadershipRequest: Route("cluster", "TransferLeadership", _UNNUMBERED),
    pb.SaveSnapshotRequest: Route("cluster", "SaveSnapshot", _READ),
    pb.CreateGroupRequest: Route("groups", "Create", _NUMBERED),
    pb.DeleteGroupRequest: Route("groups", "Delete", _NUMBERED),
    pb.JoinGroupRequest: Route("groups", "Join", _NUMBERED),
    pb.LeaveGroupRequest: Route("groups", "Leave", _NUMBERED),
    pb.UpdateCapabilitiesRequest: Route("groups", "UpdateCapabilities", _NUMBERED),
    pb.DescribeGroupRequest: Route("groups", "Describe", _READ),
    pb.ListGroupsRequest: Route("groups", "List", _READ),
    pb.CampaignRequest: Route("elections", "Campaign", _NUMBERED),
    pb.ResignRequest: Route("elections", "Resign", _NUMBERED),
    pb.DescribeElectionRequest: Route("elections", "Describe", _READ),
    pb.ListElectionsRequest: Route("elections", "List", _READ),
    pb.WatchRequest: Route("watches", "Watch", _READ),
    pb.AcquirePermitRequest: Route("semaphores", "Acquire", _NUMBERED),
    pb.ReleasePermitRequest: Route("semaphores", "Release", _NUMBERED),
    pb.AbandonPermitRequest: Route("semaphores", "Abandon", _NUMBERED),
    pb.ExtendPermitRequest: Route("semaphores", "Extend", _NUMBERED),
    pb.DescribeSemaphoreRequest: Route("semaphores", "Describe", _READ),
    pb.ListSemaphoresRequest: Route("semaphores", "List", _READ),
}
#: The requests that carry a request id (``Idempotency.NUMBERED``): what ``write`` sends.
NumberedRequest = (
    pb.AcquireRequest
    | pb.AcquireManyRequest
    | pb.AcquirePermitRequest
    | pb.ReleasePermitRequest
    | pb.AbandonPermitRequest
    | pb.ExtendPermitRequest
    | pb.ReleaseRequest
    | pb.AbandonRequest
    | pb.ExtendRequest
    | pb.SetUpListRequest
    | pb.InsertRequest
    | pb.TearDownListRequest
    | pb.CreateGroupRequest
    | pb.DeleteGroupRequest
    | pb.JoinGroupRequest
    | pb.LeaveGroupRequest
    | pb.UpdateCapabilitiesRequest
    | pb.CampaignRequest
    | pb.ResignRequest
)


def route_of(request: Message) -> Route:
    """The route of ``request``; TypeError for a message that is no request of the API."""
    route = ROUTES.get(type(request))
    if route is None:
        raise TypeError(f"{type(request).__name__} is not a Turnstile request")
    return route


#: The services whose holds the client keeps (``Hold.service``).
LOCKS, SEMAPHORES = "locks", "semaphores"


class HoldRequests(NamedTuple):
    """The request types that give back, abandon and extend a hold of one service."""

    release: type[pb.ReleaseRequest] | type[pb.ReleasePermitRequest]
    abandon: type[pb.AbandonRequest] | type[pb.AbandonPermitRequest]
    extend: type[pb.ExtendRequest] | type[pb.ExtendPermitRequest]


#: By ``Hold.service``: a lock's (one of a ``lock_many`` too) and a semaphore permit's.
HOLD_REQUESTS: dict[str, HoldRequests] = {
    LOCKS: HoldRequests(pb.ReleaseRequest, pb.AbandonRequest, pb.ExtendRequest),
    SEMAPHORES: HoldRequests(
        pb.ReleasePermitRequest, pb.AbandonPermitRequest, pb.ExtendPermitRequest
    ),
}
