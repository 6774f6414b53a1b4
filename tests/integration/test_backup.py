"""Backup and restore: ``snapshot save`` from a running cluster, ``snapshot restore`` into a
new one on other ports, and everything comes back: locks with their tokens and waiters'
sessions, lists with their ids, the fencing counter; members are the new cluster's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from turnstile.cluster.launcher import CONFIG_NAME
from turnstile.v1 import turnstile_pb2 as pb

from .cluster import Cluster, WireClient, wait_until

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnstile.cluster", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TURNSTILE_")},
    )


def test_save_and_restore_into_a_new_cluster(cluster: Cluster, tmp_path: Path) -> None:
    kept = WireClient(cluster, cluster.leader(), ttl_ms=60_000, name="kept").open()
    gone = WireClient(cluster, cluster.leader(), ttl_ms=2_000, name="gone").open()
    kept_lock = kept.acquire("kept-lock")
    gone_lock = gone.acquire("gone-lock")
    assert kept_lock.acquired and gone_lock.acquired
    kept.set_up("results")
    ids = kept.insert("results", b"alpha", b"beta", b"gamma")
    assert ids == [(True, 1), (True, 2), (True, 3)]
    kept.set_up("other")
    kept.insert("other", b"x")
    gone.keep_alive()

    backup = tmp_path / "backup.snapshot"
    saved = cli("snapshot", "save", str(backup), "--endpoints", ",".join(cluster.addresses))
    assert saved.returncode == 0, saved.stderr
    assert "locks held  2" in saved.stdout
    cluster.stop_all()

    restored = Cluster(tmp_path / "restored")
    try:
        for node_dir in sorted(p.parent for p in restored.paths):
            result = cli(
                "snapshot", "restore", str(backup), "--config", str(node_dir / CONFIG_NAME)
            )
            assert result.returncode == 0, result.stderr
            assert "2 locks held, 2 lists, 4 list members" in result.stdout
        again = cli("snapshot", "restore", str(backup), "--config", str(restored.paths[0]))
        assert again.returncode == 1
        assert "restore into an empty one" in again.stderr

        restored.start_all()
        leader = restored.leader(timeout=30)
        stubs = restored.stubs(leader)
        members = stubs.cluster.Members(pb.MembersListRequest(), timeout=5).members
        assert sorted((m.node_id, m.client_address) for m in members) == sorted(
            (c.node_id, c.client_address) for c in restored.configs
        )
        listed = stubs.lists.Members(pb.MembersRequest(name="results", limit=10), timeout=5)
        assert [(m.id, m.member) for m in listed.members] == [
            (1, b"alpha"),
            (2, b"beta"),
            (3, b"gamma"),
        ]
        holder = stubs.locks.Describe(pb.DescribeLockRequest(name="kept-lock"), timeout=5).lock
        assert holder.holder.token == kept_lock.token
        assert holder.holder.client_name == "kept"

        # The worker holding "kept-lock" is still running: its session lives on, with its
        # request numbering, and an id it inserts again is the one it was given.
        kept.cluster = restored
        kept.address = leader
        kept.keep_alive()
        assert kept.insert("results", b"beta", b"delta") == [(False, 2), (True, 4)]
        # Tokens keep growing across the restore.
        fresh = kept.acquire("new-lock")
        assert fresh.token > max(kept_lock.token, gone_lock.token)

        # The "gone" worker sends nothing: its session expires one TTL after the new leader
        # took office, and its lock is freed.
        def gone_lock_freed() -> bool:
            lock = stubs.locks.Describe(pb.DescribeLockRequest(name="gone-lock"), timeout=5).lock
            return not lock.HasField("holder")

        wait_until(gone_lock_freed, timeout=20)
        assert kept.call("locks", "Describe", pb.DescribeLockRequest(name="kept-lock")).lock.holder
    finally:
        restored.close()
    assert not restored.critical_lines()


def test_restore_refuses_what_is_not_a_snapshot(tmp_path: Path) -> None:
    restored = Cluster(tmp_path / "restored", nodes=1)
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"\x93not a snapshot")
    result = cli("snapshot", "restore", str(bogus), "--config", str(restored.paths[0]))
    assert result.returncode == 1
    assert "not a turnstile snapshot" in result.stderr or "not msgpack" in result.stderr
    missing = cli(
        "snapshot", "restore", str(tmp_path / "absent"), "--config", str(restored.paths[0])
    )
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr
    assert "Traceback" not in result.stderr + missing.stderr


def test_a_node_left_empty_is_sent_the_restored_state(cluster: Cluster, tmp_path: Path) -> None:
    """A node not restored (its log one entry long) cannot match the restored log and gets the
    leader's snapshot, instead of replaying an empty history."""
    worker = WireClient(cluster, cluster.leader()).open()
    worker.set_up("kept")
    worker.insert("kept", b"one", b"two")
    backup = tmp_path / "backup.snapshot"
    saved = cli("snapshot", "save", str(backup), "--endpoints", ",".join(cluster.addresses))
    assert saved.returncode == 0, saved.stderr
    cluster.stop_all()

    restored = Cluster(tmp_path / "restored")
    try:
        for path in restored.paths[:2]:
            assert cli("snapshot", "restore", str(backup), "--config", str(path)).returncode == 0
        restored.start_all()
        restored.leader(timeout=30)
        empty = restored.stubs(restored.addresses[2])

        def has_the_list() -> bool:
            status = empty.cluster.Status(pb.StatusRequest(), timeout=5)
            return status.counts.lists == 1 and status.counts.members == 2

        wait_until(has_the_list, timeout=20)
    finally:
        restored.close()
    assert not restored.critical_lines()
