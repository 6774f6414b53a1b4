"""gRPC servicers: proto <-> node calls and back. No rules live here: the node and its
protocol modules (``acquire``, ``keepalive``, ``membership``) hold them.

Every method runs behind ``rpc``: a ``TurnstileError`` becomes a status through the one
reason table (``turnstile.cluster.errors``); ``NOT_LEADER`` carries the leader's client address
in the trailing metadata key ``turnstile-leader``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.metadata
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc

from turnstile.cluster import admission, snapshot, views
from turnstile.cluster import commands as cmd
from turnstile.cluster.errors import TurnstileError, to_status
from turnstile.cluster.hold_messages import lock_info
from turnstile.cluster.limits import Limits
from turnstile.cluster.node import Node, RequestFields
from turnstile.cluster.peers import Peer
from turnstile.cluster.semaphore_commands import GrantedMany
from turnstile.cluster.session_stream import SessionStreams, StreamMethod
from turnstile.cluster.state import StateMachine
from turnstile.cluster.views import ListView, SessionView
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc
from turnstile.v1.metadata import LEADER_METADATA_KEY
from turnstile.v1.reasons import Reason

log = logging.getLogger(__name__)

#: This build's version, as installed (pyproject.toml).
VERSION = importlib.metadata.version("turnstile")
#: Largest piece of a streamed snapshot (well under gRPC's default 4 MiB message limit).
SNAPSHOT_CHUNK_BYTES = 1024 * 1024

Request = TypeVar("Request")
Response = TypeVar("Response")
Context = grpc.aio.ServicerContext[Any, Any]


def rpc(
    method: Callable[[Any, Request, Context], Awaitable[Response]],
) -> Callable[[Any, Request, Context], Awaitable[Response]]:
    @functools.wraps(method)
    async def handle(self: Servicer, request: Request, context: Context) -> Any:
        try:
            return await method(self, request, context)
        except TurnstileError as error:
            if error.reason is not Reason.NOT_LEADER:
                log.info("refused %s: %s", method.__name__, error)
            metadata = {}
            if error.reason is Reason.NOT_LEADER:
                metadata[LEADER_METADATA_KEY] = self.node.membership.leader_ids()[1]
            status = to_status(error.reason, error.detail, metadata)
            context.set_trailing_metadata(status.trailing_metadata)
            await context.abort(status.code, status.details)

    return handle


class Servicer:
    def __init__(self, node: Node) -> None:
        self.node = node

    def header(self) -> pb.ResponseHeader:
        leader_id, leader_address = self.node.membership.leader_ids()
        return pb.ResponseHeader(
            node_id=self.node.config.node_id,
            term=self.node.raft.term,
            leader_id=leader_id,
            leader_address=leader_address,
            applied_index=self.node.raft.applied_index,
        )

    def remaining_ms(self, at: int) -> int:
        """A log-time instant as time left from now; 0 stays 0 ("none")."""
        return max(1, at - self.node.clock_ms()) if at else 0

    def limits(self) -> Limits:
        """The replicated bounds as this node has applied them, for the admission checks."""
        return self.node.raft.read(lambda s: s.limits)


def request_fields(rid: pb.RequestId) -> RequestFields:
    """The exactly-once fields every session command carries, from the request's id."""
    return {
        "session": rid.session_id,
        "seq": rid.seq,
        "acked": rid.acked,
        "answered": tuple(rid.answered),
    }


def linearizable(consistency: int) -> bool:
    return consistency != pb.CONSISTENCY_STALE


# ---------------------------------------------------------------------------- sessions


class SessionsService(Servicer, pb_grpc.SessionsServicer):
    def __init__(self, node: Node, more_calls: Mapping[str, StreamMethod] | None = None) -> None:
        """``more_calls``: stream calls served by other modules' servicers, by field name."""
        super().__init__(node)
        self.streams = SessionStreams(
            {**_stream_methods(self), **(more_calls or {})},
            lambda: node.membership.leader_ids()[1],
            node.renewed_by_write,
            requests=node.metrics.rpc_requests,
            seconds=node.metrics.rpc_seconds,
            open_streams=node.metrics.session_streams,
        )

    @rpc
    async def Open(self, request: pb.OpenSessionRequest, context: Any) -> pb.OpenSessionResponse:
        admission.check_open(self.limits(), request)
        result = await self.node.execute(
            lambda now: cmd.OpenSession(
                now,
                request.ttl_ms,
                request.client_name,
                request.client_host,
                request.client_pid,
            )
        )
        assert isinstance(result, cmd.SessionOpened)
        return pb.OpenSessionResponse(
            header=self.header(), session_id=result.session, ttl_ms=result.ttl_ms
        )

    @rpc
    async def KeepAlive(self, request: pb.KeepAliveRequest, context: Any) -> pb.KeepAliveResponse:
        ttl_ms = await self.node.keep_alives.renew(request.session_id)
        return pb.KeepAliveResponse(header=self.header(), ttl_ms=ttl_ms)

    async def keep_alive_many(
        self, requests: list[pb.KeepAliveRequest]
    ) -> list[pb.KeepAliveResponse | TurnstileError]:
        """The keep-alives of one stream message, under one barrier round."""
        renewed = await self.node.keep_alives.renew_many([r.session_id for r in requests])
        header = self.header()
        return [
            ttl
            if isinstance(ttl, TurnstileError)
            else pb.KeepAliveResponse(header=header, ttl_ms=ttl)
            for ttl in renewed
        ]

    @rpc
    async def Close(self, request: pb.CloseSessionRequest, context: Any) -> pb.CloseSessionResponse:
        await self.node.execute(lambda now: cmd.CloseSession(now, request.session_id))
        return pb.CloseSessionResponse(header=self.header())

    @rpc
    async def List(self, request: pb.ListSessionsRequest, context: Any) -> pb.ListSessionsResponse:
        found = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: views.list_sessions(s, request.after_session_id, request.limit, now),
        )
        return pb.ListSessionsResponse(
            header=self.header(), sessions=[_session_info(v) for v in found]
        )

    async def Stream(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: Any
    ) -> AsyncIterator[pb.StreamResponse]:
        async for response in self.streams.serve(request_iterator):
            yield response


def _stream_methods(sessions: SessionsService) -> dict[str, StreamMethod]:
    """How each call of a session stream is served: by its unary RPC's method, by the
    ``StreamCall.request`` field name."""
    locks, lists = LocksService(sessions.node), DistinctListsService(sessions.node)
    return {
        "open": served_by(sessions, SessionsService.Open),
        "keep_alive": dataclasses.replace(
            served_by(sessions, SessionsService.KeepAlive), serve_many=sessions.keep_alive_many
        ),
        "close": served_by(sessions, SessionsService.Close),
        "acquire": served_by(locks, LocksService.Acquire),
        "acquire_many": served_by(locks, LocksService.AcquireMany),
        "release": served_by(locks, LocksService.Release),
        "abandon": served_by(locks, LocksService.Abandon),
        "extend": served_by(locks, LocksService.Extend),
        "validate": served_by(locks, LocksService.Validate),
        "set_up": served_by(lists, DistinctListsService.SetUp),
        "insert": served_by(lists, DistinctListsService.Insert),
        "contains": served_by(lists, DistinctListsService.Contains),
        "members": served_by(lists, DistinctListsService.Members),
        "size": served_by(lists, DistinctListsService.Size),
        "tear_down": served_by(lists, DistinctListsService.TearDown),
    }


def served_by(servicer: Servicer, method: Callable[..., Awaitable[Any]]) -> StreamMethod:
    """A servicer method as a stream serves it: its body without ``rpc``'s status mapping
    (the stream answers a refusal itself), labelled as the unary RPC's metrics are."""
    body = inspect.unwrap(method)
    service = type(servicer).__name__.removesuffix("Service")

    def serve(request: Any) -> Awaitable[Any]:
        result: Awaitable[Any] = body(servicer, request, None)
        return result

    return StreamMethod(f"{service}.{method.__name__}", serve)


def _session_info(view: SessionView) -> pb.SessionInfo:
    return pb.SessionInfo(
        session_id=view.session,
        ttl_ms=view.ttl_ms,
        client_name=view.client_name,
        client_host=view.client_host,
        client_pid=view.client_pid,
        age_ms=view.age_ms,
        held=view.held,
        waiting=view.waiting,
        permits=view.permits,
        permit_waits=view.permit_waits,
    )


# ---------------------------------------------------------------------------- locks


class LocksService(Servicer, pb_grpc.LocksServicer):
    @rpc
    async def Acquire(self, request: pb.AcquireRequest, context: Any) -> pb.AcquireResponse:
        admission.check_acquire(self.limits(), request)
        result = await self.node.acquires.acquire(
            request.name,
            request.max_hold_ms,
            request.wait_ms,
            request_fields(request.request),
            request.description,
        )
        if isinstance(result, cmd.Granted):
            return pb.AcquireResponse(
                header=self.header(),
                acquired=True,
                token=result.token,
                expires_in_ms=self.remaining_ms(result.expires_at),
            )
        return pb.AcquireResponse(header=self.header(), acquired=False)

    @rpc
    async def AcquireMany(
        self, request: pb.AcquireManyRequest, context: Any
    ) -> pb.AcquireManyResponse:
        admission.check_acquire_many(self.limits(), request)
        names = tuple(request.names)
        result = await self.node.acquires.acquire_many(
            names,
            request.max_hold_ms,
            request.wait_ms,
            request_fields(request.request),
            request.description,
        )
        if isinstance(result, cmd.NotAcquired):
            return pb.AcquireManyResponse(header=self.header(), acquired=False)
        tokens = result.tokens if isinstance(result, GrantedMany) else (result.token,)
        return pb.AcquireManyResponse(
            header=self.header(),
            acquired=True,
            grants=[pb.LockGrant(name=n, token=t) for n, t in zip(names, tokens, strict=True)],
            expires_in_ms=self.remaining_ms(result.expires_at),
        )

    @rpc
    async def Abandon(self, request: pb.AbandonRequest, context: Any) -> pb.AbandonResponse:
        admission.check_abandon(self.limits(), request)
        result = await self.node.acquires.abandon(
            request.name, request.acquire_seq, request_fields(request.request)
        )
        return pb.AbandonResponse(
            header=self.header(), removed=result.removed, released=result.released
        )

    @rpc
    async def Release(self, request: pb.ReleaseRequest, context: Any) -> pb.ReleaseResponse:
        admission.check_release(self.limits(), request)
        rid = request.request
        await self.node.execute(
            lambda now: cmd.Release(
                now, name=request.name, token=request.token, **request_fields(rid)
            )
        )
        return pb.ReleaseResponse(header=self.header())

    @rpc
    async def Extend(self, request: pb.ExtendRequest, context: Any) -> pb.ExtendResponse:
        admission.check_extend(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: cmd.Extend(
                now,
                name=request.name,
                token=request.token,
                max_hold_ms=request.max_hold_ms,
                **request_fields(rid),
            )
        )
        assert isinstance(result, cmd.Extended)
        return pb.ExtendResponse(
            header=self.header(), expires_in_ms=self.remaining_ms(result.expires_at)
        )

    @rpc
    async def Validate(self, request: pb.ValidateRequest, context: Any) -> pb.ValidateResponse:
        admission.check_validate(self.limits(), request)
        valid, current = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: views.validate_token(s, request.name, request.token),
        )
        return pb.ValidateResponse(header=self.header(), valid=valid, current_token=current)

    @rpc
    async def Describe(
        self, request: pb.DescribeLockRequest, context: Any
    ) -> pb.DescribeLockResponse:
        admission.check_describe(self.limits(), request)
        view = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: views.describe_lock(s, request.name, now),
        )
        return pb.DescribeLockResponse(header=self.header(), lock=lock_info(view))

    @rpc
    async def List(self, request: pb.ListLocksRequest, context: Any) -> pb.ListLocksResponse:
        found = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: views.list_locks(
                s, request.prefix, request.after_name, request.limit, now
            ),
        )
        return pb.ListLocksResponse(header=self.header(), locks=[lock_info(v) for v in found])


# ---------------------------------------------------------------------------- distinct lists


class DistinctListsService(Servicer, pb_grpc.DistinctListsServicer):
    @rpc
    async def SetUp(self, request: pb.SetUpListRequest, context: Any) -> pb.SetUpListResponse:
        admission.check_set_up(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: cmd.SetUpList(
                now, name=request.name, ttl_ms=request.ttl_ms, **request_fields(rid)
            )
        )
        assert isinstance(result, cmd.ListSetUp)
        return pb.SetUpListResponse(
            header=self.header(),
            created=result.created,
            expires_in_ms=self.remaining_ms(result.expires_at),
        )

    @rpc
    async def Insert(self, request: pb.InsertRequest, context: Any) -> pb.InsertResponse:
        admission.check_insert(self.limits(), request)
        rid = request.request
        members = tuple(request.members)
        result = await self.node.execute(
            lambda now: cmd.Insert(now, name=request.name, members=members, **request_fields(rid))
        )
        assert isinstance(result, cmd.Inserted)
        return pb.InsertResponse(
            header=self.header(),
            results=[pb.InsertResult(added=added, id=id_) for added, id_ in result.results],
        )

    @rpc
    async def Contains(self, request: pb.ContainsRequest, context: Any) -> pb.ContainsResponse:
        admission.check_contains(self.limits(), request)
        members = tuple(request.members)
        ids = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: views.contains(s, request.name, members),
        )
        return pb.ContainsResponse(header=self.header(), ids=ids)

    @rpc
    async def Lookup(self, request: pb.LookupRequest, context: Any) -> pb.LookupResponse:
        ids = tuple(request.ids)
        found = await self.node.read(
            linearizable(request.consistency), lambda s, now: views.lookup(s, request.name, ids)
        )
        return pb.LookupResponse(header=self.header(), members=found)

    @rpc
    async def Members(self, request: pb.MembersRequest, context: Any) -> pb.MembersResponse:
        admission.check_list_read(self.limits(), request)

        def page(state: StateMachine, now: int) -> tuple[list[tuple[int, bytes]], int] | cmd.Err:
            members = views.members(state, request.name, request.after_id, request.limit)
            if isinstance(members, cmd.Err):
                return members
            view = views.list_view(state, request.name, now)
            return members, view.size if isinstance(view, ListView) else 0

        members, size = await self.node.read(linearizable(request.consistency), page)
        return pb.MembersResponse(
            header=self.header(),
            members=[pb.ListMember(id=i, member=m) for i, m in members],
            size=size,
        )

    @rpc
    async def Size(self, request: pb.SizeRequest, context: Any) -> pb.SizeResponse:
        admission.check_list_read(self.limits(), request)
        view = await self.node.read(
            linearizable(request.consistency), lambda s, now: views.list_view(s, request.name, now)
        )
        return pb.SizeResponse(header=self.header(), list=_list_info(view))

    @rpc
    async def TearDown(
        self, request: pb.TearDownListRequest, context: Any
    ) -> pb.TearDownListResponse:
        admission.check_tear_down(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: cmd.TearDownList(now, name=request.name, **request_fields(rid))
        )
        assert isinstance(result, cmd.TornDown)
        return pb.TearDownListResponse(header=self.header(), removed=result.removed)

    @rpc
    async def List(self, request: pb.ListListsRequest, context: Any) -> pb.ListListsResponse:
        found = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: views.list_lists(
                s, request.prefix, request.after_name, request.limit, now
            ),
        )
        return pb.ListListsResponse(header=self.header(), lists=[_list_info(v) for v in found])


def _list_info(view: ListView) -> pb.ListInfo:
    return pb.ListInfo(
        name=view.name, size=view.size, ttl_ms=view.ttl_ms, expires_in_ms=view.expires_in_ms
    )


# ---------------------------------------------------------------------------- cluster

_ROLES = {"follower": pb.ROLE_FOLLOWER, "candidate": pb.ROLE_CANDIDATE, "leader": pb.ROLE_LEADER}


class ClusterService(Servicer, pb_grpc.ClusterServicer):
    """Status, members, membership changes, force-release, leadership transfer, snapshots."""

    @rpc
    async def Status(self, request: pb.StatusRequest, context: Any) -> pb.StatusResponse:
        node = self.node
        counts = node.raft.read(views.counts)
        by_address = {p.peer_address: p.node_id for p in node.membership.members()}
        return pb.StatusResponse(
            header=self.header(),
            node_id=node.config.node_id,
            client_address=node.config.client_address,
            peer_address=node.config.peer_address,
            role=_ROLES.get(node.raft.role, pb.ROLE_UNKNOWN),
            commit_index=node.raft.commit_index,
            last_contact_ms=int(node.raft.last_contact_s() * 1000),
            healthy=node.healthy,
            version=VERSION,
            counts=pb.StateCounts(
                sessions=counts.sessions,
                locks_held=counts.locks_held,
                waiters=counts.waiters,
                lists=counts.lists,
                members=counts.members,
                groups=counts.groups,
                group_members=counts.group_members,
                elections=counts.elections,
                semaphores=counts.semaphores,
                permits_held=counts.permits_held,
            ),
            follower_lag={
                by_address.get(address, address): lag
                for address, lag in node.raft.follower_lag().items()
            },
            cluster_version=node.raft.read(lambda s: s.cluster_version),
        )

    @rpc
    async def Members(self, request: pb.MembersListRequest, context: Any) -> pb.MembersListResponse:
        return pb.MembersListResponse(
            header=self.header(),
            members=[
                pb.ClusterMember(
                    node_id=p.node_id, peer_address=p.peer_address, client_address=p.client_address
                )
                for p in self.node.membership.members()
            ],
        )

    @rpc
    async def AddMember(self, request: pb.AddMemberRequest, context: Any) -> pb.AddMemberResponse:
        member = request.member
        await self.node.membership.add(
            Peer(member.node_id, member.peer_address, member.client_address)
        )
        return pb.AddMemberResponse(header=self.header())

    @rpc
    async def RemoveMember(
        self, request: pb.RemoveMemberRequest, context: Any
    ) -> pb.RemoveMemberResponse:
        await self.node.membership.remove(request.node_id)
        return pb.RemoveMemberResponse(header=self.header())

    @rpc
    async def ForceRelease(
        self, request: pb.ForceReleaseRequest, context: Any
    ) -> pb.ForceReleaseResponse:
        admission.check_force_release(self.limits(), request)
        result = await self.node.execute(
            lambda now: cmd.ForceRelease(now, request.name, request.reason, request.token)
        )
        assert isinstance(result, cmd.ForceReleased)
        log.warning(
            "lock %r force-released from session %d (token %d): %s",
            request.name,
            result.session,
            result.token,
            request.reason,
        )
        return pb.ForceReleaseResponse(
            header=self.header(), session_id=result.session, token=result.token
        )

    @rpc
    async def TransferLeadership(
        self, request: pb.TransferLeadershipRequest, context: Any
    ) -> pb.TransferLeadershipResponse:
        await self.node.membership.transfer_leadership(request.node_id)
        return pb.TransferLeadershipResponse(header=self.header())

    @rpc
    async def SaveSnapshot(self, request: pb.SaveSnapshotRequest, context: Any) -> None:
        # The barrier makes this a linearizable point: every write acknowledged before the
        # call is applied here. Dumping happens off the event loop (a big state takes time).
        await self.node.read(True, lambda _state, _now: None)
        data = await asyncio.to_thread(self.node.raft.read, snapshot.dump)
        header = self.header()
        log.info("snapshot of %d bytes at index %d sent", len(data), header.applied_index)
        for offset in range(0, len(data), SNAPSHOT_CHUNK_BYTES):
            await context.write(
                pb.SaveSnapshotResponse(
                    header=header,
                    data=data[offset : offset + SNAPSHOT_CHUNK_BYTES],
                    offset=offset,
                    total_bytes=len(data),
                )
            )
