"""A deposed leader's commands never act, on real nodes: the issue's reproduction (a leader
stopped for three session TTLs), no forwarding from a follower, and the cluster version that
waits for every member."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import msgpack
import pytest
from pysyncobj import FAIL_REASON

from tests.integration.cluster import Cluster, WireClient, error_reason, wait_until
from tests.integration.replicas import start_and_elect
from tests.integration.test_raft_guard import _replica
from turnstile.client import RetryPolicy, connect
from turnstile.client.errors import LockLostError
from turnstile.cluster.codec import FORMAT_VERSION, encode_command
from turnstile.cluster.commands import PROTOCOL_VERSION, SetClusterVersion, Tick
from turnstile.cluster.launcher import NodeProcess, free_ports
from turnstile.cluster.raft import HALT_EXIT_STATUS
from turnstile.cluster.test_switches import PROTOCOL_VERSION_ENV
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.integration

#: Four seconds: on a loaded two-core machine an election with split votes can leave the
#: cluster leaderless for about two seconds, and a client's view of its session ends at most
#: a TTL after its last acknowledged keep-alive, sent up to TTL/3 before the pause.
TTL = 4.0
#: Three TTLs: the paused leader's tracker finds every session overdue when it resumes.
PAUSE = 12.0
ROUNDS = 2


def test_a_leader_paused_past_the_session_ttl_ends_no_live_session(cluster: Cluster) -> None:
    """Before the fence: on SIGCONT the old leader proposed ExpireSession for every session
    and, when pysyncobj already knew the new leader, forwarded it there: the live holder's
    lock went to the waiter while the holder still counted it as held. That depends on a
    race between the resumed node's threads, so two rounds (each pauses whichever node
    leads). A round where the holder's own view of its session ran out during the failover
    (a liveness miss, not a safety one) is allowed once."""
    retry = RetryPolicy(deadline=30)
    kept = 0
    with (
        connect(cluster.addresses, session_ttl=TTL, retry=retry, name="holder") as holder,
        connect(cluster.addresses, session_ttl=TTL, retry=retry, name="waiter") as waiter,
    ):
        for round_ in range(ROUNDS):
            name = f"work-unit-{round_}"
            held = holder.lock(name)
            assert held.acquire(blocking=False)
            granted_to_waiter = threading.Event()

            def wait_for_it(name: str = name, granted: threading.Event = granted_to_waiter) -> None:
                lock = waiter.lock(name)
                if lock.acquire(timeout=PAUSE * 3):
                    granted.set()
                    lock.release()

            thread = threading.Thread(target=wait_for_it, daemon=True)
            thread.start()
            wait_until(lambda name=name: _waiters(cluster, name) == 1, timeout=20)
            _pause_leader(cluster)
            # Long enough for the resumed node to act on its overdue sessions and be heard.
            settle = time.monotonic() + 2 * TTL
            while time.monotonic() < settle and held.locked():
                granted = granted_to_waiter.is_set()
                assert not (granted and held.locked()), (
                    f"round {round_}: the waiter got the lock while its holder still held it"
                )
                time.sleep(0.05)
            if held.locked():
                kept += 1
                assert held.validate(), f"round {round_}: token {held.token} no longer holds it"
            with contextlib.suppress(LockLostError):
                held.release()
            thread.join(timeout=60)
            assert granted_to_waiter.is_set(), "the waiter never got the lock after the release"
    assert kept >= ROUNDS - 1, f"the holder lost its session in {ROUNDS - kept} of {ROUNDS} rounds"


def _pause_leader(cluster: Cluster) -> None:
    """SIGSTOPs the leader for ``PAUSE`` seconds, until another node leads, then SIGCONT."""
    leader = cluster.leader()
    paused = cluster.nodes[cluster.index_of(leader)].process
    assert paused is not None
    paused.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        cluster.leader(timeout=30, exclude=leader)
        time.sleep(max(0.0, PAUSE - (time.monotonic() - started)))
    finally:
        paused.send_signal(signal.SIGCONT)


def _waiters(cluster: Cluster, name: str) -> int:
    try:
        return len(cluster.lock_info(name).waiters)
    except grpc.RpcError:
        return -1


def test_a_command_submitted_on_a_follower_is_not_applied(tmp_path: Path) -> None:
    """pysyncobj would forward it to the leader; ours fails with NOT_LEADER instead."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(3)]
    nodes = [_replica(tmp_path, addresses, i) for i in range(3)]
    try:
        leader = start_and_elect(nodes)
        follower = next(n for n in nodes if n is not leader)
        wait_until(lambda: follower.leader_address is not None, timeout=20)
        # One command of the leader's own first: once it commits, so has the election's no-op
        # entry, which would otherwise move the commit index under the check below.
        settled = threading.Event()
        leader.submit(encode_command(Tick(0)), lambda _r, _e: settled.set(), leader.term)
        assert settled.wait(10)
        before = leader.commit_index
        outcome: list[int] = []
        done = threading.Event()

        def answered(_result: object, error: int) -> None:
            outcome.append(error)
            done.set()

        # In its own term too: a node that is not leader refuses whatever the stamp.
        follower.submit(encode_command(Tick(1)), answered, follower.term)
        assert done.wait(10)
        assert outcome == [FAIL_REASON.NOT_LEADER]
        time.sleep(0.5)
        assert leader.commit_index == before
    finally:
        for node in nodes:
            node.stop()


def test_the_cluster_version_waits_for_every_member(tmp_path: Path) -> None:
    """A member that reports protocol version 1 (an old build during an upgrade) keeps the
    cluster at 1: commands of version 2 are refused before they are proposed. Once it runs the
    new version, the leader raises the cluster version and they work."""
    cluster = Cluster(tmp_path / "mixed")
    cluster.nodes[2] = NodeProcess(cluster.paths[2], env={PROTOCOL_VERSION_ENV: "1"})
    try:
        cluster.start_all()
        leader = cluster.leader(timeout=30)
        client = WireClient(cluster, leader).open()
        # Sent by hand, so this client never reports the acquire answered: it is the kind of
        # request a client gives up on, and Abandon may release its grant.
        acquire = client.request_id()
        granted = cluster.stubs(leader).locks.Acquire(
            pb.AcquireRequest(request=acquire, name="held"), timeout=10
        )
        assert granted.acquired
        time.sleep(1.0)  # several duty rounds: the leader has heard from every member
        with pytest.raises(grpc.RpcError) as refused:
            _abandon(client, "held", acquire.seq)
        assert error_reason(refused.value) is Reason.FAILED_PRECONDITION
        assert "cluster version 2" in (refused.value.details() or "")
        cluster.nodes[2].stop()
        cluster.nodes[2] = NodeProcess(cluster.paths[2])
        cluster.nodes[2].start()
        abandoned = wait_until(lambda: _try_abandon(client, "held", acquire.seq), timeout=30)
        assert abandoned.released
    finally:
        cluster.close()
    assert not cluster.critical_lines()


def _abandon(client: WireClient, name: str, acquire_seq: int) -> pb.AbandonResponse:
    request = pb.AbandonRequest(request=client.request_id(), name=name, acquire_seq=acquire_seq)
    return client.call("locks", "Abandon", request)


def _try_abandon(client: WireClient, name: str, acquire_seq: int) -> pb.AbandonResponse | None:
    try:
        return _abandon(client, name, acquire_seq)
    except grpc.RpcError as error:
        if error_reason(error) is Reason.FAILED_PRECONDITION:
            return None
        raise


_HALTING_NODE = """
import logging, sys, time
from turnstile.cluster.launcher import free_ports
from turnstile.cluster.raft import RaftNode
from turnstile.cluster.raft_options import RaftOptions
logging.basicConfig(format="%(levelname)s %(message)s")
node = RaftNode(RaftOptions(
    self_address=f"127.0.0.1:{free_ports(1)[0]}", other_addresses=(), data_dir=sys.argv[1],
    password="halt-test-password"))
node.start()
deadline = time.monotonic() + 20
while not node.is_leader and time.monotonic() < deadline:
    time.sleep(0.05)
node.submit(bytes.fromhex(sys.argv[2]), lambda result, error: None, node.term)
time.sleep(20)
print("still running", flush=True)
"""


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (msgpack.packb([FORMAT_VERSION, 99, [1, 0]]), "cannot be decoded"),
        (encode_command(SetClusterVersion(1, PROTOCOL_VERSION + 1)), "upgrade it"),
    ],
    ids=["unknown op", "cluster version too new"],
)
def test_a_committed_entry_this_build_cannot_apply_stops_the_node(
    tmp_path: Path, entry: bytes, why: str
) -> None:
    """Refusing it (as before, INVALID_ARGUMENT) would leave this replica's state different
    from its peers' during a rolling upgrade: the node stops loudly instead, like a snapshot
    that fails to load, and replays the entry once upgraded."""
    child = subprocess.run(
        [sys.executable, "-c", _HALTING_NODE, str(tmp_path), entry.hex()],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == HALT_EXIT_STATUS, child.stdout + child.stderr
    assert "CRITICAL" in child.stderr and why in child.stderr, child.stderr
