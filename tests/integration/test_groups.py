"""Groups, elections and watches through the client library, against a real cluster."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, running, wait_until
from tests.integration.ready import wait_for_groups
from turnstile.client import (
    ChangeType,
    Client,
    FailedPreconditionError,
    NotFoundError,
    SessionState,
    Watch,
    WatchKind,
    aio,
    connect,
)

pytestmark = pytest.mark.integration

TURNSTILE = (sys.executable, "-m", "turnstile.cluster")


@pytest.fixture
def groups_cluster(cluster: Cluster) -> Cluster:
    wait_for_groups(cluster)
    return cluster


@pytest.fixture
def clients(groups_cluster: Cluster) -> Iterator[list[Client]]:
    cluster = groups_cluster
    opened = [connect(cluster.addresses, session_ttl=5, name=f"c{i}") for i in range(3)]
    try:
        yield opened
    finally:
        for client in opened:
            client.close()


@pytest.mark.shared_cluster
def test_join_leave_members_and_capabilities(clients: list[Client]) -> None:
    a, b, _ = clients
    group = a.group("crew")
    assert group.create() is True
    assert a.group("crew").create() is False
    assert group.join("w1", b"cap-1") is True
    assert b.group("crew").join("w2") is True
    assert b.group("crew").join("w1") is False  # the id is taken, by another session
    members = group.members()
    assert sorted(members) == ["w1", "w2"]
    assert members["w1"].capabilities == b"cap-1"
    assert members["w1"].session_id == a.session().id
    assert members["w2"].session_id == b.session().id
    assert members["w1"].client_name == "c0"
    assert b.group("crew").update("w1", b"theirs") is False  # not b's member
    assert group.update("w1", b"cap-2") is True
    assert group.members()["w1"].capabilities == b"cap-2"
    with pytest.raises(FailedPreconditionError):
        group.delete()
    assert group.leave("w2") is True  # whichever session joined it
    assert group.leave("w2") is False
    assert [g.name for g in a.groups("cre")] == ["crew"]
    assert group.leave("w1") is True
    group.delete()
    with pytest.raises(NotFoundError):
        group.members()
    assert a.groups("cre") == []


@pytest.mark.shared_cluster
def test_a_member_leaves_when_its_session_is_closed_or_expires(groups_cluster: Cluster) -> None:
    cluster = groups_cluster
    with (
        connect(cluster.addresses, session_ttl=5) as watcher,
        connect(cluster.addresses, session_ttl=5) as closing,
        connect(cluster.addresses, session_ttl=2, keep_alive=False) as silent,
    ):
        group = watcher.group("g")
        group.create()
        closing.group("g").join("closing")
        silent.group("g").join("silent")
        watch = group.watch(timeout=30)
        watch.poll()
        assert sorted(watch.tracker.members) == ["closing", "silent"]
        closing.close()
        left = {c.member_id: c.cause for c in _take(watch, 2)}
        # the silent client never keeps its session alive: it expires within its TTL
        assert left == {"closing": "session_closed", "silent": "session_expired"}
        assert group.members() == {}
        assert silent.session().state is SessionState.CONNECTED  # a new session now


@pytest.mark.shared_cluster
def test_keep_alive_false_lives_on_the_callers_keep_alives(groups_cluster: Cluster) -> None:
    cluster = groups_cluster
    with connect(cluster.addresses, session_ttl=2, keep_alive=False) as client:
        client.group("kept").create()
        client.group("kept").join("me")
        session = client.session()
        watch = client.group("kept").watch()
        watch.poll()
        # three TTLs of keep-alives called by the caller alone
        for _ in range(6):
            assert client.keep_alive() == pytest.approx(2 / 3)
            assert watch.poll(timeout=1.0) == []
        assert client.session() is session
        assert "me" in client.group("kept").members()


@pytest.mark.shared_cluster
def test_election_hands_off_in_order_with_increasing_tokens(clients: list[Client]) -> None:
    first, second, third = (c.election("leader", member_id=f"m{i}") for i, c in enumerate(clients))
    observer = clients[0].election("leader").observe(timeout=30)
    observer.poll()
    assert observer.tracker.leader is None
    lead1 = first.campaign(timeout=10)
    with pytest.raises(TimeoutError):
        second.campaign(timeout=0.2)  # stays queued
    elected = threading.Event()
    won: list[int] = []

    def third_campaigns() -> None:
        won.append(third.campaign().token)
        elected.set()

    thread = threading.Thread(target=third_campaigns, daemon=True)
    thread.start()
    wait_until(lambda: len(first.candidates()) == 3, timeout=30)
    assert [c.member_id for c in first.candidates()] == ["m0", "m1", "m2"]
    assert first.leader() is not None
    assert first.leader().token == lead1.token  # type: ignore[union-attr]
    assert not elected.is_set()
    assert lead1.resign() is True
    lead2 = second.campaign(timeout=10)  # elected in the resign's step
    assert lead2.token > lead1.token
    assert not elected.is_set()  # third is still queued behind
    with lead2:
        pass  # resigns on exit
    thread.join(timeout=60)
    assert elected.is_set()
    assert won[0] > lead2.token
    seen = [(c.type, c.member_id, c.token) for c in _take(observer, 5)]
    assert seen == [
        (ChangeType.ELECTED, "m0", lead1.token),
        (ChangeType.RESIGNED, "m0", lead1.token),
        (ChangeType.ELECTED, "m1", lead2.token),
        (ChangeType.RESIGNED, "m1", lead2.token),
        (ChangeType.ELECTED, "m2", won[0]),
    ]


def _take(watch: object, count: int) -> list:
    found: list = []
    for change in watch:  # type: ignore[attr-defined]
        found.append(change)
        if len(found) == count:
            break
    return found


def test_watches_see_each_change_once_in_order_over_a_leader_kill(groups_cluster: Cluster) -> None:
    cluster = groups_cluster
    with (
        connect(cluster.addresses, session_ttl=10) as writer,
        connect(cluster.addresses, session_ttl=10) as other,
    ):
        group = writer.group("followed")
        group.create()
        watch = writer.group("followed").watch(timeout=60)
        watch.poll()
        leaderships = writer.election("followed").observe(timeout=60)
        leaderships.poll()
        seen = []
        for i in range(5):
            group.join(f"a{i}")
        seen += _take(watch, 5)
        first = writer.election("followed", member_id="w").campaign(timeout=10)
        elected = _take(leaderships, 1)
        leader = cluster.leader()
        cluster.nodes[cluster.index_of(leader)].kill()
        for i in range(5):
            group.join(f"b{i}")
        group.leave("a0")
        seen += _take(watch, 6)
        first.resign()
        second = other.election("followed", member_id="o").campaign(timeout=10)
        elected += _take(leaderships, 2)
        revisions = [c.revision for c in seen]
        assert revisions == sorted(set(revisions)), "a change seen twice or out of order"
        assert [(c.type, c.member_id) for c in seen] == [
            *((ChangeType.JOINED, f"a{i}") for i in range(5)),
            *((ChangeType.JOINED, f"b{i}") for i in range(5)),
            (ChangeType.LEFT, "a0"),
        ]
        assert [(c.type, c.member_id, c.token) for c in elected] == [
            (ChangeType.ELECTED, "w", first.token),
            (ChangeType.RESIGNED, "w", first.token),
            (ChangeType.ELECTED, "o", second.token),
        ]
        assert second.token > first.token
        assert watch.poll() == [] and leaderships.poll() == []
        assert sorted(watch.tracker.members) == sorted(group.members())


@pytest.mark.shared_cluster
def test_the_raw_watch_follows_revisions(clients: list[Client]) -> None:
    a = clients[0]
    a.group("raw").create()
    start = a.group("raw").describe().revision
    a.group("raw").join("x")
    a.election("raw").campaign(timeout=10)
    result = a.watch([(WatchKind.GROUP, "raw"), (WatchKind.ELECTION, "raw")], start, timeout=5)
    assert [(c.kind, c.type) for c in result.changes] == [
        (WatchKind.GROUP, ChangeType.JOINED),
        (WatchKind.ELECTION, ChangeType.ELECTED),
    ]
    assert not result.compacted
    later = a.watch([(WatchKind.GROUP, "raw")], result.revision, timeout=0)
    assert later.changes == ()
    assert later.revision >= result.revision


@pytest.mark.shared_cluster
def test_the_asyncio_twins(groups_cluster: Cluster) -> None:
    cluster = groups_cluster

    async def scenario() -> None:
        async with (
            aio.connect(cluster.addresses, session_ttl=5) as a,
            aio.connect(cluster.addresses, session_ttl=5, keep_alive=False) as b,
        ):
            group = a.group("async")
            assert await group.create()
            watch = group.watch(timeout=30)
            await watch.poll()
            assert await b.group("async").join("b1", b"x")
            await b.keep_alive()
            change = await watch.__anext__()
            assert (change.type, change.member_id, change.capabilities) == (
                ChangeType.JOINED,
                "b1",
                b"x",
            )
            assert (await group.members())["b1"].capabilities == b"x"
            leadership = await a.election("async").campaign(timeout=10)
            async with leadership:
                leader = await b.election("async").leader()
                assert leader is not None and leader.token == leadership.token
            assert await b.election("async").leader() is None
            assert [g.name for g in await a.groups("async")] == ["async"]

    asyncio.run(scenario())


def test_a_watch_whose_history_is_gone_reads_again_and_reports_the_difference(
    groups_cluster: Cluster, tmp_path: Path
) -> None:
    """A restored cluster's nodes keep no history from before the restore: a watch resumed
    there from an older revision is answered ``compacted``, re-reads the group and reports
    what changed meanwhile (the restore ended every session, so every member left)."""
    cluster = groups_cluster
    with connect(cluster.addresses, session_ttl=60) as source:
        group = source.group("resumed")
        group.create()
        group.join("a")
        group.join("b")
        watch = group.watch()
        watch.poll()
        assert sorted(watch.tracker.members) == ["a", "b"]
        group.join("c")  # after the watch's revision: its JOINED is never seen
        backup = tmp_path / "backup.snapshot"
        endpoints = ",".join(cluster.addresses)
        saved = subprocess.run(
            [*TURNSTILE, "snapshot", "save", str(backup), "--endpoints", endpoints],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert saved.returncode == 0, saved.stderr
    cluster.stop_all()
    restored = Cluster(tmp_path / "restored")
    for path in restored.paths:
        done = subprocess.run(
            [*TURNSTILE, "snapshot", "restore", str(backup), "--config", str(path)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    with running(restored), connect(restored.addresses, session_ttl=60) as target:
        wait_for_groups(restored)
        resumed = Watch(target, watch.tracker, timeout=30, after_revision=watch.revision)
        made_up = resumed.poll()
        assert [(c.type, c.member_id, c.cause) for c in made_up] == [
            (ChangeType.LEFT, "a", "compacted"),
            (ChangeType.LEFT, "b", "compacted"),
        ]
        assert resumed.tracker.members == {}
        target.group("resumed").join("d")
        (joined,) = resumed.poll(timeout=30)
        assert (joined.type, joined.member_id, joined.cause) == (ChangeType.JOINED, "d", "")
