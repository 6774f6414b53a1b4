"""The keep-alive protocol (cluster/keepalive.py) on a node over the in-memory Raft: a session
is renewed only by a leader that is still leader after the keep-alive arrived."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from inmem_raft import leading_node, open_session, run, until

from turnstile.cluster.commands import ExpireSession, Tick
from turnstile.cluster.errors import TurnstileError
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def test_keep_alives_keep_a_session_past_its_ttl_and_without_them_it_expires(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        kept, left = await open_session(node, 600), await open_session(node, 600)
        for _ in range(12):  # 1.2 s, twice the TTL; a renewal every sixth of it
            assert await node.keep_alives.renew(kept) == 600
            await asyncio.sleep(0.1)
        await until(lambda: left not in raft.state.sessions)
        assert kept in raft.state.sessions
        assert left not in raft.state.sessions
        expiries = [c.session for c in raft.applied if isinstance(c, ExpireSession)]
        assert expiries == [left]
        await node.stop()

    run(body)


def test_a_keep_alive_is_answered_only_after_a_barrier_commits_after_it_arrived(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        session = await open_session(node, 30_000)
        committed = len(raft.applied)
        raft.hold()
        renewing = asyncio.create_task(node.keep_alives.renew(session))
        await until(lambda: len(raft.held) == 1)
        await asyncio.sleep(0.05)
        assert not renewing.done(), "answered before leadership was confirmed"
        raft.commit_held()
        assert await renewing == 30_000
        assert [type(c) for c in raft.applied[committed:]] == [Tick]
        await node.stop()

    run(body)


def test_a_leader_deposed_during_the_barrier_does_not_renew(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        session = await open_session(node, 30_000)
        raft.hold()
        renewing = asyncio.create_task(node.keep_alives.renew(session))
        await until(lambda: len(raft.held) == 1)
        raft.depose()
        with pytest.raises(TurnstileError) as refused:
            await renewing
        assert refused.value.reason is Reason.NOT_LEADER
        await node.stop()

    run(body)


def test_a_session_whose_expiry_was_proposed_is_not_renewed(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        session = await open_session(node, 100)
        raft.hold()
        await until(lambda: any(isinstance(p.command, ExpireSession) for p in raft.held))
        renewing = asyncio.create_task(node.keep_alives.renew(session))
        await until(renewing.done)
        raft.commit_held()
        with pytest.raises(TurnstileError) as refused:
            await renewing
        assert refused.value.reason is Reason.SESSION_EXPIRED
        assert session not in raft.state.sessions
        await node.stop()

    run(body)


def test_unknown_sessions_and_followers_refuse(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        with pytest.raises(TurnstileError) as unknown:
            await node.keep_alives.renew(99)
        assert unknown.value.reason is Reason.SESSION_EXPIRED
        session = await open_session(node, 30_000)
        raft.depose()
        await until(lambda: not node.leading)
        with pytest.raises(TurnstileError) as follower:
            await node.keep_alives.renew(session)
        assert follower.value.reason is Reason.NOT_LEADER
        await node.stop()

    run(body)
