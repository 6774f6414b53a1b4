"""The leader duties of cluster/node.py across a change of office, with a fake Raft adapter:
what a duty of an earlier leadership may still do when its proposal comes back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from turnstile.cluster.commands import Command, ExpireSession
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.node import Node
from turnstile.cluster.sessions import SessionTracker
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

TTL_MS = 3_000


@dataclass
class _Options:
    term_fence: bool = True


@dataclass
class _Raft:
    """The adapter as the duties see it: the current term and whether this node leads."""

    term: int
    is_leader: bool = True
    options: _Options = field(default_factory=_Options)


def _node(term: int) -> Node:
    """A Node leading in ``term`` with one tracked session, built around fakes (no sockets)."""
    node = Node.__new__(Node)
    node.raft = _Raft(term)  # type: ignore[assignment]
    node.tracker = SessionTracker()
    node.tracker.reset([(7, TTL_MS)], time.monotonic())
    node._leading = True
    node._office_term = term
    node._base_clock = 0
    node._base_mono = time.monotonic()
    return node


def test_a_stale_expiry_that_fails_does_not_expire_the_session_in_a_new_office() -> None:
    """Seen in the chaos suite: a leader paused past the TTL proposed ExpireSession on resume;
    before the proposal failed (UNKNOWN_OUTCOME after the commit timeout) the node had been
    elected again and given every session a fresh TTL. The failure handler then marked the
    session due at once in the new office's tracker, and the new leader expired it."""
    node = _node(term=18)
    proposed: list[Command] = []

    async def submit(command: Command) -> Any:
        proposed.append(command)
        # While the stale proposal waits, this node loses office and takes it again.
        node._office_term = node.raft.term = 21
        node.tracker.reset([(7, TTL_MS)], time.monotonic())
        raise TurnstileError(Reason.UNKNOWN_OUTCOME, "not committed within 5s")

    node._submit = submit  # type: ignore[method-assign]
    asyncio.run(node._expire(7))
    assert proposed == [ExpireSession(proposed[0].now, 7, term=18)]
    assert node.tracker.take_due(time.monotonic()) == [], "the fresh TTL was cut short"
    assert node.tracker.is_live(7)


def test_a_failed_expiry_in_the_same_office_is_proposed_again() -> None:
    node = _node(term=5)

    async def submit(command: Command) -> Any:
        raise TurnstileError(Reason.UNKNOWN_OUTCOME, "not committed within 5s")

    node._submit = submit  # type: ignore[method-assign]
    assert node.tracker.take_due(time.monotonic() + TTL_MS / 1000) == [7]
    asyncio.run(node._expire(7))
    assert node.tracker.take_due(time.monotonic()) == [7]


def test_a_duty_of_a_lost_office_proposes_nothing() -> None:
    node = _node(term=5)
    node.raft.term = 6  # type: ignore[misc]
    proposed: list[Command] = []

    async def submit(command: Command) -> Any:
        proposed.append(command)

    node._submit = submit  # type: ignore[method-assign]
    asyncio.run(node._expire(7))
    assert proposed == []
