"""The node (cluster/node.py) over the in-memory Raft: taking office, the term stamps, the
leader's duties across a change of office, and the cluster version gate."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest
from inmem_raft import InMemoryRaft, leading_node, node_config, open_session, run, until
from pysyncobj import FAIL_REASON

from turnstile.cluster.commands import (
    Abandon,
    ExpireSession,
    SetClusterVersion,
    SetMember,
    Tick,
)
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.node import Node
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def test_a_new_leader_serves_only_once_its_first_entry_is_applied(tmp_path: Path) -> None:
    async def body() -> None:
        node = Node(node_config(tmp_path), replica_factory=InMemoryRaft)
        raft = node.raft
        assert isinstance(raft, InMemoryRaft)
        node.start()
        raft.hold()
        raft.elect()
        await until(lambda: len(raft.held) == 1)
        with pytest.raises(TurnstileError, match="taking office") as refused:
            node.require_leader()
        assert refused.value.reason is Reason.NOT_LEADER
        raft.commit_held()
        await until(lambda: node.leading)
        # Its Tick, then the registry seeded from the config, all in its term.
        assert [type(c) for c in raft.applied[:2]] == [Tick, SetMember]
        assert {c.term for c in raft.applied} == {1}
        await node.stop()

    run(body)


def test_every_command_is_stamped_with_the_term_of_office(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        raft.depose()
        await until(lambda: not node.leading)
        raft.elect()
        await until(lambda: node.leading)
        await open_session(node)
        assert raft.applied[-1].term == 3
        await node.stop()

    run(body)


def test_a_session_without_keep_alives_is_expired_by_the_leader(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        session = await open_session(node, ttl_ms=100)
        await until(lambda: session not in raft.state.sessions)
        assert [c.session for c in raft.applied if isinstance(c, ExpireSession)] == [session]
        await node.stop()

    run(body)


def test_a_stale_expiry_that_fails_does_not_expire_the_session_in_a_new_office(
    tmp_path: Path,
) -> None:
    """Seen in the chaos suite: a leader paused past the TTL proposed ExpireSession on resume;
    before the proposal failed the node had been elected again and given every session a
    fresh TTL. The failure handler then marked the session due at once in the new office's
    tracker, and the new leader expired it."""

    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        session = await open_session(node, ttl_ms=200)
        raft.hold()
        await until(lambda: any(isinstance(p.command, ExpireSession) for p in raft.held))
        stale = raft.take_held(ExpireSession)
        raft.depose()
        await until(lambda: not node.leading)
        raft.commit_held()
        raft.elect()
        await until(lambda: node.leading)
        new_office = node.tracker.next_deadline()
        # The old office's proposal fails only now, in the new office.
        stale.callback(None, FAIL_REASON.LEADER_CHANGED)
        for _ in range(20):  # the failure crosses the bridge and reaches the old duty
            await asyncio.sleep(0)
        assert node.tracker.take_due(time.monotonic()) == [], "the fresh TTL was cut short"
        assert node.tracker.next_deadline() == new_office
        assert session in raft.state.sessions
        await node.stop()

    run(body)


def test_a_failed_expiry_in_the_same_office_is_proposed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        session = await open_session(node, ttl_ms=100)
        node.config = dataclasses.replace(
            node.config, timing=dataclasses.replace(node.config.timing, commit_timeout_ms=50)
        )
        raft.hold()
        await until(lambda: any(isinstance(p.command, ExpireSession) for p in raft.held))
        # Not committed within the commit timeout: proposed once more.
        await until(
            lambda: sum(isinstance(p.command, ExpireSession) for p in raft.held) == 2,
        )
        raft.commit_held()
        assert session not in raft.state.sessions
        await node.stop()

    run(body)


def test_a_duty_of_a_lost_office_proposes_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        session = await open_session(node, ttl_ms=100)
        raft.depose()
        committed = len(raft.applied)
        await node._expire(session)
        assert raft.applied[committed:] == []
        await node.stop()

    run(body)


def test_a_command_the_cluster_version_does_not_allow_is_not_proposed(tmp_path: Path) -> None:
    async def body() -> None:
        node = Node(node_config(tmp_path), replica_factory=InMemoryRaft)
        raft = node.raft
        assert isinstance(raft, InMemoryRaft)
        raft.other_versions = {"127.0.0.1:7102": 1}  # a member of the first release
        node.start()
        raft.elect()
        await until(lambda: node.leading)
        session = await open_session(node)
        with pytest.raises(TurnstileError, match="needs cluster version 2") as refused:
            await node.execute(lambda now: Abandon(now, session, 2, 0, name="L", acquire_seq=1))
        assert refused.value.reason is Reason.FAILED_PRECONDITION
        assert not any(isinstance(c, Abandon | SetClusterVersion) for c in raft.applied)
        raft.other_versions = {"127.0.0.1:7102": 2}
        await until(lambda: raft.state.cluster_version == 2)
        await node.stop()

    run(body)
