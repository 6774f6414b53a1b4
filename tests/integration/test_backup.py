"""Backup and restore: ``snapshot save`` from a running cluster, ``snapshot restore`` into a
new one on other ports. Lists come back with their ids; sessions, and with them every hold and
wait, do not; tokens and session ids continue ``RESTORE_ID_MARGIN`` above the saved ones;
members are the new cluster's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from turnstile.cluster import snapshot, views
from turnstile.cluster.backup import RESTORE_ID_MARGIN
from turnstile.cluster.launcher import CONFIG_NAME
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

from .cluster import Cluster, WireClient, error_reason, wait_until

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
    waiting = WireClient(cluster, cluster.leader(), ttl_ms=60_000, name="waiting").open()
    kept_lock = kept.acquire("kept-lock")
    assert kept_lock.acquired
    kept.set_up("results")
    ids = kept.insert("results", b"alpha", b"beta", b"gamma")
    assert ids == [(True, 1), (True, 2), (True, 3)]
    kept.set_up("other")
    kept.insert("other", b"x")
    # A waiter queued behind the holder; its RPC stays open until the source cluster stops.
    stubs = cluster.stubs(cluster.leader())
    wait = pb.AcquireRequest(request=waiting.request_id(), name="kept-lock", wait_ms=60_000)
    blocked = threading.Thread(
        target=_ignore_errors(lambda: stubs.locks.Acquire(wait, timeout=90)), daemon=True
    )
    blocked.start()

    def queued() -> bool:
        lock = stubs.locks.Describe(pb.DescribeLockRequest(name="kept-lock"), timeout=5).lock
        return bool(lock.waiters)

    wait_until(queued)

    backup = tmp_path / "backup.snapshot"
    saved = cli("snapshot", "save", str(backup), "--endpoints", ",".join(cluster.addresses))
    assert saved.returncode == 0, saved.stderr
    assert "locks held  1" in saved.stdout
    saved_state = snapshot.load(backup.read_bytes())
    assert views.counts(saved_state).waiters == 1
    # The source goes on after the backup: tokens and session ids the backup never saw.
    later = WireClient(cluster, cluster.leader(), name="later").open()
    later_tokens = [later.acquire(f"after-{i}").token for i in range(3)]
    assert min(later_tokens) > saved_state.last_token
    assert later.session > saved_state.last_session
    cluster.stop_all()
    blocked.join(timeout=30)

    restored = Cluster(tmp_path / "restored")
    try:
        for node_dir in sorted(p.parent for p in restored.paths):
            result = cli(
                "snapshot", "restore", str(backup), "--config", str(node_dir / CONFIG_NAME)
            )
            assert result.returncode == 0, result.stderr
            assert "with 2 lists, 4 list members; the backup's 2 sessions ended" in result.stdout
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
        # The hold and the wait of the backup are gone with their sessions.
        lock = stubs.locks.Describe(pb.DescribeLockRequest(name="kept-lock"), timeout=5).lock
        assert not lock.HasField("holder") and not lock.waiters
        assert stubs.cluster.Status(pb.StatusRequest(), timeout=5).counts.sessions == 0

        # A worker still running with a session id of the backup is told it is gone...
        kept.cluster = restored
        kept.address = leader
        with pytest.raises(grpc.RpcError) as refused:
            kept.keep_alive()
        assert error_reason(refused.value) is Reason.SESSION_EXPIRED
        with pytest.raises(grpc.RpcError) as refused:
            kept.acquire("kept-lock")
        assert error_reason(refused.value) is Reason.SESSION_EXPIRED

        # ... and opens a new one, above anything the source could have issued since.
        fresh = WireClient(restored, leader, name="fresh").open()
        assert fresh.session > saved_state.last_session + RESTORE_ID_MARGIN
        assert fresh.session > later.session
        token = fresh.acquire("kept-lock").token
        assert token > saved_state.last_token + RESTORE_ID_MARGIN
        assert token > max(later_tokens)
        # A member inserted again gets the id it was given before the backup.
        assert fresh.insert("results", b"beta", b"delta") == [(False, 2), (True, 4)]
    finally:
        restored.close()
    assert not restored.critical_lines()


def _ignore_errors(call: Callable[[], object]) -> Callable[[], None]:
    """For a call the test ends by stopping the cluster under it."""

    def run() -> None:
        with contextlib.suppress(grpc.RpcError, ValueError):  # ValueError: channel closed
            call()

    return run


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
