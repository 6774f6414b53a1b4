"""The v1 API on a real cluster: redirects, locks, lists, health, reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.cluster import Cluster, WireClient, error_reason, trailing, wait_until
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.metadata import LEADER_METADATA_KEY
from turnstile.v1.reasons import Reason

#: One cluster for the module: each test uses names of its own and stops no node.
pytestmark = [pytest.mark.integration, pytest.mark.shared_cluster]


def test_follower_redirects_to_the_leader_with_its_address(cluster: Cluster) -> None:
    leader = cluster.leader()
    follower = cluster.followers(leader)[0]
    with pytest.raises(grpc.RpcError) as refused:
        cluster.stubs(follower).sessions.Open(pb.OpenSessionRequest(ttl_ms=5000), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(refused.value) is Reason.NOT_LEADER
    assert trailing(refused.value)[LEADER_METADATA_KEY] == leader


@pytest.mark.parametrize("start_at", [0, 1, 2])
def test_acquire_release_and_insert_through_any_node(cluster: Cluster, start_at: int) -> None:
    lock, results = f"unit-{start_at}", f"results-{start_at}"  # its own on the shared cluster
    client = WireClient(cluster, cluster.addresses[start_at]).open()
    first = client.acquire(lock, max_hold_ms=30_000)
    assert first.acquired and first.token > 0
    assert 0 < first.expires_in_ms <= 30_000
    other = WireClient(cluster, cluster.addresses[(start_at + 1) % 3]).open()
    assert not other.acquire(lock).acquired
    client.release(lock, first.token)
    second = other.acquire(lock)
    assert second.acquired and second.token > first.token

    client.set_up(results)
    assert client.insert(results, b"a", b"b", b"a") == [(True, 1), (True, 2), (False, 1)]
    assert other.insert(results, b"b", b"c") == [(False, 2), (True, 3)]
    ids = other.call("lists", "Contains", pb.ContainsRequest(name=results, members=[b"c", b"z"]))
    assert list(ids.ids) == [3, 0]


def test_every_response_names_the_answering_node_and_leader(cluster: Cluster) -> None:
    leader = cluster.leader()
    client = WireClient(cluster, leader).open()
    header = client.acquire("h").header
    config = cluster.configs[cluster.index_of(leader)]
    assert header.node_id == config.node_id
    assert header.leader_id == config.node_id
    assert header.leader_address == leader
    assert header.term >= 1 and header.applied_index > 0


def test_stale_reads_are_served_by_followers(cluster: Cluster) -> None:
    leader = cluster.leader()
    client = WireClient(cluster, leader).open()
    token = client.acquire("seen-everywhere").token
    for follower in cluster.followers(leader):
        locks = cluster.stubs(follower).locks

        def replicated(stub: object = locks) -> bool:
            reply = stub.Validate(  # type: ignore[attr-defined]
                pb.ValidateRequest(
                    name="seen-everywhere", token=token, consistency=pb.CONSISTENCY_STALE
                ),
                timeout=2,
            )
            return reply.valid

        wait_until(replicated, timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            locks.Validate(pb.ValidateRequest(name="seen-everywhere", token=token), timeout=2)
        assert error_reason(refused.value) is Reason.NOT_LEADER


def test_health_and_reflection_are_served(cluster: Cluster) -> None:
    address = cluster.addresses[0]
    channel = grpc.insecure_channel(address)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        wait_until(
            lambda: (
                health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
                == health_pb2.HealthCheckResponse.SERVING
            )
        )
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for reply in replies for s in reply.list_services_response.service}
        assert {
            "turnstile.v1.Locks",
            "turnstile.v1.DistinctLists",
            "grpc.health.v1.Health",
        } <= names
    finally:
        channel.close()
