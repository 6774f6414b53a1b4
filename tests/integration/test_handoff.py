"""Blocked acquires are handed the lock by the server: on release, and on holder session loss."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from tests.integration.cluster import Cluster, WireClient, wait_until
from turnstile.v1 import turnstile_pb2 as pb

#: One cluster for the module: each test uses lock names of its own and stops no node.
pytestmark = [pytest.mark.integration, pytest.mark.shared_cluster]


def _acquire_in_background(
    client: WireClient, name: str, wait_ms: int
) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        started = time.monotonic()
        response = client.acquire(name, wait_ms=wait_ms)
        outcome.append((response, time.monotonic() - started, time.monotonic()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _queue_length(cluster: Cluster, address: str, name: str) -> int:
    lock = cluster.stubs(address).locks.Describe(pb.DescribeLockRequest(name=name), timeout=5).lock
    return len(lock.waiters)


def test_release_hands_the_lock_to_the_waiting_acquire(cluster: Cluster) -> None:
    leader = cluster.leader()
    holder = WireClient(cluster, leader, name="holder").open()
    waiter = WireClient(cluster, leader, name="waiter").open()
    held = holder.acquire("handed-on-release", max_hold_ms=60_000)
    thread, outcome = _acquire_in_background(waiter, "handed-on-release", wait_ms=30_000)
    wait_until(lambda: _queue_length(cluster, leader, "handed-on-release") == 1)
    released_at = time.monotonic()
    holder.release("handed-on-release", held.token)
    thread.join(timeout=20)
    response, _, granted_at = outcome[0]
    assert response.acquired and response.token > held.token
    # The hand-off is pushed by the release's own log entry, not found by polling.
    print(f"release-to-grant: {(granted_at - released_at) * 1000:.1f} ms")
    assert _queue_length(cluster, leader, "handed-on-release") == 0


def test_wait_deadline_returns_not_acquired_and_leaves_no_waiter(cluster: Cluster) -> None:
    leader = cluster.leader()
    holder = WireClient(cluster, leader).open()
    waiter = WireClient(cluster, leader).open()
    holder.acquire("busy-deadline")
    response = waiter.acquire("busy-deadline", wait_ms=700)
    assert not response.acquired
    assert _queue_length(cluster, leader, "busy-deadline") == 0


def test_a_cancelled_blocking_call_leaves_no_waiter(cluster: Cluster) -> None:
    leader = cluster.leader()
    holder = WireClient(cluster, leader).open()
    waiter = WireClient(cluster, leader).open()
    holder.acquire("busy-cancel")
    request = pb.AcquireRequest(request=waiter.request_id(), name="busy-cancel", wait_ms=60_000)
    with pytest.raises(grpc.RpcError) as gave_up:
        cluster.stubs(leader).locks.Acquire(request, timeout=1.0)
    assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: _queue_length(cluster, leader, "busy-cancel") == 0, timeout=10)


def test_holder_session_expiry_hands_the_lock_over_within_ttl(cluster: Cluster) -> None:
    leader = cluster.leader()
    ttl_ms = 1500
    doomed = WireClient(cluster, leader, ttl_ms=ttl_ms, name="doomed").open()
    waiter = WireClient(cluster, leader, ttl_ms=10_000, name="waiter").open()
    held = doomed.acquire("handed-on-expiry")
    last_keep_alive = time.monotonic()
    doomed.keep_alive()
    thread, outcome = _acquire_in_background(waiter, "handed-on-expiry", wait_ms=20_000)
    # ``doomed`` now stops sending keep-alives, as a crashed worker would.
    thread.join(timeout=30)
    response, _, granted_at = outcome[0]
    assert response.acquired and response.token > held.token
    silent_for = granted_at - last_keep_alive
    print(f"lock free {silent_for * 1000:.0f} ms after the last keep-alive (ttl {ttl_ms} ms)")
    assert silent_for >= ttl_ms / 1000 - 0.05
    with pytest.raises(grpc.RpcError):
        doomed.keep_alive()


def test_keep_alives_keep_a_session_and_its_lock(cluster: Cluster) -> None:
    leader = cluster.leader()
    kept = WireClient(cluster, leader, ttl_ms=1000).open()
    held = kept.acquire("kept")
    for _ in range(8):
        kept.keep_alive()
        time.sleep(0.3)
    check = cluster.stubs(leader).locks.Validate(
        pb.ValidateRequest(name="kept", token=held.token), timeout=5
    )
    assert check.valid
