"""The nextIndex guard: without it pysyncobj truncates already-applied entries under load.

Three real pysyncobj replicas in this process, on loopback, with journals on disk. A late
successful ack of an older batch sets the leader's nextIndex for that follower backwards; the
leader then resends entries the follower has, and the follower truncates already-applied
entries (CRITICAL "truncating already-applied log entries"). Non-batch mode puts many batches
in flight per follower, which makes that likely under load; the guard must make it zero.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pysyncobj import FAIL_REASON
from pysyncobj.syncobj import _COMMAND_TYPE

from tests.integration.cluster import wait_until
from tests.integration.replicas import (
    applied_by,
    peer_addresses,
    replica,
    start_and_elect,
    submit_ticks,
)
from turnstile.cluster import pysyncobj_fixes
from turnstile.cluster.codec import encode_command
from turnstile.cluster.commands import Insert, Tick
from turnstile.cluster.raft import SUCCESS, RaftNode

pytestmark = pytest.mark.integration

#: Commands per load run; CI runs 2,000, a soak sets ``TURNSTILE_RAFT_GUARD_COMMANDS`` higher.
COMMANDS = int(os.environ.get("TURNSTILE_RAFT_GUARD_COMMANDS", "2000"))
#: Divergent entries of the deposed leader in the log repair test: 100 in CI (without fast
#: repair that is still over 50 round trips against at most 2 with it), more with
#: ``TURNSTILE_RAFT_GUARD_DIVERGENT`` (300 before; each costs a heartbeat without fast repair).
DIVERGENT = int(os.environ.get("TURNSTILE_RAFT_GUARD_DIVERGENT", "100"))


class _CriticalCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.CRITICAL)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def critical() -> Iterator[_CriticalCounter]:
    counter = _CriticalCounter()
    logger = logging.getLogger("pysyncobj")
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)


def _replicas(directory: Path, guard: bool, batch: bool, **options: Any) -> list[RaftNode]:
    addresses = peer_addresses()
    return [
        _replica(directory, addresses, i, next_index_guard=guard, batch=batch, **options)
        for i in range(3)
    ]


def _replica(
    directory: Path, addresses: list[str], i: int, fast_repair: bool = True, **options: Any
) -> RaftNode:
    """Replica ``i`` of the cluster at ``addresses`` (again, on its own data, if restarted)."""
    # These tests count log entries: one per command.
    return replica(
        directory, addresses, i, fast_log_repair=fast_repair, group_commands=False, **options
    )


def _freeze(node: RaftNode) -> None:
    """Stops the node's loop (not the node), so nothing but the test touches its indices."""
    node._stopping.set()
    node._wake()
    node._thread.join(timeout=10)


def _load(directory: Path, guard: bool, batch: bool, commands: int) -> None:
    """Runs ``commands`` proposals in flight at once and waits until every replica has them.

    The load starves the replicas' loops (iterations of over a second were seen in CI), so
    the election timeouts are longer than a stall: an election would fail proposals with
    NOT_LEADER, which is not what this load is about.
    """
    nodes = _replicas(
        directory, guard, batch, election_timeout_min_s=3.0, election_timeout_max_s=6.0
    )
    try:
        leader = start_and_elect(nodes)
        done = threading.Semaphore(0)
        failures: list[int] = []

        def finished(_result: object, error: int) -> None:
            if error != SUCCESS:
                failures.append(error)
            done.release()

        for i in range(commands):
            leader.submit(encode_command(Tick(i)), finished, leader.term)
        for _ in range(commands):
            assert done.acquire(timeout=60)
        assert not failures
        target = leader.applied_index
        wait_until(lambda: all(n.applied_index >= target for n in nodes), timeout=20)
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.parametrize("guard", [False, True])
def test_a_late_ack_moves_next_index_backwards_only_without_the_guard(
    tmp_path: Path, guard: bool
) -> None:
    """The mechanism, deterministically: a leader with batches up to 20 in flight to a
    follower gets the (late) ack of the batch ending at 10."""
    nodes = _replicas(tmp_path, guard=guard, batch=True)
    try:
        leader = start_and_elect(nodes)
        _freeze(leader)
        replica = leader.replica
        next_index = replica._SyncObj__raftNextIndex
        match_index = replica._SyncObj__raftMatchIndex
        follower = next(iter(next_index))
        next_index[follower], match_index[follower] = 21, 5
        ack = {"type": "next_node_idx", "next_node_idx": 11, "success": True, "reset": False}
        leader._on_message(follower, ack)
        assert match_index[follower] == 10
        assert next_index[follower] == (21 if guard else 11)
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.parametrize("guard", [False, True])
def test_a_later_reset_cannot_undo_an_earlier_one_only_with_the_guard(
    tmp_path: Path, guard: bool
) -> None:
    """Two batches were in flight to a follower with a divergent tail: the first is answered
    "mismatch: resend from 12", the second "my log ends at 17". Without the guard the second
    wins, the leader resends the mismatching batch, and that repeats forever."""
    nodes = _replicas(tmp_path, guard=guard, batch=True)
    try:
        leader = start_and_elect(nodes)
        _freeze(leader)
        next_index = leader.replica._SyncObj__raftNextIndex  # pysyncobj internal
        follower = next(iter(next_index))
        next_index[follower] = 40
        for resend_from in (12, 18):
            reset = {"type": "next_node_idx", "next_node_idx": resend_from, "success": False}
            leader._on_message(follower, {**reset, "reset": True})
        assert next_index[follower] == (12 if guard else 18)
    finally:
        for node in nodes:
            node.stop()


def test_critical_count_under_load_without_and_with_the_guard(
    tmp_path: Path, critical: _CriticalCounter
) -> None:
    """Prints the counts. Without the guard the count depends on how late acks arrive (0 on
    a quiet machine, dozens under CPU contention); with it, it must be zero."""
    _load(tmp_path / "unguarded", guard=False, batch=False, commands=COMMANDS)
    unguarded = len(critical.messages)
    critical.messages.clear()
    _load(tmp_path / "unbatched", guard=True, batch=False, commands=COMMANDS)
    _load(tmp_path / "batched", guard=True, batch=True, commands=4 * COMMANDS)
    print(
        f"CRITICAL 'truncating already-applied' lines: without guard {unguarded} "
        f"in {COMMANDS} commands; with guard {len(critical.messages)} in {5 * COMMANDS}"
    )
    assert critical.messages == []


@pytest.mark.parametrize("fast_repair", [False, True])
def test_a_deposed_leaders_divergent_entries_are_repaired_in_one_round_trip(
    tmp_path: Path, critical: _CriticalCounter, fast_repair: bool
) -> None:
    """A leader cut off from both followers appends entries nobody commits; the others elect
    and commit entries at the same indices. When it is back and a leader is elected with it
    connected, its log must be repaired: pysyncobj alone walks back one entry per round trip
    (one per heartbeat); with fast repair the follower answers with its commit index instead."""
    divergent = DIVERGENT
    addresses = peer_addresses()

    def replica(i: int) -> RaftNode:
        return _replica(tmp_path, addresses, i, fast_repair)

    nodes = [replica(i) for i in range(3)]
    running: list[RaftNode] = []

    def start(i: int) -> RaftNode:
        nodes[i] = replica(i) if nodes[i] in stopped else nodes[i]
        nodes[i].start()
        running.append(nodes[i])
        return nodes[i]

    def stop(node: RaftNode) -> None:
        running.remove(node)
        stopped.append(node)
        node.stop()

    def leader_among(*indices: int) -> RaftNode:
        return wait_until(lambda: next((nodes[i] for i in indices if nodes[i].is_leader), None))

    stopped: list[RaftNode] = []
    try:
        for i in range(3):
            start(i)
        deposed = leader_among(0, 1, 2)
        submit_ticks(deposed, 10, wait=True)
        d = nodes.index(deposed)
        a, b = (i for i in range(3) if i != d)
        stop(nodes[a])
        stop(nodes[b])
        appended = deposed.commit_index + divergent
        submit_ticks(deposed, divergent, wait=False)
        log_index = deposed.replica._SyncObj__getCurrentLogIndex  # pysyncobj internal
        wait_until(lambda: log_index() >= appended, timeout=20)
        stop(deposed)
        start(a)
        start(b)
        first = leader_among(a, b)
        submit_ticks(first, divergent + 50, wait=True)
        stop(first)
        returning = start(d)
        second = nodes[b if first is nodes[a] else a]
        wait_until(lambda: second.is_leader, timeout=30)
        target = second.replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal
        wait_until(lambda: returning.applied_index >= target, timeout=120)
    finally:
        for node in list(running):
            stop(node)
    print(f"fast repair {fast_repair}: {returning.log_repair_replies} repair round trips")
    assert critical.messages == []
    if fast_repair:
        assert returning.log_repair_replies <= 2
    else:
        assert returning.log_repair_replies > divergent / 2


@pytest.mark.parametrize("guarded", [False, True])
def test_a_late_append_below_the_applied_index_truncates_nothing(
    tmp_path: Path, critical: _CriticalCounter, guarded: bool
) -> None:
    """A follower gets a late AppendEntries resending entries it has applied (as after a reply
    that crossed a newer one). pysyncobj alone truncates and re-appends them (CRITICAL); the
    applied-entries guard drops what is already applied."""
    nodes = _replicas(tmp_path, guard=True, batch=True)
    try:
        leader = start_and_elect(nodes)
        submit_ticks(leader, 50, wait=True)
        follower = next(n for n in nodes if n is not leader)
        wait_until(lambda: follower.applied_index >= leader.commit_index, timeout=20)
        _freeze(follower)
        replica = follower.replica
        entries_from = replica._SyncObj__getEntries  # pysyncobj internal
        applied = follower.applied_index
        last_index = replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal
        late = {
            "type": "append_entries",
            "term": follower.term,
            "commit_index": applied,
            "prevLogIdx": applied - 21,
            "prevLogTerm": entries_from(applied - 21, 1)[0][2],
            "entries": entries_from(applied - 20, 10),
        }
        sender = replica._SyncObj__raftLeader  # pysyncobj internal
        handle = follower._on_message if guarded else follower._original_on_message
        handle(sender, late)
        after = replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal
    finally:
        for node in nodes:
            node.stop()
    if guarded:
        assert (critical.messages, after, follower.late_appends_rewritten) == ([], last_index, 1)
    else:
        assert len(critical.messages) == 1 and after == applied - 11  # cut to the resent ones


_NO_OP = bytes([_COMMAND_TYPE.NO_OP])  # pysyncobj internal: its log entry type


class _Recorded:
    """What a frozen node sent and which log suffixes pysyncobj deleted."""

    def __init__(self, node: RaftNode) -> None:
        self.sent: list[dict[str, Any]] = []
        self.deleted_from: list[int] = []
        replica = node.replica
        delete = replica._SyncObj__deleteEntriesFrom  # pysyncobj internal

        def deleting(index: int) -> None:
            self.deleted_from.append(index)
            delete(index)

        replica._SyncObj__deleteEntriesFrom = deleting  # pysyncobj internal
        replica._SyncObj__transport.send = lambda _node, message: self.sent.append(message)


def _log_of(node: RaftNode) -> list[tuple[Any, int, int]]:
    return list(node.replica._SyncObj__getEntries(1))  # pysyncobj internal: the whole log


def _acknowledged_not_applied(
    nodes: list[RaftNode], unapplied: int
) -> tuple[RaftNode, int, list[tuple[Any, int, int]]]:
    """Freezes a caught-up follower, then hands it ``unapplied`` more entries of the leader as
    the leader does (it acknowledges them); its loop is stopped, so it applies none of them.
    Returns the follower, its last applied index and the entries it holds past it."""
    leader = start_and_elect(nodes)
    submit_ticks(leader, 20, wait=True)
    follower = next(n for n in nodes if n is not leader)
    wait_until(lambda: follower.applied_index >= leader.commit_index, timeout=20)
    _freeze(follower)
    applied = follower.applied_index
    assert follower.replica._SyncObj__getCurrentLogIndex() == applied  # pysyncobj internal
    submit_ticks(leader, unapplied, wait=True)  # the leader commits them with the other follower
    entries = leader.replica._SyncObj__getEntries(applied + 1, unapplied)  # pysyncobj internal
    previous_term = follower.replica._SyncObj__getEntries(applied, 1)[0][2]  # pysyncobj internal
    recorded = _Recorded(follower)
    follower._on_message(
        follower.replica._SyncObj__raftLeader,  # pysyncobj internal
        {
            "type": "append_entries",
            "term": follower.term,
            "commit_index": applied,
            "prevLogIdx": applied,
            "prevLogTerm": previous_term,
            "entries": entries,
        },
    )
    assert recorded.sent[-1]["next_node_idx"] == applied + unapplied + 1
    assert follower.applied_index == applied
    return follower, applied, entries


@pytest.mark.parametrize("resend", ["entries", "heartbeat"])
def test_an_acknowledged_entry_survives_a_late_resend(
    tmp_path: Path, critical: _CriticalCounter, resend: str
) -> None:
    """A follower acknowledged entries it has not applied yet; then a late AppendEntries (a
    resend with an older ``prevLogIdx``, or a heartbeat built before the new entries were
    sent) arrives. pysyncobj alone deletes every entry after ``prevLogIdx``: the follower
    then holds fewer entries than it acknowledged. The Raft rule truncates nothing that
    matches: the follower keeps them all and acknowledges only what the message covered."""
    nodes = _replicas(tmp_path, guard=True, batch=True)
    try:
        follower, applied, entries = _acknowledged_not_applied(nodes, unapplied=10)
        recorded = _Recorded(follower)
        log_before = _log_of(follower)
        late_entries = entries[2:5] if resend == "entries" else []
        covered = applied + (5 if resend == "entries" else 2)
        follower._on_message(
            follower.replica._SyncObj__raftLeader,  # pysyncobj internal
            {
                "type": "append_entries",
                "term": follower.term,
                "commit_index": applied + 10,  # the leader committed them all meanwhile
                "prevLogIdx": applied + 2,
                "prevLogTerm": entries[1][2],
                "entries": late_entries,
            },
        )
        log_after = _log_of(follower)
        commit = follower.commit_index
    finally:
        for node in nodes:
            node.stop()
    assert len(log_after) == len(log_before), "acknowledged entries were deleted"
    assert log_after == log_before
    assert recorded.deleted_from == []
    assert critical.messages == []
    # Acknowledged and committed only as far as the message showed the logs agree.
    assert [m["next_node_idx"] for m in recorded.sent] == [covered + 1]
    assert recorded.sent[0]["success"] is True
    assert commit == covered
    assert follower.late_appends_rewritten == 1


@pytest.mark.parametrize("at", ["unapplied", "applied"])
def test_a_conflict_is_truncated_from_the_first_conflicting_index_only(
    tmp_path: Path, critical: _CriticalCounter, at: str
) -> None:
    """A leader of a later term sends entries that first match, then conflict: the follower
    truncates from the first conflicting entry, not from ``prevLogIdx``. A conflict at an
    applied entry is real divergence: pysyncobj's CRITICAL line must still show it."""
    nodes = _replicas(tmp_path, guard=True, batch=True)
    try:
        follower, applied, _entries = _acknowledged_not_applied(nodes, unapplied=10)
        recorded = _Recorded(follower)
        log_before = _log_of(follower)
        conflict = applied + 5 if at == "unapplied" else applied - 1
        previous = conflict - 3
        local = {entry[1]: entry for entry in log_before}
        new_term = follower.term + 1
        replacing = [local[previous + 1], local[previous + 2]] + [
            (_NO_OP, index, new_term) for index in range(conflict, conflict + 4)
        ]
        follower._on_message(
            follower.replica._SyncObj__raftLeader,  # pysyncobj internal
            {
                "type": "append_entries",
                "term": new_term,
                "commit_index": applied,
                "prevLogIdx": previous,
                "prevLogTerm": local[previous][2],
                "entries": replacing,
            },
        )
        log_after = _log_of(follower)
    finally:
        for node in nodes:
            node.stop()
    assert recorded.deleted_from == [conflict]
    assert log_after == [e for e in log_before if e[1] < conflict] + replacing[2:]
    assert recorded.sent[-1]["next_node_idx"] == conflict + 4
    if at == "applied":
        assert len(critical.messages) == 1 and "already-applied" in critical.messages[0]
    else:
        assert critical.messages == []


def test_a_forwarded_command_is_refused(tmp_path: Path) -> None:
    """A command forwarded by a follower (pysyncobj's ``apply_command``) never reaches the
    leader's log; a caller waiting for the answer gets NOT_LEADER (not applied, retry)."""
    nodes = _replicas(tmp_path, guard=True, batch=True)
    try:
        leader = start_and_elect(nodes)
        _freeze(leader)
        recorded = _Recorded(leader)
        replica = leader.replica
        last_index = replica._SyncObj__getCurrentLogIndex  # pysyncobj internal
        before = last_index()
        sender = next(iter(replica._SyncObj__otherNodes))  # pysyncobj internal
        leader._on_message(sender, {"type": "apply_command", "command": _NO_OP, "request_id": 7})
        leader._on_message(sender, {"type": "apply_command", "command": _NO_OP})
        replica._checkCommandsToApply()  # would move a queued command into the log
        after = last_index()
    finally:
        for node in nodes:
            node.stop()
    assert after == before
    assert recorded.sent == [
        {"type": "apply_command_response", "request_id": 7, "error": FAIL_REASON.NOT_LEADER}
    ]
    assert leader.forwarded_commands_refused == 2


def test_a_follower_forwards_no_queued_command(tmp_path: Path) -> None:
    """A command still in pysyncobj's queue on a node that is not leader (the loop hands one
    over only while this node leads, so this is the last line) fails with NOT_LEADER, not
    applied; pysyncobj would send it to the leader as ``apply_command``."""
    nodes = _replicas(tmp_path, guard=True, batch=True)
    try:
        leader = start_and_elect(nodes)
        follower = next(n for n in nodes if n is not leader)
        wait_until(lambda: follower.leader_address is not None, timeout=20)
        _freeze(follower)
        recorded = _Recorded(follower)
        outcome: list[int] = []
        payload = encode_command(Tick(1))
        follower.replica.apply(payload, callback=lambda _result, error: outcome.append(error))
        follower.replica._checkCommandsToApply()
    finally:
        for node in nodes:
            node.stop()
    assert [m for m in recorded.sent if m.get("type") == "apply_command"] == []
    assert outcome == [FAIL_REASON.NOT_LEADER]


def _transfer(leader: RaftNode, to: RaftNode) -> None:
    """Hands leadership over (pysyncobj denies it while ``to`` is not caught up: retried)."""

    def transferred() -> bool:
        if to.is_leader and not leader.is_leader:
            return True
        if leader.is_leader:
            answered = threading.Event()
            leader.transfer_leadership(to.options.self_address, lambda *_: answered.set())
            answered.wait(5)
        return False

    wait_until(transferred, timeout=30, interval=0.3)


def test_the_leader_knows_each_members_protocol_version(tmp_path: Path) -> None:
    """Followers report their protocol version in every reply; the leader lists every member
    of the configuration: 0 for one not heard from (never started here), 1 for a reply
    without a version (an older Turnstile). A node that lost leadership reports nothing."""
    addresses = peer_addresses()
    versions = {addresses[0]: 2, addresses[1]: 1}
    nodes = [
        _replica(tmp_path, addresses, i, protocol_version=versions[addresses[i]]) for i in (0, 1)
    ]
    try:
        leader = start_and_elect(nodes)
        expected = {**versions, addresses[2]: 0}
        wait_until(lambda: leader.member_protocol_versions() == expected, timeout=20)
        other = next(n for n in nodes if n is not leader)
        assert other.member_protocol_versions() == {}
        _transfer(leader, other)
        assert leader.member_protocol_versions() == {}
        wait_until(lambda: other.member_protocol_versions() == expected, timeout=20)
        _freeze(other)
        replica = other.replica
        silent = next(n for n in replica._SyncObj__otherNodes if n.id == addresses[2])  # internal
        reply = {"type": "next_node_idx", "next_node_idx": 1, "reset": False, "success": False}
        other._on_message(silent, reply)
        assert other.member_protocol_versions() == {**versions, addresses[2]: 1}
    finally:
        for node in nodes:
            node.stop()


def test_a_big_entry_is_never_sent_in_chunks_past_the_append_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pysyncobj sends an entry of ``appendEntriesBatchSizeBytes`` (64 KiB by default) or more
    as "transmission" chunks, which the follower handles on a path that deletes every entry
    after ``prevLogIdx`` without the append rule (and whose last chunk is decided by the
    command's length, not the pickled entry's). The adapter sets the bound above any entry:
    a 200 KiB entry (a 1,000-member Insert is about 1 MB) arrives whole."""
    addresses = peer_addresses()
    nodes = [_replica(tmp_path, addresses, i) for i in range(3)]
    chunked: list[int] = []
    rule = pysyncobj_fixes.rewrite_by_append_rule

    def watched(replica: Any, message: dict[str, Any]) -> Any:
        if "transmission" in message:
            chunked.append(message["prevLogIdx"])
        return rule(replica, message)

    monkeypatch.setattr(pysyncobj_fixes, "rewrite_by_append_rule", watched)
    try:
        leader = start_and_elect(nodes)
        done = threading.Semaphore(0)
        command = Insert(1, 1, 1, 0, "big", (b"x" * 200_000,))
        leader.submit(encode_command(command), lambda _r, _e: done.release(), leader.term)
        assert done.acquire(timeout=30)
        target = leader.applied_index
        wait_until(lambda: all(n.applied_index >= target for n in nodes), timeout=30)
        assert chunked == []
    finally:
        for node in nodes:
            node.stop()


def test_a_command_commits_without_waiting_for_the_next_heartbeat(tmp_path: Path) -> None:
    """pysyncobj in batch mode sends AppendEntries only once per ``appendEntriesPeriod`` (the
    heartbeat) and moves a new command into the log after that check, so a command waits for
    the next send slot. The loop sends at once when no batch is in flight: with a 0.5 s
    heartbeat, commands one at a time commit in a few milliseconds, not a quarter second."""
    heartbeat = 0.5
    addresses = peer_addresses()
    timeouts = {"election_timeout_min_s": 4 * heartbeat, "election_timeout_max_s": 8 * heartbeat}
    nodes = [_replica(tmp_path, addresses, i, heartbeat_s=heartbeat, **timeouts) for i in range(3)]
    try:
        leader = start_and_elect(nodes)
        submit_ticks(leader, 1, wait=True)
        done = threading.Semaphore(0)
        latencies = []
        for i in range(10):
            started = time.monotonic()
            leader.submit(encode_command(Tick(i)), lambda _r, _e: done.release(), leader.term)
            assert done.acquire(timeout=10)
            latencies.append(time.monotonic() - started)
    finally:
        for node in nodes:
            node.stop()
    median = sorted(latencies)[len(latencies) // 2]
    print(f"commit latency, one command at a time: median {median * 1000:.1f} ms")
    assert median < heartbeat / 5


def test_a_wake_up_is_one_byte_however_many_submits_come_before_the_drain() -> None:
    """Submits before the loop drains share one wake-up write; the first after it writes."""
    wakeup = pysyncobj_fixes.LoopWakeup()
    try:
        for _ in range(3):
            wakeup.wake()
        assert wakeup._reader.recv(16) == b"\0"
        wakeup._drain(0, 0)
        wakeup.wake()
        assert wakeup._reader.recv(16) == b"\0"
    finally:
        wakeup.close()


def test_followers_apply_a_command_without_waiting_for_the_next_heartbeat(
    tmp_path: Path,
) -> None:
    """pysyncobj's followers learn the commit index only from the next AppendEntries, and the
    leader computes it at the start of a tick, after the loop decided whether to send: when
    both acks arrive in one poll, the commit waited a heartbeat to reach the followers (a read
    or a blocking acquire served by a follower waited with it). The leader announces a commit
    in the tick that computed it: with a 1 s heartbeat, each follower applies every command
    well within a fifth of it."""
    heartbeat = 1.0
    addresses = peer_addresses()
    timeouts = {"election_timeout_min_s": 4 * heartbeat, "election_timeout_max_s": 8 * heartbeat}
    nodes = [_replica(tmp_path, addresses, i, heartbeat_s=heartbeat, **timeouts) for i in range(3)]
    lags: list[float] = []
    try:
        leader = start_and_elect(nodes)
        followers = [n for n in nodes if n is not leader]
        submit_ticks(leader, 1, wait=True)
        for _ in range(50):
            submit_ticks(leader, 1, wait=True)
            committed, index = time.monotonic(), leader.applied_index
            wait_until(functools.partial(applied_by, followers, index), 10, interval=0.001)
            lags.append(time.monotonic() - committed)
    finally:
        for node in nodes:
            node.stop()
    late = [round(lag, 3) for lag in lags if lag > heartbeat / 5]
    print(f"follower apply lag: median {sorted(lags)[25] * 1000:.1f} ms, late: {late}")
    assert not late
