"""The peer port: only holders of the peer password are heard, and a node never starts
without one.

pysyncobj unpickles what arrives on the peer port once it decrypts; without the password
anyone reaching the port could run code or vote. Here an impostor Raft node with the wrong
password, and a raw pickle that would leave a marker file if ever unpickled, both try.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pickle
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from pysyncobj import SyncObj, SyncObjConf

from turnstile.cluster.launcher import free_port
from turnstile.v1 import turnstile_pb2 as pb

from .cluster import Cluster, WireClient, wait_until

pytestmark = pytest.mark.integration


class _LeavesAMark:
    """Unpickling this creates ``path``: proof that a node ran code sent to its peer port."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.path),))


def _raw_peer_message(payload: object) -> bytes:
    """pysyncobj's framing without encryption: 4-byte length, then zlib(pickle)."""
    data = zlib.compress(pickle.dumps(payload))
    return struct.pack("i", len(data)) + data


def test_impostor_without_the_password_is_refused_and_changes_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    worker = WireClient(cluster, cluster.leader()).open()
    granted = worker.acquire("held-before", max_hold_ms=0)
    assert granted.acquired
    before = {
        a: cluster.stubs(a).cluster.Status(pb.StatusRequest(), timeout=5) for a in cluster.addresses
    }
    peers = [c.peer_address for c in cluster.configs]

    marker = tmp_path / "code-ran"
    with socket.create_connection(tuple(peers[0].rsplit(":", 1)), timeout=5) as raw:  # type: ignore[arg-type]
        raw.sendall(_raw_peer_message(_LeavesAMark(marker)))
        # The node closes the connection instead of answering.
        with contextlib.suppress(ConnectionResetError):
            assert raw.recv(1) == b""

    # An impostor Raft node listing the members as its peers: had it been heard, it would
    # stand for election with a higher term and depose the leader. pysyncobj dials only
    # peers whose address sorts below its own, hence 127.0.0.2.
    impostor = SyncObj(
        f"127.0.0.2:{free_port('127.0.0.2')}",
        peers,
        SyncObjConf(
            password="wrong-password-of-sufficient-length",
            connectionRetryTime=0.1,
            dynamicMembershipChange=True,
        ),
    )
    try:
        wait_until(
            lambda: all(
                "failed authentication" in node.log_path.read_text() for node in cluster.nodes
            ),
            timeout=20,
        )
    finally:
        impostor.destroy()

    assert not marker.exists()
    after = {
        a: cluster.stubs(a).cluster.Status(pb.StatusRequest(), timeout=5) for a in cluster.addresses
    }
    for address in cluster.addresses:
        assert after[address].header.term == before[address].header.term
        assert after[address].header.leader_id == before[address].header.leader_id
    members = cluster.stubs(cluster.leader()).cluster.Members(pb.MembersListRequest(), timeout=5)
    assert sorted(m.peer_address for m in members.members) == sorted(peers)
    lock = worker.call("locks", "Describe", pb.DescribeLockRequest(name="held-before")).lock
    assert lock.holder.token == granted.token
    assert "refused a peer connection from 127.0.0.1:" in cluster.nodes[0].log_path.read_text()


def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port``, from /proc/net/tcp and tcp6 (gRPC
    may listen on an IPv6 socket with an IPv4-mapped address), IPv4-mapped ones as IPv4."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            host, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(host)
            # The kernel prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.ip_address(packed)
            mapped = getattr(address, "ipv4_mapped", None)
            found.add(str(mapped or address))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp6").exists(), reason="needs Linux /proc/net")
def test_every_port_binds_exactly_its_configured_address(cluster: Cluster) -> None:
    for config in cluster.configs:
        for address in (config.client_address, config.peer_address, config.metrics_address):
            host, _, number = address.rpartition(":")
            assert _listening(int(number)) == {host}, address


def test_node_refuses_to_start_without_a_peer_password(tmp_path: Path) -> None:
    peer = "10.255.255.1:7100"
    client = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "turnstile.cluster",
            "serve",
            "--node-id",
            "n1",
            "--client-address",
            client,
            "--peer-address",
            peer,
            "--data-dir",
            str(tmp_path / "data"),
            "--peers",
            f"n1={peer}/{client}",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TURNSTILE_")},
    )
    assert result.returncode == 2
    assert "peer_password_file: required" in result.stderr
    assert "Traceback" not in result.stderr
