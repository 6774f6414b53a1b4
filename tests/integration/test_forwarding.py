"""Followers serve session streams and forward their calls to the leader (Forward.Stream), on
a real cluster: writes, blocking acquires, keep-alives and linearizable reads through a
follower; a hand-off between the clients of the two followers; the members-only stream
refusing anyone without the peer proof; a follower's client keeping its session through leader
kills."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.integration.cluster import Cluster, error_reason, running, wait_until
from turnstile.client import connect
from turnstile.cluster.codec import encode_command
from turnstile.cluster.commands import Tick
from turnstile.cluster.forwarder import (
    PEER_NODE_METADATA_KEY,
    PEER_PROOF_METADATA_KEY,
    peer_proof,
)
from turnstile.cluster.peer_auth import read_peer_password
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.integration


@pytest.mark.shared_cluster
def test_a_client_of_a_follower_is_served_through_it(cluster: Cluster) -> None:
    leader = cluster.leader()
    follower = cluster.followers(leader)[0]
    before = {kind: cluster.forwarded_calls(follower, kind) for kind in ("command", "read_index")}
    on_follower = connect([follower], session_ttl=2)
    on_leader = connect([leader])
    try:
        tokens = []
        for _ in range(20):
            with on_follower.lock("fwd-pairs", max_hold=10) as held:
                tokens.append(held.token)
        assert tokens == sorted(set(tokens))
        seen_by_leader = on_leader.distinct_list("fwd-seen")
        seen_by_leader.set_up()
        seen_by_follower = on_follower.distinct_list("fwd-seen")
        for i in range(10):
            key = f"key-{i}".encode()
            assert seen_by_leader.insert_many([key])[0][0]
            # Linearizable on the follower: the leader's write is there at once.
            assert seen_by_follower.contains(key)
        session = on_follower.session().id
        sessions = cluster.stubs(leader).sessions.List(pb.ListSessionsRequest(), timeout=5)
        assert session in [s.session_id for s in sessions.sessions]
        # TTL 2 s: only the forwarded keep-alives can keep it through 5 s of idling.
        keep_alives = cluster.forwarded_calls(follower, "keep_alives")
        time.sleep(5)
        assert cluster.forwarded_calls(follower, "keep_alives") > keep_alives
        with on_follower.lock("fwd-pairs", max_hold=10):
            assert on_follower.session().id == session
    finally:
        on_follower.close()
        on_leader.close()
    assert cluster.forwarded_calls(follower, "command") >= before["command"] + 40
    assert cluster.forwarded_calls(follower, "read_index") >= before["read_index"] + 10


@pytest.mark.shared_cluster
def test_a_linearizable_read_through_a_follower_waits_for_nothing_but_its_barrier(
    cluster: Cluster,
) -> None:
    """A follower reads once it applied the leader's read index. It used to learn its own
    applied index from the command it applied, read on another thread before pysyncobj
    counted that entry: the read then slept until some unrelated entry was applied (the
    session's next keep-alive, 10 s with a 30 s TTL). Reads of a client of one follower
    only, one at a time, each answered in well under that."""
    follower = cluster.followers(cluster.leader())[0]
    client = connect([follower], session_ttl=30)
    slowest = 0.0
    try:
        seen = client.distinct_list("fwd-read-index")
        seen.set_up()
        seen.insert("present")
        for _ in range(200):
            started = time.monotonic()
            assert seen.contains("present")
            slowest = max(slowest, time.monotonic() - started)
            if slowest > 2:
                break
    finally:
        client.close()
    print(f"slowest linearizable read through the follower: {slowest * 1000:.1f} ms")
    assert slowest < 2


@pytest.mark.shared_cluster
def test_a_lock_is_handed_from_a_client_of_one_follower_to_one_of_the_other(
    cluster: Cluster,
) -> None:
    first, second = cluster.followers(cluster.leader())
    holder, waiter = connect([first]), connect([second])
    granted: queue.SimpleQueue[tuple[float, int]] = queue.SimpleQueue()

    def wait_for_it() -> None:
        with waiter.lock("fwd-handoff", max_hold=10) as held:
            granted.put((time.monotonic(), held.token))

    try:
        lock = holder.lock("fwd-handoff", max_hold=10)
        lock.acquire()
        first_token = lock.token
        thread = threading.Thread(target=wait_for_it, daemon=True)
        thread.start()
        wait_until(lambda: len(cluster.lock_info("fwd-handoff").waiters) == 1)
        assert granted.empty()
        released_at = time.monotonic()
        lock.release()
        granted_at, token = granted.get(timeout=20)
        thread.join(timeout=20)
    finally:
        holder.close()
        waiter.close()
    assert granted_at > released_at and token > first_token


def test_with_forward_streams_off_a_follower_sends_stream_clients_to_the_leader(
    tmp_path: Path,
) -> None:
    with running(Cluster(tmp_path / "cluster", forward_streams=False)) as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        stub = pb_grpc.SessionsStub(cluster.credentials.channel(follower))
        call = pb.StreamCall(call_id=1, keep_alive=pb.KeepAliveRequest(session_id=1))
        (response,) = stub.Stream(iter([pb.StreamRequest(calls=[call])]), timeout=10)
        refused = response.answers[0].error
        assert refused.reason == "NOT_LEADER" and refused.leader_address == leader
        with connect([follower, leader]) as client, client.lock("fwd-off") as held:
            assert held.token
        assert cluster.forwarded_calls(follower, "command") == 0


@pytest.mark.shared_cluster
def test_the_forward_stream_is_for_members_only(cluster: Cluster) -> None:
    """No proof, or a wrong one: UNAUTHENTICATED before any call is read. A member's proof
    with a leader duty or bytes that are no command: each refused INVALID_ARGUMENT."""
    leader = cluster.leader()
    config = cluster.configs[cluster.index_of(leader)]
    member = next(c.node_id for c in cluster.configs if c.node_id != config.node_id)
    proof = peer_proof(read_peer_password(config.peer_password_file), member)
    stub = pb_grpc.ForwardStub(cluster.credentials.channel(leader))
    tick = pb.ForwardCall(call_id=1, command=encode_command(Tick(10**12)))
    garbage = pb.ForwardCall(call_id=2, command=b"\x93not a command")
    for metadata in ((), ((PEER_NODE_METADATA_KEY, member), (PEER_PROOF_METADATA_KEY, "0" * 64))):
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.Stream(iter([pb.ForwardRequest(calls=[tick])]), metadata=metadata))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_reason(refused.value) is Reason.UNAUTHENTICATED
    answers = [
        answer
        for response in stub.Stream(
            iter([pb.ForwardRequest(calls=[tick, garbage])]),
            metadata=((PEER_NODE_METADATA_KEY, member), (PEER_PROOF_METADATA_KEY, proof)),
            timeout=10,
        )
        for answer in response.answers
    ]
    by_id = {answer.call_id: answer.error for answer in answers}
    assert by_id[1].reason == "INVALID_ARGUMENT" and "leader's to propose" in by_id[1].message
    assert by_id[2].reason == "INVALID_ARGUMENT" and "not a command" in by_id[2].message


@contextlib.contextmanager
def pairs_in_background(client_endpoint: str) -> Iterator[tuple[list[tuple[float, int]], list]]:
    """Lock pairs by a client of ``client_endpoint`` only (TTL 2 s), on a thread: the
    (time, token) of each grant, and the errors, as they happen."""
    client = connect([client_endpoint], session_ttl=2)
    grants: list[tuple[float, int]] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                with client.lock("fwd-failover", max_hold=10) as held:
                    grants.append((time.monotonic(), held.token))
            except Exception as exc:  # recorded, judged by the test
                errors.append(exc)
            time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: grants)
        session = client.session().id
        yield grants, errors
        assert client.session().id == session, "the session was lost"
    finally:
        stop.set()
        thread.join(timeout=30)
        client.close()


def test_a_client_of_a_follower_keeps_its_session_through_leader_kills(tmp_path: Path) -> None:
    with running(Cluster(tmp_path / "cluster")) as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        with pairs_in_background(follower) as (grants, errors):
            for _ in range(2):
                leader = cluster.leader()
                if leader == follower:
                    break
                killed_at = time.monotonic()
                cluster.nodes[cluster.index_of(leader)].kill()
                wait_until(lambda: grants[-1][0] > killed_at + 0.5, timeout=30)  # noqa: B023
                cluster.nodes[cluster.index_of(leader)].start()
                cluster.leader(timeout=30)
            tokens = [token for _, token in grants]
            assert tokens == sorted(set(tokens))
            assert not errors, errors
