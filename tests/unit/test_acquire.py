"""The blocking-acquire protocol (cluster/acquire.py) on a node over the in-memory Raft: what
a blocked request answers, and what the cluster keeps when its caller goes away."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from inmem_raft import InMemoryRaft, leading_node, open_session, run, until

from turnstile.cluster import acquire
from turnstile.cluster.commands import (
    CancelWait,
    Granted,
    NotAcquired,
    Release,
)
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.node import Node, RequestFields
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def request(session: int, seq: int) -> RequestFields:
    return {"session": session, "seq": seq, "acked": 0, "answered": ()}


def queue_of(raft: InMemoryRaft, name: str) -> list[tuple[int, int]]:
    lock = raft.state.locks.get(name)
    return [(w.session, w.seq) for w in lock.waiters] if lock else []


def holder_of(raft: InMemoryRaft, name: str) -> int | None:
    lock = raft.state.locks.get(name)
    return lock.holder.session if lock and lock.holder else None


async def release(node: Node, session: int, seq: int, name: str, token: int) -> None:
    await node.execute(lambda now: Release(now, session, seq, seq - 1, name=name, token=token))


@dataclass
class Contended:
    """Session ``a`` holds ``L`` (``held``); session ``b``'s acquire waits behind it."""

    a: int
    b: int
    held: Granted
    waiting: asyncio.Task[Granted | NotAcquired]


async def contended(node: Node, raft: InMemoryRaft, wait_ms: int = 60_000) -> Contended:
    a, b = await open_session(node), await open_session(node)
    held = await node.acquires.acquire("L", 0, 0, request(a, 1))
    assert isinstance(held, Granted)
    waiting = asyncio.create_task(node.acquires.acquire("L", 0, wait_ms, request(b, 1)))
    await until(lambda: queue_of(raft, "L") == [(b, 1)])
    return Contended(a, b, held, waiting)


def test_a_free_lock_is_granted_at_once(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        a = await open_session(node)
        result = await node.acquires.acquire("L", 0, 0, request(a, 1))
        assert isinstance(result, Granted) and result.token == 1
        assert holder_of(raft, "L") == a
        await node.stop()

    run(body)


def test_a_blocked_acquire_is_answered_by_the_hand_off(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        lock = await contended(node, raft)
        assert not lock.waiting.done()
        await release(node, lock.a, 2, "L", lock.held.token)
        granted = await lock.waiting
        assert isinstance(granted, Granted) and granted.token == lock.held.token + 1
        assert holder_of(raft, "L") == lock.b
        assert len(node.acquires) == 0
        await node.stop()

    run(body)


def test_a_grant_committed_with_the_acquire_is_not_missed(tmp_path: Path) -> None:
    """The waiter is registered before the Acquire is proposed: here the release that hands
    the lock over commits in the same burst as the Acquire that queued, before the protocol
    sees its Queued answer."""

    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        a, b = await open_session(node), await open_session(node)
        held = await node.acquires.acquire("L", 0, 0, request(a, 1))
        assert isinstance(held, Granted)
        raft.hold()
        waiting = asyncio.create_task(node.acquires.acquire("L", 0, 60_000, request(b, 1)))
        releasing = asyncio.create_task(release(node, a, 2, "L", held.token))
        await until(lambda: len(raft.held) == 2)
        raft.commit_held()
        await releasing
        granted = await asyncio.wait_for(waiting, 5)
        assert isinstance(granted, Granted), granted
        await node.stop()

    run(body)


def test_a_wait_that_runs_out_is_not_acquired(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        a, b = await open_session(node), await open_session(node)
        await node.acquires.acquire("L", 0, 0, request(a, 1))
        result = await node.acquires.acquire("L", 0, 50, request(b, 1))
        assert isinstance(result, NotAcquired)
        assert queue_of(raft, "L") == []
        await node.stop()

    run(body)


def test_a_wait_whose_end_is_not_committed_is_an_unknown_outcome_and_gives_no_grant_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leadership trouble: the Tick that ends the wait never commits. The answer is
    UNKNOWN_OUTCOME (a retry of the request id may have been granted), never "not
    acquired", and nothing proposed gives a grant back."""
    monkeypatch.setattr(acquire, "SERVER_WAIT_GRACE_S", 0.05)

    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        lock = await contended(node, raft, wait_ms=500)
        raft.hold()
        with pytest.raises(TurnstileError) as refused:
            await lock.waiting
        assert refused.value.reason is Reason.UNKNOWN_OUTCOME
        raft.commit_held()
        given_back = [c for c in raft.applied if isinstance(c, CancelWait) and c.release_grant]
        assert given_back == []
        await node.stop()

    run(body)


def test_a_caller_that_goes_away_withdraws_its_wait_but_never_a_grant(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        lock = await contended(node, raft)
        lock.waiting.cancel()
        await until(lambda: queue_of(raft, "L") == [])
        cancels = [c for c in raft.applied if isinstance(c, CancelWait)]
        assert [(c.session, c.acquire_seq, c.release_grant) for c in cancels] == [
            (lock.b, 1, False)
        ]
        await node.stop()

    run(body)


def test_a_stopping_node_leaves_the_wait_queued_for_the_next_leader(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        lock = await contended(node, raft)
        node.begin_shutdown()
        with pytest.raises(TurnstileError) as refused:
            await lock.waiting
        assert refused.value.reason is Reason.UNAVAILABLE
        await asyncio.sleep(0.05)
        assert queue_of(raft, "L") == [(lock.b, 1)]
        assert not [c for c in raft.applied if isinstance(c, CancelWait)]
        await node.stop()

    run(body)


def test_losing_leadership_answers_blocked_acquires_not_leader(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        lock = await contended(node, raft)
        raft.depose()
        with pytest.raises(TurnstileError) as refused:
            await lock.waiting
        assert refused.value.reason is Reason.NOT_LEADER
        assert len(node.acquires) == 0
        await node.stop()

    run(body)


def test_abandon_releases_a_grant_the_caller_gave_up_on(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        a = await open_session(node)
        await node.acquires.acquire("L", 0, 0, request(a, 1))
        result = await node.acquires.abandon("L", 1, request(a, 2))
        assert (result.removed, result.released) == (False, True)
        assert holder_of(raft, "L") is None
        await node.stop()

    run(body)


def test_an_acquire_reusing_the_request_id_of_another_command_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        a = await open_session(node)
        held = await node.acquires.acquire("L", 0, 0, request(a, 1))
        assert isinstance(held, Granted)
        await release(node, a, 2, "L", held.token)
        with pytest.raises(TurnstileError) as refused:
            await node.acquires.acquire("M", 0, 0, request(a, 2))
        assert refused.value.reason is Reason.INVALID_ARGUMENT
        await node.stop()

    run(body)
