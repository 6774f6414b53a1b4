"""A rolling upgrade to sealed peer frames (``cluster/peer_transport.py``), with three real
replicas in this process on loopback.

A replica of the previous build is played by this build on pysyncobj's own transport
(Fernet, exactly the previous build's wire format) reporting protocol version 3. While it is
a member the others speak Fernet to it and replicate through it; once it runs this build and
the cluster version reaches ``SEALED_FRAMES_VERSION``, every connection of the leader is
sealed both ways, and commands still commit everywhere.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pysyncobj.transport import TCPTransport

from tests.integration.cluster import wait_until
from tests.integration.replicas import peer_addresses, replica, start_and_elect
from turnstile.cluster import raft
from turnstile.cluster.codec import encode_command
from turnstile.cluster.commands import SetClusterVersion, Tick
from turnstile.cluster.peer_transport import SEALED_FRAMES_VERSION, PeerConnection
from turnstile.cluster.raft import SUCCESS, RaftNode

pytestmark = pytest.mark.integration


def _previous_build_transport(
    sync_obj: Any, self_node: Any, other_nodes: Any, seal_when: Any
) -> TCPTransport:
    return TCPTransport(sync_obj, self_node, other_nodes)


def _commit(nodes: list[RaftNode], payload_of: Any) -> None:
    """Commits one command through the current leader and waits until every replica has it."""
    leader = wait_until(lambda: next((n for n in nodes if n.is_leader), None))
    done, outcome = threading.Event(), []

    def finished(_result: object, error: int) -> None:
        outcome.append(error)
        done.set()

    leader.submit(encode_command(payload_of(leader.term)), finished, leader.term)
    assert done.wait(20) and outcome == [SUCCESS]
    target = leader.applied_index
    wait_until(lambda: all(n.applied_index >= target for n in nodes))


def _framing(node: RaftNode) -> dict[str, tuple[bool, bool]]:
    """Per peer of ``node``: (this side seals, the other side's frames were sealed)."""
    connections = node.replica._SyncObj__transport._connections  # pysyncobj internal
    return {
        peer.id: (conn._sealer is not None, conn._opener.opened)
        for peer, conn in connections.items()
        if isinstance(conn, PeerConnection)
    }


def test_a_replica_of_the_previous_build_replicates_until_it_is_upgraded_then_all_seal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addresses = peer_addresses()
    nodes = [replica(tmp_path, addresses, i) for i in range(2)]
    with monkeypatch.context() as patch:
        patch.setattr(raft, "PeerTransport", _previous_build_transport)
        nodes.append(replica(tmp_path, addresses, 2, protocol_version=3))
    try:
        start_and_elect(nodes)
        # What a leader raises the cluster version to with a member of the previous build.
        _commit(nodes, lambda term: SetClusterVersion(1, 3, term))
        for i in range(20):
            _commit(nodes, lambda term, i=i: Tick(10 + i, term))
        for node in nodes[:2]:
            assert not any(sealed for sealed, _ in _framing(node).values())

        nodes[2].stop()
        nodes[2] = replica(tmp_path, addresses, 2)  # upgraded, on the same data
        nodes[2].start()
        _commit(nodes, lambda term: SetClusterVersion(100, SEALED_FRAMES_VERSION, term))
        for i in range(20):
            _commit(nodes, lambda term, i=i: Tick(200 + i, term))
        leader = next(n for n in nodes if n.is_leader)
        others = set(addresses) - {leader.options.self_address}
        wait_until(lambda: _framing(leader) == dict.fromkeys(others, (True, True)))
        wait_until(lambda: len({n.applied_index for n in nodes}) == 1)
    finally:
        for node in nodes:
            node.stop()
