"""Faults a cluster must survive: leader kill -9, whole-cluster restart, a leader cut off."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable

import grpc
import pytest

from tests.integration.cluster import Cluster, WireClient, error_reason, wait_until
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.integration


def _keep_alive_forever(client: WireClient, stop: threading.Event, failures: list) -> None:
    while not stop.is_set():
        try:
            client.keep_alive()
        except grpc.RpcError as error:
            if error_reason(error) is Reason.SESSION_EXPIRED:
                failures.append(error)
                return
        stop.wait(0.2)


def test_leader_kill_keeps_acknowledged_writes_and_live_sessions(cluster: Cluster) -> None:
    leader = cluster.leader()
    client = WireClient(cluster, leader, ttl_ms=3000).open()
    tokens = {f"unit-{i}": client.acquire(f"unit-{i}").token for i in range(5)}
    client.set_up("results")
    ids = client.insert("results", b"k1", b"k2", b"k3")
    stop, expired = threading.Event(), []
    keeper = threading.Thread(target=_keep_alive_forever, args=(client, stop, expired), daemon=True)
    keeper.start()
    try:
        killed_at = time.monotonic()
        cluster.nodes[cluster.index_of(leader)].kill()
        new_leader = cluster.leader(timeout=30, exclude=leader)
        print(f"new leader serving {time.monotonic() - killed_at:.2f} s after kill -9")
        probe = WireClient(cluster, new_leader).open()
        for name, token in tokens.items():
            check = probe.call("locks", "Validate", pb.ValidateRequest(name=name, token=token))
            assert check.valid, name
        assert probe.insert("results", b"k1", b"k2", b"k3", b"k4") == [
            (False, ids[0][1]),
            (False, ids[1][1]),
            (False, ids[2][1]),
            (True, 4),
        ]
        # The new leader gave every session a fresh TTL: the kept-alive one survives.
        time.sleep(4)
        assert not expired
        assert client.acquire("after-failover").acquired
        new_tokens = client.acquire("unit-0", wait_ms=0)
        assert not new_tokens.acquired  # still held by this very session: not re-entrant
    finally:
        stop.set()
        keeper.join()


def test_whole_cluster_restart_keeps_state_and_token_sequence(cluster: Cluster) -> None:
    leader = cluster.leader()
    holder = WireClient(cluster, leader, ttl_ms=60_000, name="holder").open()
    waiter = WireClient(cluster, leader, ttl_ms=60_000, name="waiter").open()
    held = holder.acquire("unit", max_hold_ms=600_000)
    # A daemon: it keeps retrying its request id until its own deadline, after the test too.
    queued = threading.Thread(
        target=lambda: _swallow(lambda: waiter.acquire("unit", wait_ms=60_000)), daemon=True
    )
    queued.start()
    wait_until(
        lambda: (
            len(
                cluster.stubs(leader)
                .locks.Describe(pb.DescribeLockRequest(name="unit"), timeout=5)
                .lock.waiters
            )
            == 1
        )
    )
    holder.set_up("results")
    holder.insert("results", *(f"m{i}".encode() for i in range(50)))
    top_token = max(holder.acquire(f"other-{i}").token for i in range(3))

    # The queued acquire's connection breaks here, and its thread goes on retrying the same
    # request id, against the restarted cluster too: no join, which could only time out.
    cluster.stop_all()
    cluster.start_all()
    leader = cluster.leader(timeout=30)
    stubs = cluster.stubs(leader)
    lock = stubs.locks.Describe(pb.DescribeLockRequest(name="unit"), timeout=5).lock
    assert lock.holder.token == held.token and lock.holder.session_id == holder.session
    assert [w.session_id for w in lock.waiters] == [waiter.session]
    members = stubs.lists.Members(pb.MembersRequest(name="results"), timeout=5)
    assert [(m.id, m.member) for m in members.members] == [
        (i + 1, f"m{i}".encode()) for i in range(50)
    ]
    fresh = WireClient(cluster, leader).open()
    assert fresh.acquire("brand-new").token > top_token


def _swallow(call: Callable[[], object]) -> None:
    """Runs a blocking call whose connection a restart will break."""
    with contextlib.suppress(grpc.RpcError):
        call()


def test_a_leader_without_its_majority_answers_no_linearizable_read(cluster: Cluster) -> None:
    leader = cluster.leader()
    client = WireClient(cluster, leader).open()
    token = client.acquire("fenced").token
    followers = [cluster.nodes[cluster.index_of(a)] for a in cluster.followers(leader)]
    for node in followers:
        node.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        locks = cluster.stubs(leader).locks
        with pytest.raises(grpc.RpcError) as refused:
            locks.Validate(pb.ValidateRequest(name="fenced", token=token), timeout=3)
        assert refused.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        with pytest.raises(grpc.RpcError):
            cluster.stubs(leader).sessions.KeepAlive(
                pb.KeepAliveRequest(session_id=client.session), timeout=3
            )
        stale = locks.Validate(
            pb.ValidateRequest(name="fenced", token=token, consistency=pb.CONSISTENCY_STALE),
            timeout=3,
        )
        assert stale.valid
    finally:
        for node in followers:
            node.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    cluster.leader(timeout=30)
