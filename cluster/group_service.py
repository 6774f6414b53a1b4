"""gRPC servicers of groups, elections and watches: proto <-> node calls and back.

As in ``turnstile.cluster.service``, no rule lives here: the state machine's
``group_rules`` decide, and ``watches`` records what changed. Two calls wait on the leader's
watch history rather than on a waiter of the state machine: a Campaign with ``wait_ms`` (until
this session is elected) and a Watch (until a change to one of its keys), so a candidate stays
queued whatever happens to the call, and nothing polls.
"""

from __future__ import annotations

import asyncio
from typing import Any

from turnstile.cluster import admission, group_rules, group_views
from turnstile.cluster import commands as cmd
from turnstile.cluster import group_commands as group
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.group_views import CandidateView, ElectionView, GroupView
from turnstile.cluster.node import Node
from turnstile.cluster.service import Servicer, linearizable, request_fields, rpc
from turnstile.cluster.watches import FREED, GRANTED, Answer, Change, Kind
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc
from turnstile.v1.reasons import Reason

#: The wire's change types, by the events' change strings (per kind: "created" of a group and
#: of a list are both CHANGE_CREATED; a list's "torn_down" is CHANGE_DELETED).
_CHANGE_TYPES = {
    group.GROUP_CREATED: pb.CHANGE_CREATED,
    group.GROUP_DELETED: pb.CHANGE_DELETED,
    cmd.LIST_TORN_DOWN: pb.CHANGE_DELETED,
    group.MEMBER_JOINED: pb.CHANGE_JOINED,
    group.MEMBER_LEFT: pb.CHANGE_LEFT,
    group.MEMBER_UPDATED: pb.CHANGE_UPDATED,
    group.LEADER_ELECTED: pb.CHANGE_ELECTED,
    group.LEADER_RESIGNED: pb.CHANGE_RESIGNED,
    GRANTED: pb.CHANGE_GRANTED,
    FREED: pb.CHANGE_FREED,
    cmd.LIST_INSERTED: pb.CHANGE_INSERTED,
}

_WATCH_KINDS = {
    Kind.GROUP: pb.WATCH_GROUP,
    Kind.ELECTION: pb.WATCH_ELECTION,
    Kind.LOCK: pb.WATCH_LOCK,
    Kind.LIST: pb.WATCH_LIST,
}


def _require_groups(node: Node, what: str) -> None:
    """Reads of groups, elections and watches are refused below cluster version 5 as their
    writes are (the node refuses those before proposing), rather than answering "none"."""
    version = node.raft.read(lambda s: s.cluster_version)
    if version < group.GROUPS_SINCE:
        raise TurnstileError(
            Reason.FAILED_PRECONDITION,
            f"{what} need cluster version {group.GROUPS_SINCE}, the cluster is at {version}: "
            "a member runs an older Turnstile; upgrade every member",
        )


class GroupsService(Servicer, pb_grpc.GroupsServicer):
    @rpc
    async def Create(self, request: pb.CreateGroupRequest, context: Any) -> pb.CreateGroupResponse:
        admission.check_group_call(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: group.CreateGroup(now, name=request.name, **request_fields(rid))
        )
        assert isinstance(result, group.GroupCreated)
        return pb.CreateGroupResponse(header=self.header(), created=result.created)

    @rpc
    async def Delete(self, request: pb.DeleteGroupRequest, context: Any) -> pb.DeleteGroupResponse:
        admission.check_group_call(self.limits(), request)
        rid = request.request
        await self.node.execute(
            lambda now: group.DeleteGroup(now, name=request.name, **request_fields(rid))
        )
        return pb.DeleteGroupResponse(header=self.header())

    @rpc
    async def Join(self, request: pb.JoinGroupRequest, context: Any) -> pb.JoinGroupResponse:
        admission.check_member_call(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: group.JoinGroup(
                now,
                name=request.name,
                member_id=request.member_id,
                capabilities=request.capabilities,
                **request_fields(rid),
            )
        )
        assert isinstance(result, group.GroupJoined)
        return pb.JoinGroupResponse(header=self.header(), joined=result.joined)

    @rpc
    async def Leave(self, request: pb.LeaveGroupRequest, context: Any) -> pb.LeaveGroupResponse:
        admission.check_member_call(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: group.LeaveGroup(
                now, name=request.name, member_id=request.member_id, **request_fields(rid)
            )
        )
        assert isinstance(result, group.GroupLeft)
        return pb.LeaveGroupResponse(header=self.header(), left=result.left)

    @rpc
    async def UpdateCapabilities(
        self, request: pb.UpdateCapabilitiesRequest, context: Any
    ) -> pb.UpdateCapabilitiesResponse:
        admission.check_member_call(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: group.UpdateCapabilities(
                now,
                name=request.name,
                member_id=request.member_id,
                capabilities=request.capabilities,
                **request_fields(rid),
            )
        )
        assert isinstance(result, group.CapabilitiesUpdated)
        return pb.UpdateCapabilitiesResponse(header=self.header(), updated=result.updated)

    @rpc
    async def Describe(
        self, request: pb.DescribeGroupRequest, context: Any
    ) -> pb.DescribeGroupResponse:
        _require_groups(self.node, "groups")
        view, revision = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: group_views.describe_group(s, request.name, now),
        )
        return pb.DescribeGroupResponse(
            header=self.header(), group=_group_info(view), revision=revision
        )

    @rpc
    async def List(self, request: pb.ListGroupsRequest, context: Any) -> pb.ListGroupsResponse:
        _require_groups(self.node, "groups")
        found, revision = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: group_views.list_groups(
                s, request.prefix, request.after_name, request.limit, now
            ),
        )
        return pb.ListGroupsResponse(
            header=self.header(), groups=[_group_info(v) for v in found], revision=revision
        )


def _group_info(view: GroupView) -> pb.GroupInfo:
    return pb.GroupInfo(
        name=view.name,
        age_ms=view.age_ms,
        members=[
            pb.GroupMember(
                member_id=m.member_id,
                session_id=m.session,
                capabilities=m.capabilities,
                joined_for_ms=m.joined_for_ms,
                updated_for_ms=m.updated_for_ms,
                client_name=m.client_name,
                client_host=m.client_host,
                client_pid=m.client_pid,
            )
            for m in view.members
        ],
    )


class ElectionsService(Servicer, pb_grpc.ElectionsServicer):
    @rpc
    async def Campaign(self, request: pb.CampaignRequest, context: Any) -> pb.CampaignResponse:
        admission.check_campaign(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: group.Campaign(
                now, name=request.name, member_id=request.member_id, **request_fields(rid)
            )
        )
        assert isinstance(result, group.Standing)
        if not result.elected and request.wait_ms:
            result = await self._wait_elected(request.name, rid.session_id, request.wait_ms)
        return pb.CampaignResponse(
            header=self.header(),
            elected=result.elected,
            token=result.token,
            position=result.position,
        )

    async def _wait_elected(self, name: str, session: int, wait_ms: int) -> group.Standing:
        """Waits on this leader's watch history until ``session`` leads ``name`` (it stays a
        candidate whatever happens to the call)."""
        node = self.node
        deadline = asyncio.get_running_loop().time() + wait_ms / 1000
        while True:
            standing = node.raft.read(
                lambda s: group_rules.standing(s.elections.get(name), session)
            )
            remaining = deadline - asyncio.get_running_loop().time()
            if standing.elected or standing.position == 0 or remaining <= 0:
                return standing
            node.require_leader()
            await node.watches.next_change(remaining)

    @rpc
    async def Resign(self, request: pb.ResignRequest, context: Any) -> pb.ResignResponse:
        admission.check_resign(self.limits(), request)
        rid = request.request
        result = await self.node.execute(
            lambda now: group.Resign(now, name=request.name, **request_fields(rid))
        )
        assert isinstance(result, group.Resigned)
        return pb.ResignResponse(
            header=self.header(),
            was_candidate=result.was_candidate,
            was_leader=result.was_leader,
        )

    @rpc
    async def Describe(
        self, request: pb.DescribeElectionRequest, context: Any
    ) -> pb.DescribeElectionResponse:
        _require_groups(self.node, "elections")
        view, revision = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: group_views.describe_election(s, request.name, now),
        )
        return pb.DescribeElectionResponse(
            header=self.header(), election=_election_info(view), revision=revision
        )

    @rpc
    async def List(
        self, request: pb.ListElectionsRequest, context: Any
    ) -> pb.ListElectionsResponse:
        _require_groups(self.node, "elections")
        found, revision = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: group_views.list_elections(
                s, request.prefix, request.after_name, request.limit, now
            ),
        )
        return pb.ListElectionsResponse(
            header=self.header(), elections=[_election_info(v) for v in found], revision=revision
        )


def _election_info(view: ElectionView) -> pb.ElectionInfo:
    info = pb.ElectionInfo(name=view.name, candidates=[_candidate(c) for c in view.candidates])
    if view.leader is not None:
        info.leader.CopyFrom(_candidate(view.leader))
    return info


def _candidate(view: CandidateView) -> pb.ElectionCandidate:
    return pb.ElectionCandidate(
        member_id=view.member_id,
        session_id=view.session,
        token=view.token,
        for_ms=view.for_ms,
        client_name=view.client_name,
        client_host=view.client_host,
        client_pid=view.client_pid,
    )


class WatchesService(Servicer, pb_grpc.WatchesServicer):
    @rpc
    async def Watch(self, request: pb.WatchRequest, context: Any) -> pb.WatchResponse:
        admission.check_watch(self.limits(), request)
        node = self.node
        _require_groups(node, "watches")
        keys = {(Kind(k.kind), k.name) for k in request.keys}
        # A linearizable point first: every change committed before the call is recorded.
        await node.read(True, lambda _state, _now: None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.wait_ms / 1000
        while True:
            answer = node.watches.read(keys, request.after_revision)
            remaining = deadline - loop.time()
            if answer.changes or answer.compacted or remaining <= 0:
                return _watch_response(self.header(), answer)
            node.require_leader()
            await node.watches.next_change(remaining)


def _watch_response(header: pb.ResponseHeader, answer: Answer) -> pb.WatchResponse:
    return pb.WatchResponse(
        header=header,
        revision=answer.revision,
        changes=[_change(c) for c in answer.changes],
        compacted=answer.compacted,
    )


def _change(change: Change) -> pb.Change:
    return pb.Change(
        revision=change.revision,
        kind=_WATCH_KINDS[change.kind],
        name=change.name,
        type=_CHANGE_TYPES[change.change],
        member_id=change.member_id,
        session_id=change.session,
        token=change.token,
        cause=change.cause,
        capabilities=change.capabilities,
        first_id=change.first_id,
        last_id=change.last_id,
    )
