"""Every correction of pysyncobj's behaviour, one named function each.

They reach into name-mangled internals of pysyncobj **0.3.17** (pinned exactly in
pyproject.toml), each use marked ``# pysyncobj internal``. Each docstring says what pysyncobj
does (file and function under ``site-packages/pysyncobj/``), the test that fails without the
fix, and the upstream report (github.com/bakwc/PySyncObj) where one was found.
``turnstile.cluster.raft`` wires them in; its docstring lists every seam.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from queue import Empty
from typing import Any

import pysyncobj.serializer
import pysyncobj.syncobj
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj.poller import POLL_EVENT_TYPE

from turnstile.cluster.raftlog import DiskFiles, RaftLog
from turnstile.cluster.snapshot_file import read_snapshot_file

log = logging.getLogger(__name__)

#: pysyncobj's handler of one peer message: (node, message).
MessageHandler = Callable[[Any, dict[str, Any]], None]
#: (result or None, pysyncobj FAIL_REASON), as pysyncobj calls a command's callback.
Callback = Callable[[Any, int], None]

#: pysyncobj's ``appendEntriesBatchSizeBytes``: above any one log entry. An entry is at most
#: one request (gRPC refuses more than 8 MiB) plus a group's bytes (``proposals.GROUP_MAX_BYTES``).
_WHOLE_ENTRY_BYTES = 16 * 1024 * 1024

#: ``journal_factory_returning`` swaps a module global: one construction at a time.
_JOURNAL_FACTORY_LOCK = threading.Lock()


def guard_next_index(
    replica: SyncObj, handle: MessageHandler, node: Any, message: dict[str, Any]
) -> None:
    """The nextIndex guard: the leader handles a follower's ``next_node_idx`` reply as
    pysyncobj does, except that a successful, non-reset one never moves that follower's
    nextIndex backwards, and a reset never moves it forwards.

    pysyncobj (``syncobj.py``, ``SyncObj.__onMessageReceived``, the ``next_node_idx`` branch)
    sets nextIndex to whatever the reply says. With several batches in flight to a follower,
    a late ack of an older one rewinds nextIndex; the leader resends entries the follower
    has with an older ``prevLogIdx``, and the follower truncates already-applied entries
    ("truncating already-applied log entries", CRITICAL): a committed entry can be lost if
    the leader dies in that window. A follower with a divergent tail answers the first batch
    "mismatch, resend from N" and a later one "my log ends at M > N": applied in that order,
    the second undid the first and the leader resent the same batches forever (a livelock
    the chaos suite hit: no commit for 30 s and more).

    Fails without it: tests/integration/test_raft_guard.py::
    test_a_late_ack_moves_next_index_backwards_only_without_the_guard[True] and
    test_a_later_reset_cannot_undo_an_earlier_one_only_with_the_guard[True]. No upstream
    report found.
    """
    reset = bool(message.get("reset"))
    if not (reset or message.get("success")):
        handle(node, message)
        return
    next_index = replica._SyncObj__raftNextIndex  # pysyncobj internal
    before = next_index.get(node)
    handle(node, message)
    after = next_index.get(node, before)
    if before is not None and (after > before if reset else after < before):
        next_index[node] = before


def fast_log_repair(next_node_index: int, commit_index: int) -> int:
    """Fast log repair: where a follower whose entry at ``prevLogIdx`` has another term tells
    the leader to resume, given the index pysyncobj would answer.

    pysyncobj (``syncobj.py``, ``SyncObj.__onMessageReceived``, the ``append_entries`` branch,
    through ``__sendNextNodeIdx``) answers "try ``prevLogIdx``", so the leader walks back one
    entry per round trip (per heartbeat): after a deposed leader appended entries nobody
    committed, tens of seconds without a commit in the chaos suite. Every entry up to the
    follower's commit index is committed, so matches the leader's: "try commit index + 1"
    repairs in one round trip, and truncates nothing applied.

    Fails without it: tests/integration/test_raft_guard.py::
    test_a_deposed_leaders_divergent_entries_are_repaired_in_one_round_trip[True]. No
    upstream report found.
    """
    return min(next_node_index, commit_index + 1)


def raft_append_rule(
    message: dict[str, Any], first: int, last: int, term_at: Callable[[int], int]
) -> tuple[dict[str, Any], int | None]:
    """The Raft AppendEntries rule as a rewrite of the message pysyncobj then handles, for a
    follower holding entries ``first``..``last`` (``term_at(i)``: the local term at i).

    pysyncobj (``syncobj.py``, ``SyncObj.__onMessageReceived``, the ``append_entries``
    branch) deletes every local entry after ``prevLogIdx`` whenever there is one, without
    comparing terms, even for an empty heartbeat: a late resend (a reply that crossed a newer
    one; fast repair makes such resends reach further back) or a heartbeat behind this log
    deleted entries this node had acknowledged, applied ones with the CRITICAL line. Raft
    deletes only from the first entry whose term conflicts: the message is rewritten to start
    there, so pysyncobj's truncation (and its CRITICAL line: then real divergence) happens
    only then. A ``prevLogIdx`` below ``first`` (compacted into a snapshot: committed, so
    equal to the leader's) is anchored on ``first``. This also is the former applied-entries
    guard: a late AppendEntries never truncates applied entries.

    A message whose entries are all here already is rewritten to an empty one anchored on
    ``last`` rather than dropped: pysyncobj still resets the election timer, and learns the
    commit index, capped at the last index the message covered (entries past it may not be
    the leader's). Returns the message to hand on (the same object when unchanged) and, for
    such a message, that covered index: the most the reply may acknowledge.

    Fails without it (``rewrite_by_append_rule`` not applied): tests/integration/
    test_raft_guard.py::test_a_late_append_below_the_applied_index_truncates_nothing[True],
    test_an_acknowledged_entry_survives_a_late_resend[entries] and [heartbeat],
    test_a_conflict_is_truncated_from_the_first_conflicting_index_only[unapplied] and
    [applied]; the rule itself: tests/unit/test_raft_append_rule.py. No upstream report found.
    """
    previous = message["prevLogIdx"]
    if previous >= last:
        return message, None  # nothing after prevLogIdx to delete
    entries = message.get("entries") or []
    if previous < first:
        anchor = first
        entries = [entry for entry in entries if entry[1] > first]
    elif term_at(previous) != message["prevLogTerm"]:
        return message, None  # pysyncobj answers "mismatch"
    else:
        anchor = previous
    for position, entry in enumerate(entries):
        index = entry[1]
        if index != anchor + 1 + position:
            return message, None  # not one run of entries: pysyncobj's business
        if index <= last and term_at(index) == entry[2]:
            continue
        if index - 1 == previous:
            return message, None  # the first entry is new or conflicts: as it is
        return {
            **message,
            "prevLogIdx": index - 1,
            "prevLogTerm": term_at(index - 1),
            "entries": entries[position:],
        }, None
    covered = entries[-1][1] if entries else anchor
    return {
        **message,
        "prevLogIdx": last,
        "prevLogTerm": term_at(last),
        "entries": [],
        "commit_index": min(message["commit_index"], covered),
    }, covered


def rewrite_by_append_rule(
    replica: SyncObj, message: dict[str, Any]
) -> tuple[dict[str, Any], int | None]:
    """``raft_append_rule`` against the replica's log, for an AppendEntries pysyncobj would
    handle as regular entries (not a snapshot, not a stale term, not a chunk)."""
    if (
        "prevLogIdx" not in message
        or "transmission" in message
        or message.get("term", 0) < replica.raftCurrentTerm  # pysyncobj ignores it
    ):
        return message, None
    raft_log = replica._SyncObj__raftLog  # pysyncobj internal: entries (command, index, term)
    first = raft_log[0][1]
    return raft_append_rule(
        message, first, raft_log[-1][1], lambda index: raft_log[index - first][2]
    )


def never_send_entries_in_chunks(conf: SyncObjConf) -> None:
    """Sets ``appendEntriesBatchSizeBytes`` above any one log entry, so none is sent in
    pieces.

    pysyncobj (``syncobj.py``, ``SyncObj.__sendAppendEntries``) splits an entry at least this
    big (64 KiB by default) into "transmission" chunks, which the follower handles on a path
    of ``__onMessageReceived`` that deletes every entry after ``prevLogIdx`` without the
    append rule; it also decides the last chunk by the command's length rather than the
    pickled entry's (a 6 MB entry was seen failing with UnpicklingError on every resend).

    Fails without it: tests/integration/test_raft_guard.py::
    test_a_big_entry_is_never_sent_in_chunks_past_the_append_rule. No upstream report found
    (bakwc/PySyncObj#61 asks to split big commands a follower forwards, not this).
    """
    conf.appendEntriesBatchSizeBytes = _WHOLE_ENTRY_BYTES


class ForwardedCommands:
    """Drops commands other nodes forward (``apply_command``), logged at most once per 10 s
    with a count; a caller waiting on one (an older peer) is told NOT_LEADER
    (not applied, retry).

    pysyncobj (``syncobj.py``, ``SyncObj.__onMessageReceived``, the ``apply_command`` branch)
    queues it for the leader's log. A Turnstile node forwards none, and a late one from a
    node that lost leadership must not be applied: only the leader's own, term-checked
    submissions reach the log.

    Fails without it: tests/integration/test_raft_guard.py::
    test_a_forwarded_command_is_refused. No upstream report found.
    """

    def __init__(self) -> None:
        self._logged_at = float("-inf")
        self._unlogged = 0

    def refuse(self, replica: SyncObj, node: Any, message: dict[str, Any]) -> None:
        if "request_id" in message:
            response = {
                "type": "apply_command_response",
                "request_id": message["request_id"],
                "error": FAIL_REASON.NOT_LEADER,
            }
            replica._SyncObj__transport.send(node, response)  # pysyncobj internal
        now = time.monotonic()
        if now - self._logged_at < 10.0:
            self._unlogged += 1
            return
        unlogged, self._unlogged = self._unlogged, 0
        self._logged_at = now
        log.warning(
            "refused a command forwarded by %s (Turnstile nodes forward none: an older build?)%s",
            getattr(node, "id", node),
            f" ({unlogged} more since the last report)" if unlogged else "",
        )


def fail_queued_commands(replica: SyncObj) -> None:
    """On a node that is not leader: fails every queued command with NOT_LEADER (not
    applied), instead of forwarding it.

    pysyncobj (``syncobj.py``, ``SyncObj._checkCommandsToApply``) sends a follower's queued
    commands to the leader (``apply_command``), so a node that lost leadership while its
    duties still ran had its stale commands applied by its successor: a leader paused past
    the session TTL resumed, proposed ``ExpireSession`` for every session its successor kept
    alive, and the successor applied them.

    Fails without it: tests/integration/test_raft_guard.py::
    test_a_follower_forwards_no_queued_command (``submit`` refuses first on a follower, so
    test_leadership_fence.py::test_a_command_submitted_on_a_follower_is_not_applied does
    not). No upstream report found.
    """
    queue = replica._SyncObj__commandsQueue  # pysyncobj internal
    while True:
        try:
            _command, callback = queue.get_nowait()
        except Empty:
            return
        if callable(callback):
            callback(None, FAIL_REASON.NOT_LEADER)


class LoopWakeup:
    """A socketpair in the replica's poller, so that a submit wakes the loop at once.

    pysyncobj (``syncobj.py``, ``SyncObj.__init__``) has a ``PipeNotifier`` waking the tick
    only in non-batch mode: in batch mode a command waits for the poll to time out. Part of
    immediate send (``send_immediately``).

    Fails without it: tests/integration/test_raft_guard.py::
    test_a_command_commits_without_waiting_for_the_next_heartbeat.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        #: A wake-up byte was sent and the loop has not drained it yet: more submits need no
        #: syscall. Cleared after draining; a submit that saw it set was queued before the
        #: drain, so the loop proposes it in the pass that follows (``_propose_pending`` runs
        #: before every tick). Clearing it first would leave it set with nothing to drain.
        self._pending = False

    def subscribe(self, replica: SyncObj) -> None:
        replica._poller.subscribe(  # pysyncobj internal: the loop's poller
            self._reader.fileno(), self._drain, POLL_EVENT_TYPE.READ
        )

    def wake(self) -> None:
        if self._pending:
            return
        self._pending = True
        # BlockingIOError: a wake-up is already pending; OSError: we are shutting down.
        with contextlib.suppress(BlockingIOError, OSError):
            self._writer.send(b"\0")

    def _drain(self, _descr: int, _event: int) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._reader.recv(4096):
                pass
        self._pending = False

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


def send_immediately(replica: SyncObj, announced_commit: int) -> int:
    """Immediate send (batch mode, loop thread, before each tick): moves queued commands into
    the log, and makes this tick send AppendEntries when ``_send_if_worth_it`` would. Returns
    the commit index announced.

    pysyncobj (``syncobj.py``, ``SyncObj._onTick``) sends AppendEntries only once
    ``__newAppendEntriesTime`` has passed (reset to now + ``appendEntriesPeriod`` on every
    send) and moves queued commands into the log *after* that check, so every command waits
    about two ticks (~100 ms with the defaults). A commit index alone goes out at once, marked
    as ``announce_commit`` marks it.

    Fails without it: tests/integration/test_raft_guard.py::
    test_a_command_commits_without_waiting_for_the_next_heartbeat. Upstream:
    bakwc/PySyncObj#34 (command apply delay; the maintainer's answer is non-batch mode).
    """
    replica._checkCommandsToApply()

    def send_in_this_tick() -> None:
        replica._SyncObj__newAppendEntriesTime = 0  # pysyncobj internal

    return _send_if_worth_it(replica, announced_commit, send_in_this_tick)


def announce_commit(replica: SyncObj, announced_commit: int) -> int:
    """Immediate announcement (batch mode, loop thread, an on-tick callback: after the tick
    computed the commit index and applied, before it polls): sends AppendEntries right away
    when ``_send_if_worth_it`` would; when every follower already holds every entry, only the
    commit index, in a message marked ``COMMIT_ONLY`` that they need not answer. Returns the
    commit index announced.

    A follower learns the commit index only from the next AppendEntries, and the leader
    computes it at the start of a tick, after ``send_immediately`` decided: when the acks
    that commit an entry arrive in one poll, nothing was sent until the next heartbeat, and a
    follower's read or blocking acquire waited for it. pysyncobj's followers answer every
    AppendEntries; the answer to this one would only repeat the ack the leader just counted.

    Fails without it: tests/integration/test_raft_guard.py::
    test_followers_apply_a_command_without_waiting_for_the_next_heartbeat; without the mark:
    tests/integration/test_commit_announcements.py::
    test_followers_do_not_answer_a_commit_announcement.
    """
    send_entries = replica._SyncObj__sendAppendEntries  # pysyncobj internal
    return _send_if_worth_it(replica, announced_commit, send_entries)


#: A key of an AppendEntries that announces a new commit index to followers that hold and
#: acknowledged every entry: they answer it only when their log does not match. An older
#: build ignores the key and answers as pysyncobj does.
COMMIT_ONLY = "commit_only"


def _send_if_worth_it(
    replica: SyncObj, announced_commit: int, send_entries: Callable[[], None]
) -> int:
    """On the leader, when no batch is in flight to any connected follower (one batch in
    flight per follower): ``send_entries()`` if one has entries to get, else the commit index
    alone (``_send_commit_only``) if it moved past ``announced_commit``. Returns the commit
    index announced."""
    if not replica._isLeader():
        return announced_commit
    next_index = replica._SyncObj__raftNextIndex  # pysyncobj internal
    match_index = replica._SyncObj__raftMatchIndex  # pysyncobj internal
    connected = replica._SyncObj__connectedNodes  # pysyncobj internal
    followers = [n for n in connected if n in next_index]
    if not followers or any(next_index[n] != match_index[n] + 1 for n in followers):
        return announced_commit
    last_index = replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal
    if any(next_index[n] <= last_index for n in followers):
        send_entries()
    elif replica.raftCommitIndex > announced_commit:
        _send_commit_only(replica, followers)
    else:
        return announced_commit
    return int(replica.raftCommitIndex)


def _send_commit_only(replica: SyncObj, followers: list[Any]) -> None:
    """What pysyncobj's ``__sendAppendEntries`` sends a follower that holds every entry (and
    its heartbeat timer reset), marked ``COMMIT_ONLY``."""
    conf = replica._SyncObj__conf  # pysyncobj internal
    replica._SyncObj__newAppendEntriesTime = time.monotonic() + conf.appendEntriesPeriod
    message = {
        "type": "append_entries",
        "term": replica.raftCurrentTerm,
        "commit_index": replica.raftCommitIndex,
        "entries": [],
        "prevLogIdx": replica._SyncObj__getCurrentLogIndex(),  # pysyncobj internal
        "prevLogTerm": replica._SyncObj__getCurrentLogTerm(),  # pysyncobj internal
        COMMIT_ONLY: True,
    }
    transport = replica._SyncObj__transport  # pysyncobj internal
    for node in followers:
        transport.send(node, message)


@contextlib.contextmanager
def journal_factory_returning(raft_log: RaftLog) -> Iterator[None]:
    """While constructing a SyncObj inside: pysyncobj's journal is ``raft_log`` (ours,
    fdatasynced before an entry counts toward commit).

    pysyncobj (``syncobj.py``, ``SyncObj.__init__``) builds its journal through the module
    global ``pysyncobj.syncobj.createJournal``; its ``journal.py`` ``FileJournal`` is an mmap
    it never syncs, and term and vote are saved by a rename without fsync: durable against a
    process crash, not a power loss. The adapter syncs the log where pysyncobj would count
    an entry (see ``turnstile.cluster.raft``: a follower before it acknowledges, the leader
    after it sent and before the commit computation).

    Fails without it: tests/integration/test_durability.py::
    test_a_follower_syncs_its_log_before_it_sends_on_a_peer_socket[fsync] and [none],
    test_every_member_syncs_at_least_once_per_twenty_acknowledged_writes; tests/integration/
    test_raft_log.py::test_a_stop_between_the_snapshot_and_the_log_drop_keeps_the_later_entries.
    Upstream: bakwc/PySyncObj#98 (the journal is never flushed; open).
    """
    with _JOURNAL_FACTORY_LOCK:
        factory = pysyncobj.syncobj.createJournal  # pysyncobj internal
        pysyncobj.syncobj.createJournal = lambda _path: raft_log  # pysyncobj internal
        try:
            yield
        finally:
            pysyncobj.syncobj.createJournal = factory  # pysyncobj internal


def durable_replace(source: str, target: str) -> None:
    """pysyncobj's rename of a snapshot into place, with the file synced before and the
    directory after. Always synced: snapshots are rare.

    pysyncobj (``serializer.py``, ``Serializer.serialize`` for the snapshot this node wrote
    and ``Serializer.setTransmissionData`` for one a leader sent) renames with
    ``atomic_replace.py``'s ``atomicReplace``, a plain rename: a power loss could leave an
    empty snapshot beside a log already dropped, or undo the rename after the log it
    replaces was cleared.

    Fails without it (``make_snapshot_renames_durable`` not called): tests/unit/
    test_snapshot_rename.py::test_a_snapshot_is_synced_before_its_rename_and_the_directory_after.
    No upstream report found.
    """
    with open(source, "rb") as file:
        os.fsync(file.fileno())
    os.replace(source, target)
    DiskFiles(os.path.dirname(target) or ".").sync_directory()


def make_snapshot_renames_durable() -> None:
    """Installs ``durable_replace`` as pysyncobj's ``serializer.atomicReplace``."""
    pysyncobj.serializer.atomicReplace = durable_replace  # pysyncobj internal


def finish_interrupted_compaction(raft_log: RaftLog, snapshot_path: str) -> None:
    """Drops the log prefix the snapshot covers, if a stop came between the two steps.

    pysyncobj (``syncobj.py``, ``SyncObj.__tryLogCompaction``) renames a new snapshot into
    place in one tick and drops the entries it covers in a later one. On start
    (``SyncObj.__loadDumpFile``) it compares the log's first two entries with the
    snapshot's and, when they differ, clears the log down to the snapshot: a node stopped
    (or killed) between the two steps lost every entry after the snapshot, acknowledged ones
    included. Finishing the drop first keeps them. A snapshot that cannot be read is left to
    pysyncobj's load, which stops the node with the reason.

    Fails without it: tests/integration/test_raft_log.py::
    test_a_stop_between_the_snapshot_and_the_log_drop_keeps_the_later_entries. No upstream
    report found.
    """
    if not os.path.exists(snapshot_path) or len(raft_log) < 2:
        return
    try:
        snapshot = read_snapshot_file(snapshot_path)
    except (OSError, ValueError):
        return
    previous, last = snapshot.previous_entry, snapshot.last_entry
    position = previous[1] - raft_log[0][1]
    if 0 < position < len(raft_log) - 1 and raft_log[position : position + 2] == [
        previous,
        last,
    ]:
        log.info("finishing a log compaction a stop interrupted (up to index %d)", last[1])
        raft_log.deleteEntriesTo(position)


def guarded_callback(callback: Callback) -> Callback:
    """``callback`` with any exception logged, never raised into pysyncobj.

    pysyncobj (``syncobj.py``, ``SyncObj.__applyLogEntries``) calls a command's callback
    after applying its entry and before counting it applied: an exception there leaves the
    entry unapplied in its count, and the next tick applies it again.

    Fails without it: tests/unit/test_grouped_entries.py::
    test_a_callback_that_raises_does_not_stop_the_others. No upstream report found.
    """

    def guarded(result: Any, error: int) -> None:
        try:
            callback(result, error)
        except Exception:
            log.exception("proposal callback failed")

    return guarded


class QuietTransfer:
    """Leadership transfer with the step pysyncobj leaves out: while a transfer it sent is
    pending, the leader hands no new command to pysyncobj.

    pysyncobj (``syncobj.py``, ``SyncObj.transferLeadership``) sends ``timeout_now`` once the
    target has matched the leader's whole log, and the leader goes on appending. The target's
    vote request then carries a log shorter than the leader's; the old leader refuses its vote
    and, stepping down without resetting its election deadline (``__onMessageReceived``,
    ``request_vote``), calls an election of its own at once and wins it. Under load a
    transfer mostly ended with the same leader one term on (the chaos scenario with a fast
    clock asked about 20 times in 60 s, in vain). The Raft thesis (section 3.10) has the leader stop
    accepting client requests during a transfer; here they wait in the loop's queue until the
    target won, or for one election timeout, whichever comes first.

    Fails without it: tests/integration/test_leadership_transfer.py::
    test_a_transfer_under_load_hands_leadership_to_its_target[False]. No upstream report
    found.
    """

    def __init__(self, hold_s: float) -> None:
        self._hold_s = hold_s
        self._until = 0.0

    def request(self, replica: SyncObj, peer_address: str | None, callback: Callback) -> None:
        """Asks pysyncobj for the transfer; once it sent one, proposals hold (``holding``)."""

        def sent(result: Any, error: int) -> None:
            if error == FAIL_REASON.SUCCESS:
                self._until = time.monotonic() + self._hold_s
            callback(result, error)

        replica.transferLeadership(peer_address, callback=sent)

    def holding(self, replica: SyncObj) -> bool:
        """A transfer this leader sent is pending: propose nothing yet."""
        return time.monotonic() < self._until and bool(replica._isLeader())
