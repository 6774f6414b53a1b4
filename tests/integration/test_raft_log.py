"""The Raft log on disk under compaction and snapshot installation, with real replicas.

Three pysyncobj replicas in this process, on loopback, with ``raftlog.RaftLog`` on disk and a
small compaction threshold, so that every node drops log prefixes into snapshots and a node
that lost its directory is sent the leader's snapshot. Every replica must come back from its
files with the same state, again and again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.cluster import wait_until
from tests.integration.replicas import peer_addresses, replica, start_and_elect, submit_ticks
from turnstile.cluster import snapshot
from turnstile.cluster.raft import SNAPSHOT_FILE, RaftNode
from turnstile.cluster.raftlog import LOG_FILE, DiskFiles, RaftLog

pytestmark = pytest.mark.integration

COMPACT_AFTER = 100


def _replica(
    directory: Path, addresses: list[str], i: int, compact_after: int = COMPACT_AFTER
) -> RaftNode:
    # The log is counted in entries: one per command.
    return replica(
        directory, addresses, i, compaction_min_entries=compact_after, group_commands=False
    )


def _same_state(nodes: list[RaftNode], leader: RaftNode) -> bytes:
    target = leader.applied_index
    wait_until(lambda: all(node.applied_index >= target for node in nodes), timeout=60)
    states = {node.read(snapshot.dump) for node in nodes}
    assert len(states) == 1
    return states.pop()


def test_compacted_logs_and_an_installed_snapshot_come_back_from_disk(tmp_path: Path) -> None:
    addresses = peer_addresses()
    nodes = [_replica(tmp_path, addresses, i) for i in range(3)]
    running = list(nodes)
    try:
        leader = start_and_elect(nodes)
        submit_ticks(leader, 5 * COMPACT_AFTER, wait=True)
        # Every replica compacts on its own: its log is a short tail behind a snapshot.
        wait_until(lambda: all(len(node.log) < 2 * COMPACT_AFTER for node in nodes), timeout=60)
        _same_state(nodes, leader)

        # A follower that lost its directory is sent the snapshot, which it must keep.
        lost = next(i for i, node in enumerate(nodes) if node is not leader)
        nodes[lost].stop()
        running.remove(nodes[lost])
        shutil.rmtree(tmp_path / str(lost))
        nodes[lost] = _replica(tmp_path, addresses, lost)
        nodes[lost].start()
        running.append(nodes[lost])
        wait_until(lambda: nodes[lost].snapshot_installs >= 1, timeout=60)
        submit_ticks(leader, COMPACT_AFTER // 2, wait=True)
        before = _same_state(nodes, leader)

        # The whole cluster stops and comes back from its files alone.
        for node in running:
            node.stop()
        running.clear()
        # Each replica's files hold exactly the log it had in memory.
        for i, node in enumerate(nodes):
            on_disk = RaftLog(DiskFiles(str(tmp_path / str(i))))
            assert list(on_disk[:]) == list(node.log[:]), f"replica {i}"
            on_disk._destroy()
        nodes = [_replica(tmp_path, addresses, i) for i in range(3)]
        assert all(len(node.log) < 2 * COMPACT_AFTER for node in nodes)
        running.extend(nodes)
        leader = start_and_elect(nodes)
        wait_until(lambda: leader.commit_index >= leader.replica._SyncObj__getCurrentLogIndex())
        assert _same_state(nodes, leader) == before  # the new leader's no-op changes nothing
        submit_ticks(leader, 10, wait=True)
        _same_state(nodes, leader)
        assert all((tmp_path / str(i) / LOG_FILE).exists() for i in range(3))
    finally:
        for node in running:
            node.stop()


def test_a_stop_between_the_snapshot_and_the_log_drop_keeps_the_later_entries(
    tmp_path: Path,
) -> None:
    """pysyncobj renames a snapshot into place one tick before it drops the log prefix the
    snapshot covers. A node stopped in between must come back with every entry after the
    snapshot (pysyncobj alone clears its log down to the snapshot's two entries)."""
    addresses = peer_addresses()
    nodes = [_replica(tmp_path, addresses, i, compact_after=100_000) for i in range(3)]
    running = list(nodes)
    try:
        leader = start_and_elect(nodes)
        submit_ticks(leader, 100, wait=True)
        follower = next(node for node in nodes if node is not leader)
        wait_until(lambda: follower.applied_index >= leader.commit_index)
        # The node stops after the rename and before the drop: the drop never happens.
        follower.log.deleteEntriesTo = lambda _entry_to: None  # type: ignore[method-assign]
        follower.replica.forceLogCompaction()
        snapshot_file = tmp_path / str(nodes.index(follower)) / SNAPSHOT_FILE
        wait_until(snapshot_file.exists)
        submit_ticks(leader, 50, wait=True)
        wait_until(lambda: follower.applied_index >= leader.commit_index)
        last = follower.log[-1][1]
        for node in running:
            node.stop()
        running.clear()

        # Alone (no leader to resend anything), from its own files.
        alone = _replica(tmp_path, addresses, nodes.index(follower), compact_after=100_000)
        running.append(alone)
        alone.start()
        wait_until(lambda: alone.snapshot_installs >= 1)
        assert alone.log[-1][1] == last
        assert len(alone.log) > 50
    finally:
        for node in running:
            node.stop()
