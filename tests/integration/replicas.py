"""Three pysyncobj replicas of one cluster inside the test process, on free loopback ports,
for the tests of the Raft adapter itself (no gRPC, no node processes)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.integration.cluster import wait_until
from turnstile.cluster.codec import encode_command
from turnstile.cluster.commands import Tick
from turnstile.cluster.launcher import free_ports
from turnstile.cluster.raft import SUCCESS, RaftNode
from turnstile.cluster.raft_options import RaftOptions


def peer_addresses(count: int = 3) -> list[str]:
    """Peer addresses of a new cluster, on ports free right now."""
    return [f"127.0.0.1:{port}" for port in free_ports(count)]


def replica(directory: Path, addresses: list[str], i: int, **options: Any) -> RaftNode:
    """Replica ``i`` of the cluster at ``addresses``, on ``directory/i`` (again, on the same
    data, when a test restarts it); ``options`` are ``RaftOptions`` fields."""
    return RaftNode(
        RaftOptions(
            self_address=addresses[i],
            other_addresses=tuple(a for a in addresses if a != addresses[i]),
            data_dir=str(directory / str(i)),
            password="replica-test-password",
            **options,
        )
    )


def replicas(directory: Path, **options: Any) -> list[RaftNode]:
    """Every replica of a new three-member cluster (not started)."""
    addresses = peer_addresses()
    return [replica(directory, addresses, i, **options) for i in range(len(addresses))]


def start_and_elect(nodes: list[RaftNode]) -> RaftNode:
    """Starts every replica; returns the one elected leader."""
    for node in nodes:
        node.start()
    return wait_until(lambda: next((n for n in nodes if n.is_leader), None), timeout=20)


def applied_by(nodes: list[RaftNode], index: int) -> bool:
    """Whether every one of ``nodes`` applied the entry at ``index``."""
    return all(node.applied_index >= index for node in nodes)


def submit_ticks(node: RaftNode, commands: int, wait: bool) -> None:
    """Submits ``commands`` Tick commands to ``node`` at once; with ``wait``, waits until each
    was applied and checks that all succeeded."""
    done = threading.Semaphore(0)
    errors: list[int] = []

    def finished(_result: object, error: int) -> None:
        errors.append(error)
        done.release()

    for i in range(commands):
        node.submit(encode_command(Tick(i)), finished, node.term)
    if wait:
        for _ in range(commands):
            assert done.acquire(timeout=60)
        assert set(errors) == {SUCCESS}
