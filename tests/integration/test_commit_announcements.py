"""The leader's commit announcement: followers that hold every entry are told the new commit
index at once, and do not answer it (the answer would repeat the ack the leader just counted).

Three real pysyncobj replicas in this process, on loopback, with logs on disk.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import wait_until
from tests.integration.replicas import (
    applied_by,
    peer_addresses,
    replica,
    start_and_elect,
    submit_ticks,
)
from turnstile.cluster import pysyncobj_fixes
from turnstile.cluster.raft import RaftNode

pytestmark = pytest.mark.integration

#: Commands committed one at a time, each its own log entry.
COMMANDS = 50
#: Long enough that heartbeats are few next to the commands' messages.
HEARTBEAT_S = 1.0


def _nodes(directory: Path) -> list[RaftNode]:
    addresses = peer_addresses()
    return [
        replica(
            directory,
            addresses,
            i,
            group_commands=False,
            heartbeat_s=HEARTBEAT_S,
            election_timeout_min_s=4 * HEARTBEAT_S,
            election_timeout_max_s=8 * HEARTBEAT_S,
        )
        for i in range(3)
    ]


def _counting_messages(node: RaftNode) -> Counter[str]:
    """Counts the peer messages ``node`` handles from now on, by type (a successful
    ``next_node_idx`` as ``ack``)."""
    counts: Counter[str] = Counter()
    dispatch = node._dispatch

    def counting(sender: Any, message: dict[str, Any]) -> None:
        kind = message.get("type", "?")
        if kind == "next_node_idx" and message.get("success"):
            kind = "ack"
        elif kind == "append_entries" and message.get(pysyncobj_fixes.COMMIT_ONLY):
            kind = "commit_only"
        counts[kind] += 1
        dispatch(sender, message)

    node._dispatch = counting  # type: ignore[method-assign]
    return counts


def _commit_one_at_a_time(leader: RaftNode, followers: list[RaftNode], commands: int) -> None:
    """Commits ``commands`` one after the other, each once the followers applied the one
    before (as a lock hand-off does: the next release waits for a round trip)."""
    for _ in range(commands):
        submit_ticks(leader, 1, wait=True)
        wait_until(functools.partial(applied_by, followers, leader.applied_index), 10, 0.001)


def test_followers_do_not_answer_a_commit_announcement(tmp_path: Path) -> None:
    """One command at a time, each after the followers applied the last: each entry is one
    AppendEntries and one ack per follower, and one commit announcement per follower (which
    is what the followers apply from, with a 1 s heartbeat), unanswered. Answering it
    (pysyncobj answers every AppendEntries) cost the leader a second ack per follower per
    entry: ~4 acks per command instead of ~2."""
    nodes = _nodes(tmp_path)
    try:
        leader = start_and_elect(nodes)
        followers = [n for n in nodes if n is not leader]
        _commit_one_at_a_time(leader, followers, 1)
        received = _counting_messages(leader)
        told = [_counting_messages(f) for f in followers]
        _commit_one_at_a_time(leader, followers, COMMANDS)
        unanswered = sum(f.commit_announcements_unanswered for f in followers)
    finally:
        for node in nodes:
            node.stop()
    print(f"leader received {dict(received)}; followers {[dict(t) for t in told]}")
    # Each follower applied nearly every entry from an announcement ...
    assert all(t["commit_only"] >= COMMANDS - 5 for t in told)
    assert unanswered >= 2 * (COMMANDS - 5)
    # ... and the leader heard one ack per follower per entry, plus those of a few heartbeats.
    assert received["ack"] <= 2 * COMMANDS + 2 * 4


def test_a_commit_announcement_that_does_not_match_is_answered(tmp_path: Path) -> None:
    """A follower whose log does not hold the announced entry answers as for any other
    AppendEntries: "resend from here", so the leader repairs its log."""
    nodes = _nodes(tmp_path)
    try:
        leader = start_and_elect(nodes)
        follower = next(n for n in nodes if n is not leader)
        _commit_one_at_a_time(leader, [follower], 3)
        sent: list[dict[str, Any]] = []
        follower._stopping.set()
        follower._wake()
        follower._thread.join(timeout=10)
        follower.replica._SyncObj__transport.send = lambda _node, m: sent.append(m)
        unanswered = follower.commit_announcements_unanswered
        last = follower.replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal
        follower._on_message(
            follower.replica._SyncObj__raftLeader,  # pysyncobj internal
            {
                "type": "append_entries",
                "term": follower.term,
                "commit_index": last + 5,
                "entries": [],
                "prevLogIdx": last + 5,  # entries this follower has not got
                "prevLogTerm": follower.term,
                pysyncobj_fixes.COMMIT_ONLY: True,
            },
        )
    finally:
        for node in nodes:
            node.stop()
    assert [(m["type"], m["success"], m["reset"]) for m in sent] == [("next_node_idx", False, True)]
    assert follower.commit_announcements_unanswered == unanswered
