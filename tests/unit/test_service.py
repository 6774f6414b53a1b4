"""The gRPC servicers (cluster/service.py) on a node over the in-memory Raft: proto in, node
call, proto out, and every refusal as a status with its reason."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from inmem_raft import leading_node, run, until

from turnstile.cluster import service
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.metadata import LEADER_METADATA_KEY

pytestmark = pytest.mark.unit


class AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, metadata: dict[str, Any]) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.metadata = metadata


class Context:
    """What a servicer uses of grpc.aio.ServicerContext."""

    def __init__(self) -> None:
        self.trailing: dict[str, Any] = {}

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        self.trailing = dict(metadata)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedError(code, details, self.trailing)


def rid(session: int, seq: int) -> pb.RequestId:
    return pb.RequestId(session_id=session, seq=seq)


def test_a_lock_round_trip_maps_to_proto(tmp_path: Path) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        sessions, locks = service.SessionsService(node), service.LocksService(node)
        opened = await sessions.Open(pb.OpenSessionRequest(ttl_ms=30_000), Context())
        a = opened.session_id
        granted = await locks.Acquire(
            pb.AcquireRequest(request=rid(a, 1), name="L", max_hold_ms=10_000), Context()
        )
        assert granted.acquired and granted.token == 1
        assert 0 < granted.expires_in_ms <= 10_000
        assert granted.header.leader_id == "n1" and granted.header.term == 1
        refused = await locks.Acquire(pb.AcquireRequest(request=rid(a, 2), name="L"), Context())
        assert not refused.acquired  # not re-entrant, and no wait asked for
        kept = await sessions.KeepAlive(pb.KeepAliveRequest(session_id=a), Context())
        assert kept.ttl_ms == 30_000
        await locks.Release(pb.ReleaseRequest(request=rid(a, 3), name="L", token=1), Context())
        described = await locks.Describe(pb.DescribeLockRequest(name="L"), Context())
        assert not described.lock.HasField("holder")
        await node.stop()

    run(body)


def test_a_follower_refuses_with_not_leader_and_the_leader_hint(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        raft.depose()
        await until(lambda: not node.leading)
        locks = service.LocksService(node)
        with pytest.raises(AbortedError) as aborted:
            await locks.Acquire(pb.AcquireRequest(request=rid(1, 1), name="L"), Context())
        assert aborted.value.code is grpc.StatusCode.UNAVAILABLE
        assert "NOT_LEADER" in aborted.value.details
        assert LEADER_METADATA_KEY in aborted.value.metadata
        await node.stop()

    run(body)


def test_bad_input_is_invalid_argument_naming_the_field(tmp_path: Path) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        locks = service.LocksService(node)
        with pytest.raises(AbortedError) as aborted:
            await locks.Acquire(pb.AcquireRequest(request=rid(1, 1), name=""), Context())
        assert aborted.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert "name" in aborted.value.details
        await node.stop()

    run(body)


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (pb.ClusterMember(node_id="n 2", peer_address="h:1", client_address="h:2"), "node id"),
        (pb.ClusterMember(node_id="n2", peer_address="h", client_address="h:2"), "host:port"),
        (
            pb.ClusterMember(node_id="n1", peer_address="h:1", client_address="h:2"),
            "'n1' is already used",
        ),
        (pb.ClusterMember(node_id="n2", peer_address="h:1", client_address="h:1"), "differ"),
        (
            pb.ClusterMember(node_id="n2", peer_address="127.0.0.1:7101", client_address="h:2"),
            "127.0.0.1:7101 is already used by n1 peer_address",
        ),
    ],
)
def test_add_member_refuses_what_the_config_loader_refuses(
    tmp_path: Path, member: pb.ClusterMember, problem: str
) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        cluster = service.ClusterService(node)
        with pytest.raises(AbortedError) as aborted:
            await cluster.AddMember(pb.AddMemberRequest(member=member), Context())
        assert aborted.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert problem in aborted.value.details
        assert raft.membership_requests == []
        await node.stop()

    run(body)


def test_a_member_raft_refuses_is_not_left_in_the_registry(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        cluster = service.ClusterService(node)
        raft.answer_code = 3  # pysyncobj's REQUEST_DENIED: another change is in flight
        member = pb.ClusterMember(node_id="n2", peer_address="h:1", client_address="h:2")
        with pytest.raises(AbortedError) as aborted:
            await cluster.AddMember(pb.AddMemberRequest(member=member), Context())
        assert aborted.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert set(raft.state.cluster_members) == {"n1"}
        raft.answer_code = 0
        await cluster.AddMember(pb.AddMemberRequest(member=member), Context())
        listed = await cluster.Members(pb.MembersListRequest(), Context())
        assert [m.node_id for m in listed.members] == ["n1", "n2"]
        await node.stop()

    run(body)


def test_status_reports_the_version_of_this_build(tmp_path: Path) -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    version = project["project"]["version"]

    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        status = await service.ClusterService(node).Status(pb.StatusRequest(), Context())
        assert status.version == version, "reinstall: the package metadata is stale"
        assert status.role == pb.ROLE_LEADER and status.healthy
        await node.stop()

    run(body)


def test_a_cancelled_acquire_rpc_withdraws_its_wait(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        sessions, locks = service.SessionsService(node), service.LocksService(node)
        a = (await sessions.Open(pb.OpenSessionRequest(ttl_ms=30_000), Context())).session_id
        b = (await sessions.Open(pb.OpenSessionRequest(ttl_ms=30_000), Context())).session_id
        await locks.Acquire(pb.AcquireRequest(request=rid(a, 1), name="L"), Context())
        call = asyncio.create_task(
            locks.Acquire(pb.AcquireRequest(request=rid(b, 1), name="L", wait_ms=60_000), Context())
        )
        await until(lambda: len(raft.state.locks["L"].waiters) == 1)
        call.cancel()
        await until(lambda: raft.state.locks["L"].waiters == [])
        await node.stop()

    run(body)
