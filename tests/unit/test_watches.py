"""The watch history (``cluster/watches.py``): what it records, when it says "re-read", and
that a long poll is woken by a change."""

from __future__ import annotations

import asyncio

import pytest

from turnstile.cluster import group_commands as group
from turnstile.cluster.commands import Done, LockFreed, LockGranted
from turnstile.cluster.state import Applied
from turnstile.cluster.watches import Kind, WatchHistory

pytestmark = pytest.mark.unit

GROUP = (Kind.GROUP, "g")
LOCK = (Kind.LOCK, "L")


def joined(revision: int, member: str, name: str = "g") -> Applied:
    return Applied(Done(), (group.GroupChanged(name, group.MEMBER_JOINED, member, 1),), revision)


def quiet(revision: int) -> Applied:
    """An applied command that changed nothing watched (a tick)."""
    return Applied(Done(), (), revision)


def test_changes_after_a_revision_of_the_watched_keys_only() -> None:
    history = WatchHistory()
    history.observe(joined(1, "a"))
    history.observe(joined(2, "b", name="other"))
    history.observe(Applied(Done(), (LockGranted("L", 3, 9), LockFreed("L", 3, 9, "released")), 3))
    history.observe(quiet(3))
    answer = history.read({GROUP, LOCK}, after=1)
    assert answer.revision == 3 and not answer.compacted
    assert [(c.revision, c.key, c.change) for c in answer.changes] == [
        (3, LOCK, "granted"),
        (3, LOCK, "freed"),
    ]
    assert [c.member_id for c in history.read({GROUP}, after=0).changes] == ["a"]
    assert history.read({GROUP}, after=3).changes == ()


def test_the_history_is_complete_only_from_what_this_node_applied() -> None:
    history = WatchHistory()
    assert history.read({GROUP}, after=0).compacted  # nothing observed yet
    history.observe(quiet(7))  # a node that started from a snapshot at revision 7
    assert history.read({GROUP}, after=6).compacted
    assert not history.read({GROUP}, after=7).compacted
    history.observe(joined(8, "a"))
    history.observe(joined(12, "b"))  # a gap: a snapshot was installed
    assert history.read({GROUP}, after=8).compacted
    assert [c.member_id for c in history.read({GROUP}, after=11).changes] == ["b"]


def test_whole_revisions_are_dropped_past_the_bound() -> None:
    history = WatchHistory(keep=3)
    history.observe(joined(1, "a"))
    two_changes = (
        group.GroupChanged("g", group.MEMBER_JOINED, "b", 1),
        group.GroupChanged("g", group.MEMBER_JOINED, "c", 1),
    )
    history.observe(Applied(Done(), two_changes, 2))
    history.observe(joined(3, "d"))  # four changes: revision 1 goes
    assert history.read({GROUP}, after=0).compacted
    assert [c.member_id for c in history.read({GROUP}, after=1).changes] == ["b", "c", "d"]
    history.observe(joined(4, "e"))  # revision 2 goes whole, not half of it
    assert history.read({GROUP}, after=1).compacted
    assert [c.member_id for c in history.read({GROUP}, after=2).changes] == ["d", "e"]


def test_below_cluster_version_5_nothing_is_numbered_or_recorded() -> None:
    history = WatchHistory()
    history.observe(Applied(Done(), (LockGranted("L", 1, 1),), 0))
    assert history.read({LOCK}, after=0).compacted


def test_a_waiting_poll_is_woken_by_a_change() -> None:
    async def scenario() -> list[str]:
        history = WatchHistory()
        history.observe(quiet(1))
        waiting = asyncio.ensure_future(history.next_change(timeout=60))
        await asyncio.sleep(0)
        assert not waiting.done()
        history.observe(quiet(1))
        await asyncio.sleep(0)
        assert not waiting.done(), "woken without a change"
        history.observe(joined(2, "a"))
        await asyncio.wait_for(waiting, timeout=5)
        return [c.member_id for c in history.read({GROUP}, after=1).changes]

    assert asyncio.run(scenario()) == ["a"]
