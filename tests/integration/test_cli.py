"""The ``turnstile`` admin command against a real cluster: output, exit codes, metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.integration.cluster import Cluster, metric, wait_until
from turnstile.client import connect

pytestmark = pytest.mark.integration


def turnstile(
    cluster: Cluster, *args: str, endpoints: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs the CLI as a user would; endpoints come from the environment variable."""
    env = {"TURNSTILE_ENDPOINTS": endpoints or ",".join(cluster.addresses), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "turnstile.cluster", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_inspection_commands_print_tables_and_json(cluster: Cluster) -> None:
    with connect(cluster.addresses, name="inspected") as client:
        held = client.lock("job-1")
        assert held.acquire()
        client.distinct_list("results").insert_many(["a", "b", "a"])
        status = turnstile(cluster, "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["cluster"]["quorum"] is True
        assert report["cluster"]["locks_held"] == 1
        assert sorted(n["role"] for n in report["nodes"]) == ["follower", "follower", "leader"]

        locks = json.loads(turnstile(cluster, "locks", "--json").stdout)
        assert [(lk["name"], lk["token"]) for lk in locks] == [("job-1", held.token)]
        assert locks[0]["client"].startswith("inspected@")
        shown = json.loads(turnstile(cluster, "lock", "show", "job-1", "--json").stdout)
        assert shown["session"] == client.session().id and shown["queue"] == []
        sessions = json.loads(turnstile(cluster, "sessions", "--json").stdout)
        assert [s["held"] for s in sessions] == [["job-1"]]
        lists = json.loads(turnstile(cluster, "lists", "--json").stdout)
        assert [(x["name"], x["size"]) for x in lists] == [("results", 2)]
        members = json.loads(turnstile(cluster, "list", "show", "results", "--json").stdout)
        assert members["members"] == [{"id": 1, "member": "a"}, {"id": 2, "member": "b"}]

        table = turnstile(cluster, "locks")
        assert table.returncode == 0
        header, row = table.stdout.splitlines()[:2]
        assert header.split()[:4] == ["LOCK", "SESSION", "CLIENT", "TOKEN"]
        assert row.split()[0] == "job-1"
        assert max(len(line) for line in table.stdout.splitlines()) <= 80

        inserted = turnstile(cluster, "list", "insert", "results", "b", "c", "--json")
        assert [(r["id"], r["added"]) for r in json.loads(inserted.stdout)] == [
            (2, False),
            (3, True),
        ]


@pytest.mark.shared_cluster
def test_output_into_a_closed_pipe_ends_quietly(cluster: Cluster) -> None:
    """``turnstile list show ... | head``: more output than stdout buffers, and the reader
    gone before the first write."""
    with connect(cluster.addresses) as client:
        client.distinct_list("piped").insert_many(f"member-{i:06d}" for i in range(1000))
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "turnstile.cluster",
                "list",
                "show",
                "piped",
                "--limit",
                "1000",
            ],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            env={"TURNSTILE_ENDPOINTS": ",".join(cluster.addresses), "PATH": "/usr/bin:/bin"},
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (1, "")


@pytest.mark.shared_cluster
def test_control_commands_and_their_exit_codes(cluster: Cluster) -> None:
    with connect(cluster.addresses) as client:
        assert client.lock("stuck").acquire()
        refused = turnstile(cluster, "lock", "release", "stuck", "--reason", "test")
        assert refused.returncode == 5 and "--force" in refused.stderr
        forced = turnstile(cluster, "lock", "release", "stuck", "--force", "--reason", "stuck job")
        assert forced.returncode == 0, forced.stderr
        assert not client.lock("other").locked()
        assert (
            turnstile(cluster, "lock", "release", "ghost", "--force", "--reason", "x").returncode
            == 4
        )
    assert turnstile(cluster, "lock", "show", "nope").returncode == 4
    assert turnstile(cluster, "list", "show", "nope").returncode == 4
    assert turnstile(cluster, "locks", "--limit").returncode == 2
    assert turnstile(cluster, "bogus").returncode == 2
    down = turnstile(cluster, "locks", "--timeout", "1", endpoints="127.0.0.1:1")
    assert down.returncode == 3 and "cannot reach the cluster" in down.stderr
    assert "Traceback" not in down.stderr


@pytest.mark.shared_cluster
def test_lock_runs_a_command_under_the_lock(cluster: Cluster) -> None:
    ran = turnstile(
        cluster, "lock", "run-under-lock", "--", "sh", "-c", 'echo "$TURNSTILE_LOCK_TOKEN"; exit 3'
    )
    assert ran.returncode == 3
    assert int(ran.stdout.strip()) > 0
    with connect(cluster.addresses) as client:
        held = client.lock("run-under-lock")
        assert held.acquire()
        busy = turnstile(cluster, "lock", "run-under-lock", "--wait", "0.5", "--", "true")
        assert busy.returncode == 7
        held.release()
    lost = turnstile(cluster, "lock", "run-capped", "--max-hold", "1", "--", "sleep", "30")
    assert lost.returncode == 8 and "max-hold reached" in lost.stderr
    missing = turnstile(cluster, "lock", "run-under-lock", "--", "/nonexistent/command")
    assert missing.returncode == 127
    with connect(cluster.addresses) as client:
        assert client.lock("run-under-lock").acquire(blocking=False), (
            "the lock was released afterwards"
        )


def test_status_with_a_node_killed_says_so_and_fails(cluster: Cluster) -> None:
    leader = cluster.leader()
    victim = cluster.followers(leader)[0]
    cluster.nodes[cluster.index_of(victim)].kill()
    result = turnstile(cluster, "status", "--json")
    assert result.returncode == 6
    report = json.loads(result.stdout)
    down = [n for n in report["nodes"] if not n["reachable"]]
    assert [n["address"] for n in down] == [victim]
    assert report["cluster"]["quorum"] is True
    table = turnstile(cluster, "status")
    assert "unreachable" in table.stdout


@pytest.mark.shared_cluster
def test_leadership_transfer_moves_the_leader(cluster: Cluster) -> None:
    before = cluster.leader()
    result = turnstile(cluster, "leader", "transfer")
    assert result.returncode == 0, result.stderr
    after = cluster.leader(timeout=20, exclude=before)
    assert after != before


def test_metrics_move_when_locks_are_taken_and_released(cluster: Cluster) -> None:
    leader = cluster.leader()

    def scrape() -> str:
        return cluster.metrics(leader)

    before = scrape()
    assert metric(before, "turnstile_raft_role", 'role="leader"') == 1.0
    with connect(cluster.addresses) as client:
        lock = client.lock("metered")
        assert lock.acquire()
        wait_until(lambda: metric(scrape(), "turnstile_locks_held") == 1.0)
        held = scrape()
        assert metric(held, "turnstile_sessions") >= 1.0
        time.sleep(0.05)
        lock.release()

    def released_everything() -> str | None:
        text = scrape()
        return text if metric(text, "turnstile_locks_held") == 0.0 else None

    after = wait_until(released_everything)
    released = 'cause="released"'
    assert metric(after, "turnstile_lock_releases_total", released) == (
        metric(before, "turnstile_lock_releases_total", released) + 1
    )
    assert metric(after, "turnstile_lock_hold_seconds_count", released) >= 1
    # Counted by the node that served the call: the client's first endpoint, which forwards
    # the call to the leader when it is a follower.
    acquires = 'code="OK",method="Locks.Acquire"'
    served = sum(
        metric(cluster.metrics(a), "turnstile_rpc_requests_total", acquires)
        for a in cluster.addresses
    )
    assert served >= 1
