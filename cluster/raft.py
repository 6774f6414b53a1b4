"""The pysyncobj adapter: one Raft replica of the state machine, driven by a loop we own.

Everything that touches pysyncobj lives here, in ``peer_auth`` and in ``snapshot_file``. It
reaches into name-mangled internals of pysyncobj **0.3.17** (pinned exactly in
pyproject.toml), each use marked ``# pysyncobj internal``:

- ``SyncObj._SyncObj__onMessageReceived`` is wrapped with the *nextIndex guard*: after a
  successful, non-reset ``next_node_idx`` ack, the leader never lets ``nextIndex`` of that
  follower move backwards. Without it a late ack of an older batch rewinds ``nextIndex``, the
  leader resends entries the follower already has with an older ``prevLogIdx``, and the
  follower truncates already-applied entries ("truncating already-applied log entries",
  CRITICAL) - a committed entry can then be lost if the leader dies in that window.
  Symmetrically, a *reset* (a follower saying "resend from here") never moves ``nextIndex``
  forwards. pysyncobj sends several batches per tick; to a follower with a divergent tail the
  first gets "mismatch, resend from N" and a later one "my log ends at M > N": applied in
  that order, the second undid the first and the leader resent the same batches forever (a
  livelock the chaos suite hit after a deposed leader's tail: no commit for 30 s and more).
- ``SyncObj._SyncObj__sendNextNodeIdx`` is replaced by ours (the same ``next_node_idx``
  message, plus ``turnstile_protocol``: this build's protocol version, which pysyncobj
  ignores; the leader keeps each member's, ``member_protocol_versions``, so that it proposes
  a new kind of command only once every member supports it). It does *fast log repair*: a
  follower whose entry at ``prevLogIdx`` has another term answers "try ``prevLogIdx``", so
  the leader walks back one entry per round trip (per heartbeat). After a deposed leader
  appended entries nobody committed, that took tens of seconds of no commits in the chaos
  suite once the other follower was down. Every entry up to the follower's commit index is
  committed, so it matches the leader's; the follower answers "try commit index + 1" instead,
  and the repair takes one round trip. Nothing at or below the commit index is truncated, so
  nothing applied is.
- The same handler applies the *Raft append rule* (follower side). pysyncobj deletes every
  entry after ``prevLogIdx`` whenever the follower has one, without comparing terms, even for
  an empty heartbeat: a late AppendEntries (a reply that crossed a newer one, so the leader
  resent from an old index; fast repair makes such resends reach further back) deleted
  entries the follower had acknowledged, applied ones with the CRITICAL line again. The
  message is rewritten to start at its first entry that is new or has another term than the
  local one, so pysyncobj truncates only from a real conflict (and its CRITICAL line then
  means real divergence); one that only repeats local entries becomes an empty AppendEntries
  on the local last entry, its commit index and the reply's ack capped at the last index it
  covered (``RaftNode._append_rule``).
- The same handler drops commands forwarded by other nodes (pysyncobj's ``apply_command``):
  a Turnstile node forwards none, and a late one from a node that lost leadership must not be
  applied (with ``term_fence`` on). A caller waiting on an older peer gets NOT_LEADER.
- ``SyncObj._checkCommandsToApply`` is overridden so that a node that is not leader never
  forwards its queued commands to the leader (pysyncobj sends them as ``apply_command``): each
  fails with NOT_LEADER, not applied. Before this, a leader stopped past the session TTL
  resumed, proposed ``ExpireSession`` for every session its successor kept alive, and the
  successor applied them. ``submit`` also takes the term a command was stamped in; the loop
  hands it to pysyncobj only while this node leads in that very term (a command stamped in an
  earlier leadership of this node would otherwise enter the log of a later one). The state
  machine's term fence refuses whatever still arrives late.
- A committed entry this build cannot decode, or a cluster version above the one it supports,
  stops the process (``halt``, exit status 70) rather than being refused: refusing it would
  leave this replica's state different from its peers' during a mixed-version upgrade.
- Refused peers. pysyncobj drops a connection whose message fails decryption (a wrong or
  missing peer password) without a word; ``peer_auth.log_refused_peers`` wraps its Fernet
  encryptor (``SyncObj._SyncObj__encryptor``, and per incoming connection via the TCP server's
  ``_TcpServer__onNewConnectionCallback``) so each refusal is logged with the remote address.
- Commit latency. In batch mode pysyncobj sends AppendEntries only when
  ``__newAppendEntriesTime`` has passed, and moves queued commands into the log *after* that
  check, so every command waits about two ticks. Our loop moves the queue into the log first
  (``_checkCommandsToApply``), is woken by a socketpair on submit, and zeroes
  ``__newAppendEntriesTime`` when there is something to send and no batch is in flight to any
  connected follower (one batch in flight per follower), or the commit index moved.
- The log on disk. pysyncobj builds its journal in ``SyncObj.__init__`` through the module
  global ``pysyncobj.syncobj.createJournal``; ``_Replica`` swaps it, for the time of its own
  construction, for a factory returning our ``raftlog.RaftLog`` (pysyncobj's ``Journal``
  interface: pysyncobj's own is an mmap it never syncs). Entries count toward commit only once
  fdatasynced, one sync for everything appended since the last (group commit). A follower
  syncs in ``_send_next_index`` before it acknowledges. pysyncobj counts the leader's whole
  log as matched when a tick computes the commit index (first thing in ``_onTick``), so the
  leader syncs before any entry can be counted, but after sending it, in parallel with the
  followers' writes (Raft allows this): in an on-tick callback, which runs after the tick's
  AppendEntries and before it waits for the acks; and after the peer message that made it
  leader (pysyncobj then appends a no-op and sends it at once). An entry appended between a
  sync and the next commit computation has not been sent, so no follower can have
  acknowledged it (acks are read only while the tick waits). Alone, the
  leader syncs before each tick. Term and vote are synced by ``RaftLog.setCurrentTerm``,
  which pysyncobj calls before it sends a vote request or grant. One gap is left: in a
  one-node cluster the no-op pysyncobj appends on election commits in that same tick.
- Snapshots on disk. pysyncobj renames a snapshot into place (the one this node wrote, or one
  a leader sent) with ``pysyncobj.serializer.atomicReplace``, a plain rename; it is replaced
  at import by ``_durable_replace`` (file synced before, directory after), so a snapshot is on
  disk before pysyncobj drops or clears the log entries it covers. pysyncobj drops them one
  tick after the rename, and a node stopped in between would on start clear its log down to
  the snapshot, losing later entries: ``_finish_compaction`` completes the drop first.
- A failed write or sync of the log stops the node (``halt``): after a failed fdatasync the
  kernel may have dropped the dirty pages, and a retry that succeeds would vouch for them.

The replicated surface is one method, ``apply(payload: bytes)``: pysyncobj numbers replicated
methods by sorted name, so a second one would renumber ids stored in old journals. The payload
is our own versioned msgpack command (``turnstile.cluster.commands``).

Snapshots go through pysyncobj's serializer hooks as ``snapshot_file``'s msgpack document
holding our versioned state snapshot and pysyncobj's raft metadata. With ``durability = "none"``
(``RaftOptions.durable`` off) log entries are never synced (term, vote, snapshots and
compaction still are): durable against a process crash, not against a power loss of a
majority.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty
from typing import Any, NoReturn

import pysyncobj.serializer
import pysyncobj.syncobj
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import _COMMAND_TYPE

from turnstile.cluster import snapshot
from turnstile.cluster.commands import (
    PROTOCOL_VERSION,
    CodecError,
    Command,
    Err,
    SetClusterVersion,
    decode_entry,
    encode_batch,
)
from turnstile.cluster.peer_auth import log_refused_peers
from turnstile.cluster.raftlog import (
    COMMIT_FILE,
    LOG_FILE,
    META_FILE,
    PYSYNCOBJ_JOURNAL_FILE,
    DiskFiles,
    RaftLog,
    migrate_pysyncobj_journal,
)
from turnstile.cluster.reasons import Reason
from turnstile.cluster.snapshot_file import (
    pack_snapshot_file,
    raft_metadata,
    read_snapshot_file,
    write_replica_snapshot,
)
from turnstile.cluster.state import Applied, StateMachine

log = logging.getLogger(__name__)

#: (result or None, pysyncobj FAIL_REASON) - called on the raft loop thread; must not raise.
ProposalCallback = Callable[[Any, int], None]
#: Called on the raft loop thread after every applied command (all nodes, not only the leader).
AppliedHook = Callable[[Command | None, Applied], None]
#: Called on the raft loop thread when the Raft role changes: (was_leader, is_leader).
RoleHook = Callable[[bool, bool], None]

#: The snapshot's file name in a node's data directory (the log's are in ``raftlog``).
SNAPSHOT_FILE = "raft.snapshot"
#: Files that make a data directory a Raft member's.
RAFT_FILES = (LOG_FILE, META_FILE, COMMIT_FILE, PYSYNCOBJ_JOURNAL_FILE, SNAPSHOT_FILE)
#: Bounds of one grouped log entry: commands, and bytes (a big entry stalls every follower).
_GROUP_MAX_COMMANDS = 1000
_GROUP_MAX_BYTES = 256 * 1024
#: pysyncobj's ``appendEntriesBatchSizeBytes``: above any one log entry, so none is ever sent
#: in pieces. pysyncobj splits an entry at least this big (64 KiB by default) into
#: "transmission" chunks, which the follower handles on a path that deletes every entry after
#: ``prevLogIdx`` without the append rule; it also decides the last chunk by the command's
#: length rather than the pickled entry's (a 6 MB entry was seen failing with UnpicklingError
#: on every resend). An entry is at most one request (gRPC refuses more than 8 MiB) plus a
#: group's ``_GROUP_MAX_BYTES``.
_APPEND_BATCH_BYTES = 16 * 1024 * 1024
_RAFT_STATE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}


@dataclass(frozen=True, slots=True)
class RaftOptions:
    """What the adapter needs to know; built from the node config."""

    self_address: str
    other_addresses: tuple[str, ...]
    data_dir: str
    password: str
    election_timeout_min_s: float = 0.5
    election_timeout_max_s: float = 1.0
    heartbeat_s: float = 0.05
    connection_retry_s: float = 0.3
    #: The nextIndex guard; off only in the test that shows why it exists.
    next_index_guard: bool = True
    #: Batch mode with our immediate send; off only in that same test.
    batch: bool = True
    #: Fast log repair; off only in the test that shows why it exists.
    fast_log_repair: bool = True
    #: Commands submitted together share one log entry; off only in the tests of log
    #: mechanics, which need one entry per command.
    group_commands: bool = True
    #: Entries between snapshots.
    compaction_min_entries: int = 20_000
    #: The term fence and the no-forwarding rule; off only in the chaos control run that shows
    #: what they prevent (a deposed leader's commands are then forwarded and applied).
    term_fence: bool = True
    #: The protocol version this build supports, reported to the leader in every
    #: AppendEntries reply (``RaftNode.member_protocol_versions``).
    protocol_version: int = PROTOCOL_VERSION
    #: Log entries count toward commit only once fdatasynced (``durability = "fsync"``);
    #: False never syncs them (``"none"``). Term and vote are synced either way.
    durable: bool = True


#: pysyncobj builds its journal in ``SyncObj.__init__`` from a module-level factory; it is
#: swapped for the time of one construction, one construction at a time.
_JOURNAL_FACTORY_LOCK = threading.Lock()


class _Replica(SyncObj):
    """The SyncObj with our single replicated entry point, our log, and no forwarding of
    commands."""

    def __init__(
        self, node: RaftNode, conf: SyncObjConf, options: RaftOptions, raft_log: RaftLog
    ) -> None:
        self._node = node
        self._forward = not options.term_fence
        with _JOURNAL_FACTORY_LOCK:
            factory = pysyncobj.syncobj.createJournal  # pysyncobj internal
            pysyncobj.syncobj.createJournal = lambda _path: raft_log  # pysyncobj internal
            try:
                super().__init__(options.self_address, list(options.other_addresses), conf)
            finally:
                pysyncobj.syncobj.createJournal = factory  # pysyncobj internal

    @replicated
    def apply(self, payload: bytes) -> Applied | list[Applied]:
        return self._node._apply_entry(payload)

    def _checkCommandsToApply(self) -> None:  # noqa: N802 - pysyncobj's name
        """Moves queued commands into the log, on the leader only.

        pysyncobj sends a follower's queued commands to the leader (``apply_command``), so a
        node that lost leadership while its duties still ran had its stale commands applied
        by its successor. Ours are never forwarded: on a node that is not leader each one
        fails with NOT_LEADER (not applied) and its caller retries on the leader.
        """
        if self._forward or self._isLeader():
            super()._checkCommandsToApply()
            return
        queue = self._SyncObj__commandsQueue  # pysyncobj internal
        while True:
            try:
                _command, callback = queue.get_nowait()
            except Empty:
                return
            if callable(callback):
                callback(None, FAIL_REASON.NOT_LEADER)


class RaftNode:
    """One replica: the state machine, its pysyncobj node, and the loop thread driving it.

    ``submit`` may be called from any thread. Reads of the state go through ``read`` (the
    state lock), because the loop thread mutates it.
    """

    def __init__(
        self,
        options: RaftOptions,
        state: StateMachine | None = None,
        on_applied: AppliedHook | None = None,
        on_role: RoleHook | None = None,
    ) -> None:
        self.options = options
        self.state = state or StateMachine()
        self._state_lock = threading.Lock()
        self._on_applied = on_applied
        self._on_role = on_role
        self._stopping = threading.Event()
        #: Work that must run on the loop thread (pysyncobj is not thread-safe).
        self._calls: deque[Callable[[], None]] = deque()
        #: Submitted commands not yet handed to pysyncobj, with the term each was stamped in;
        #: the loop groups them per tick.
        self._proposals: deque[tuple[bytes, ProposalCallback, int]] = deque()
        self._announced_commit = 0
        self._last_leader_contact = time.monotonic()
        #: Snapshots installed into the state (the state object was replaced).
        self.snapshot_installs = 0
        #: Times the known leader changed (to another node or to none).
        self.leader_changes = 0
        self._last_leader: str | None = None
        #: "Your entry does not match" answers this follower sent (each costs a round trip).
        self.log_repair_replies = 0
        #: AppendEntries reaching back into entries this follower holds (a late resend, a
        #: heartbeat behind its log) rewritten so pysyncobj deletes none that match.
        self.late_appends_rewritten = 0
        #: Commands other nodes forwarded to this one (pysyncobj's ``apply_command``), refused.
        self.forwarded_commands_refused = 0
        self._forwarded_logged_at = float("-inf")
        self._forwarded_unlogged = 0
        #: While pysyncobj handles a rewritten AppendEntries: the last index it covered, the
        #: most ``_send_next_index`` may acknowledge.
        self._ack_at_most: int | None = None
        #: On the leader: (term, {peer address: protocol version it reported in that term}).
        self._protocol_reports: tuple[int, dict[str, int]] = (-1, {})
        os.makedirs(options.data_dir, exist_ok=True)
        if migrate_pysyncobj_journal(options.data_dir):
            log.info("converted pysyncobj's %s to %s", PYSYNCOBJ_JOURNAL_FILE, LOG_FILE)
        #: The Raft log on disk (entries, term, vote): ours, synced (see ``raftlog``).
        self.log = RaftLog(DiskFiles(options.data_dir), durable=options.durable, fail=halt)
        self._finish_compaction()
        conf = SyncObjConf(
            autoTick=False,
            appendEntriesUseBatch=options.batch,
            appendEntriesPeriod=options.heartbeat_s,
            appendEntriesBatchSizeBytes=_APPEND_BATCH_BYTES,
            raftMinTimeout=options.election_timeout_min_s,
            raftMaxTimeout=options.election_timeout_max_s,
            # A leader that hears from no majority for an election timeout steps down.
            leaderFallbackTimeout=options.election_timeout_max_s,
            connectionRetryTime=options.connection_retry_s,
            connectionTimeout=max(1.0, options.election_timeout_max_s * 2),
            journalFile=os.path.join(options.data_dir, LOG_FILE),
            fullDumpFile=os.path.join(options.data_dir, SNAPSHOT_FILE),
            serializer=self._write_snapshot,
            deserializer=self._read_snapshot,
            useFork=False,
            logCompactionMinEntries=options.compaction_min_entries,
            logCompactionMinTime=300,
            password=options.password,
            bindAddress=options.self_address,
            maxBindRetries=10,
            bindRetryTime=0.2,
            dynamicMembershipChange=True,
            onStateChanged=self._role_changed,
        )
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self.replica = _Replica(self, conf, options, self.log)
        self.replica._poller.subscribe(  # pysyncobj internal: the loop's poller
            self._wake_reader.fileno(), self._drain_wakeups, POLL_EVENT_TYPE.READ
        )
        transport = self.replica._SyncObj__transport  # pysyncobj internal
        self._original_on_message = self.replica._SyncObj__onMessageReceived  # pysyncobj internal
        transport.setOnMessageReceivedCallback(self._on_message)
        self.replica._SyncObj__sendNextNodeIdx = self._send_next_index  # pysyncobj internal
        # After the tick has sent AppendEntries, before it waits for the acks.
        self.replica.addOnTickCallback(self.log.sync)
        log_refused_peers(self.replica, transport)
        self._thread = threading.Thread(target=self._run, name="turnstile-raft", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops the loop and closes the journal and sockets."""
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._thread.is_alive():
            log.error("raft loop did not stop within 10 s; leaving its sockets to the process exit")
            return
        self.replica.destroy()  # with autoTick off: closes transport and journal right here
        self._wake_reader.close()
        self._wake_writer.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                while self._calls:
                    self._calls.popleft()()
                self._propose_pending()
                if self.options.batch:
                    self.replica._checkCommandsToApply()
                    self._send_now_if_idle()
                if not self.replica._SyncObj__otherNodes:  # pysyncobj internal
                    # Alone, the tick commits what this node holds: synced first.
                    self.log.sync()
                self.replica.doTick(self.options.heartbeat_s / 2)
                leader = self.leader_address
                if leader != self._last_leader:
                    self._last_leader = leader
                    self.leader_changes += 1
                    log.info("leader is now %s", leader or "unknown")
            except Exception:
                log.exception("raft loop iteration failed")
                time.sleep(self.options.heartbeat_s)
            took = time.monotonic() - started
            if took > self.options.election_timeout_min_s:
                # Followers call an election after this long without heartbeats; a stalled
                # leader also misses that it was deposed. Worth a line when it happens.
                log.warning("raft loop iteration took %.2f s (CPU starved or blocked)", took)

    def _send_now_if_idle(self) -> None:
        """Send AppendEntries this tick if it cannot put a second batch in flight."""
        replica = self.replica
        if not replica._isLeader():
            return
        next_index = replica._SyncObj__raftNextIndex  # pysyncobj internal
        match_index = replica._SyncObj__raftMatchIndex  # pysyncobj internal
        connected = replica._SyncObj__connectedNodes  # pysyncobj internal
        last_index = replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal
        commit = replica.raftCommitIndex
        followers = [n for n in connected if n in next_index]
        if not followers:
            return
        idle = all(next_index[n] == match_index[n] + 1 for n in followers)
        has_new = any(next_index[n] <= last_index for n in followers)
        if idle and (has_new or commit > self._announced_commit):
            replica._SyncObj__newAppendEntriesTime = 0  # pysyncobj internal
            self._announced_commit = commit

    def _on_message(self, node: Any, message: dict[str, Any]) -> None:
        """pysyncobj's message handler behind our guards (see module docstring): the Raft
        append rule on a follower, no forwarded commands, and on the leader the nextIndex
        guard and the members' protocol versions."""
        was_leader = self.replica._isLeader()
        try:
            self._dispatch(node, message)
        finally:
            if self.replica._isLeader():
                if not was_leader:
                    self.log.sync()  # the no-op of a leader just elected, sent at once
            elif self._protocol_reports[1]:
                self._protocol_reports = (-1, {})  # reports are the leader's, for its term

    def _dispatch(self, node: Any, message: dict[str, Any]) -> None:
        """Routes one peer message through the guard that applies to its kind."""
        kind = message.get("type")
        if kind == "append_entries":
            self._last_leader_contact = time.monotonic()
            self._append_entries(node, message)
            return
        if kind == "apply_command" and self.options.term_fence:
            self._refuse_forwarded(node, message)
            return
        ack = kind == "next_node_idx" and self.replica._isLeader()
        if ack:
            self._record_protocol(node, message)
        reset = bool(message.get("reset"))
        guarded = self.options.next_index_guard and ack and (reset or message.get("success"))
        if not guarded:
            self._original_on_message(node, message)
            return
        next_index = self.replica._SyncObj__raftNextIndex  # pysyncobj internal
        before = next_index.get(node)
        self._original_on_message(node, message)
        after = next_index.get(node, before)
        if before is not None and (after > before if reset else after < before):
            next_index[node] = before

    def _append_entries(self, node: Any, message: dict[str, Any]) -> None:
        """Follower side: hands pysyncobj the AppendEntries rewritten by the Raft append rule;
        while it handles one that only repeated entries held here, its reply acknowledges no
        more than the message covered (``_send_next_index`` is called from the handler)."""
        rewritten, covered = self._raft_append_rule(message)
        self._ack_at_most = covered
        try:
            self._original_on_message(node, rewritten)
        finally:
            self._ack_at_most = None

    def _raft_append_rule(self, message: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """``_append_rule`` against this node's log; counts the messages it rewrote."""
        replica = self.replica
        if (
            "prevLogIdx" not in message
            or "transmission" in message
            or message.get("term", 0) < replica.raftCurrentTerm  # pysyncobj ignores it
        ):
            return message, None
        raft_log = replica._SyncObj__raftLog  # pysyncobj internal: entries (command, index, term)
        first = raft_log[0][1]
        rewritten, covered = self._append_rule(
            message, first, raft_log[-1][1], lambda index: raft_log[index - first][2]
        )
        if rewritten is not message:
            self.late_appends_rewritten += 1
        return rewritten, covered

    @staticmethod
    def _append_rule(
        message: dict[str, Any], first: int, last: int, term_at: Callable[[int], int]
    ) -> tuple[dict[str, Any], int | None]:
        """The Raft AppendEntries rule as a rewrite of the message pysyncobj then handles, for
        a follower holding entries ``first``..``last`` (``term_at(i)``: the local term at i).

        pysyncobj deletes every local entry after ``prevLogIdx`` whenever there is one, without
        comparing terms; a late resend or a heartbeat behind this log would delete entries this
        node acknowledged (a committed entry could be lost). Raft deletes only from the first
        entry whose term conflicts: the message is rewritten to start there, so pysyncobj's
        truncation (and its CRITICAL line, if that reaches an applied entry: real divergence)
        happens only then. A ``prevLogIdx`` below ``first`` (compacted into a snapshot:
        committed, so equal to the leader's) is anchored on ``first``.

        A message whose entries are all here already is rewritten to an empty one anchored on
        ``last`` rather than dropped: pysyncobj still resets the election timer, and learns the
        commit index, capped at the last index the message covered (entries past it may not be
        the leader's). Returns the message to hand on (the same object when unchanged) and,
        for such a message, that covered index: the most the reply may acknowledge.
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

    def _refuse_forwarded(self, node: Any, message: dict[str, Any]) -> None:
        """Drops a command another node forwarded (pysyncobj's ``apply_command``): only the
        leader's own, term-checked submissions may reach the log. A waiting caller on an older
        peer is told NOT_LEADER (not applied). Logged at most once per 10 s, with a count."""
        self.forwarded_commands_refused += 1
        if "request_id" in message:
            response = {
                "type": "apply_command_response",
                "request_id": message["request_id"],
                "error": FAIL_REASON.NOT_LEADER,
            }
            self.replica._SyncObj__transport.send(node, response)  # pysyncobj internal
        now = time.monotonic()
        if now - self._forwarded_logged_at < 10.0:
            self._forwarded_unlogged += 1
            return
        unlogged, self._forwarded_unlogged = self._forwarded_unlogged, 0
        self._forwarded_logged_at = now
        log.warning(
            "refused a command forwarded by %s (Turnstile nodes forward none: an older build?)%s",
            getattr(node, "id", node),
            f" ({unlogged} more since the last report)" if unlogged else "",
        )

    def _record_protocol(self, node: Any, message: dict[str, Any]) -> None:
        """Leader side: the protocol version a follower reported in its reply (none: 1)."""
        term = self.replica.raftCurrentTerm
        reports_term, reports = self._protocol_reports
        if reports_term != term:
            reports = {}
            self._protocol_reports = (term, reports)
        version = message.get("turnstile_protocol", 1)
        reports[node.id] = version if type(version) is int else 1

    def member_protocol_versions(self) -> dict[str, int]:
        """On the leader: the protocol version of each member of the current Raft
        configuration, itself included, as reported in this term (0: not heard from yet), so
        a new kind of command is proposed only once every member supports it. {} elsewhere.

        Any thread: it reads copies, and reports of another term (a leadership since lost)
        never count.
        """
        replica = self.replica
        if not replica._isLeader():
            return {}
        reports_term, reports = self._protocol_reports
        heard = dict(reports) if reports_term == replica.raftCurrentTerm else {}
        members = replica._SyncObj__otherNodes.copy()  # pysyncobj internal: set of TCPNode
        versions = {member.id: heard.get(member.id, 0) for member in members}
        versions[self.options.self_address] = self.options.protocol_version
        return versions

    def _send_next_index(
        self,
        node: Any,
        reset: bool = False,
        nextNodeIdx: int | None = None,  # noqa: N803 - pysyncobj's keyword
        success: bool = False,
    ) -> None:
        """A follower's answer to AppendEntries, in place of pysyncobj's (same fields): with
        fast log repair, acknowledging no more than a rewritten AppendEntries covered, sent
        only once the entries it acknowledges are synced, and with this build's protocol
        version (see module docstring)."""
        replica = self.replica
        if reset and not success and nextNodeIdx is not None:
            self.log_repair_replies += 1
            if self.options.fast_log_repair:
                nextNodeIdx = min(nextNodeIdx, replica.raftCommitIndex + 1)  # noqa: N806
        if nextNodeIdx is None:
            last_index = replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal
            nextNodeIdx = last_index + 1  # noqa: N806
        if success and self._ack_at_most is not None:
            nextNodeIdx = min(nextNodeIdx, self._ack_at_most + 1)  # noqa: N806
        if success:
            # What this acknowledges must be on disk first: one sync covers every entry the
            # message appended (and anything before it not yet synced).
            self.log.sync()
        replica._SyncObj__transport.send(  # pysyncobj internal
            node,
            {
                "type": "next_node_idx",
                "next_node_idx": nextNodeIdx,
                "reset": reset,
                "success": success,
                "turnstile_protocol": self.options.protocol_version,
            },
        )

    # ------------------------------------------------------------------ proposing

    def submit(self, payload: bytes, callback: ProposalCallback, term: int) -> None:
        """Queues a command stamped in ``term`` for the log; ``callback`` gets
        (Applied, SUCCESS) or (None, reason).

        Thread-safe. The command reaches pysyncobj only if this node still leads in ``term``
        when the loop hands it over; otherwise it fails with NOT_LEADER (not applied). The
        callback runs on the loop thread and is guarded: an exception in it is logged, never
        allowed into pysyncobj (which would apply the entry twice).
        """
        self._proposals.append((payload, callback, term))
        self._wake()

    def _propose_pending(self) -> None:
        """Loop thread: hands what was submitted since the last tick to pysyncobj, grouped.

        Commands submitted together become one log entry (``encode_batch``), up to the group
        bounds: one pickle, one journal record and one apply call for all of them. Every
        command of a group shares its entry's fate: applied in order, or not at all. A command
        stamped in another term than this node's current leadership is refused here.
        """
        proposals = self._proposals
        most = _GROUP_MAX_COMMANDS if self.options.group_commands else 1
        while proposals:
            group: list[tuple[bytes, ProposalCallback]] = []
            size = 0
            while proposals and len(group) < most and size < _GROUP_MAX_BYTES:
                payload, callback, term = proposals.popleft()
                if not self._leads_in(term):
                    _guarded(callback)(None, FAIL_REASON.NOT_LEADER)
                    continue
                group.append((payload, callback))
                size += len(payload)
            if not group:
                continue
            if len(group) == 1:
                payload, callback = group[0]
                self.replica.apply(payload, callback=_guarded(callback))
            else:
                callbacks = [callback for _payload, callback in group]
                self.replica.apply(
                    encode_batch([payload for payload, _callback in group]),
                    callback=_guarded(_split_group(callbacks)),
                )

    def _leads_in(self, term: int) -> bool:
        """This node is leader in ``term`` right now (loop thread, so nothing moves meanwhile)."""
        if not self.options.term_fence:
            return True
        return bool(self.replica._isLeader()) and self.replica.raftCurrentTerm == term

    def transfer_leadership(self, peer_address: str | None, callback: ProposalCallback) -> None:
        """Asks pysyncobj (on the loop thread) to hand leadership to ``peer_address``, or to
        the most caught-up follower; ``callback(None, reason)`` says whether it was sent."""
        guarded = _guarded(callback)
        self._calls.append(lambda: self.replica.transferLeadership(peer_address, callback=guarded))
        self._wake()

    def change_membership(self, add: bool, peer_address: str, callback: ProposalCallback) -> None:
        """Adds or removes a Raft member through the log (pysyncobj allows one change at a
        time and answers REQUEST_DENIED otherwise)."""
        guarded = _guarded(callback)
        change = self.replica.addNodeToCluster if add else self.replica.removeNodeFromCluster
        self._calls.append(lambda: change(peer_address, callback=guarded))
        self._wake()

    def _wake(self) -> None:
        # BlockingIOError: a wake-up is already pending; OSError: we are shutting down.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")

    def _drain_wakeups(self, _descr: int, _event: int) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_reader.recv(4096):
                pass

    # ------------------------------------------------------------------ applying

    def _apply_entry(self, payload: bytes) -> Applied | list[Applied]:
        """Runs on every replica for every committed entry. Never raises.

        Returns the ``Applied`` of a one-command entry, or a list of them for a group.
        """
        try:
            decoded = decode_entry(payload)
        except CodecError as exc:
            return self._apply_one(exc)
        if isinstance(decoded, list):
            return [self._apply_one(command) for command in decoded]
        return self._apply_one(decoded)

    def _apply_one(self, decoded: Command | CodecError) -> Applied:
        """Applies one decoded command. A command this build cannot apply halts the node:
        refusing it would leave this replica's state different from its peers' (during a
        rolling upgrade, say), so it stops loudly like a snapshot that fails to load."""
        if isinstance(decoded, CodecError):
            halt(f"a committed log entry cannot be decoded by this build ({decoded})")
        command = decoded
        if isinstance(command, SetClusterVersion) and command.version > PROTOCOL_VERSION:
            halt(
                f"the cluster moved to version {command.version}; this build supports "
                f"{PROTOCOL_VERSION}: upgrade it"
            )
        try:
            with self._state_lock:
                applied = self.state.apply(command)
        except Exception:
            log.exception("state machine raised applying %r", command)
            applied = Applied(Err(Reason.INTERNAL, "the state machine failed"), ())
        if self._on_applied is not None:
            try:
                self._on_applied(command, applied)
            except Exception:
                log.exception("apply hook failed")
        return applied

    def read(self, reader: Callable[[StateMachine], Any]) -> Any:
        """Runs ``reader`` on the state under the state lock (the loop thread mutates it)."""
        with self._state_lock:
            return reader(self.state)

    # ------------------------------------------------------------------ snapshots

    def _write_snapshot(self, path: str, raft_data: tuple[Any, ...]) -> None:
        """pysyncobj serializer hook (pysyncobj then renames the file into place, by
        ``_durable_replace``)."""
        with self._state_lock:
            state_bytes = snapshot.dump(self.state)
        write_replica_snapshot(path, state_bytes, raft_data)

    def _read_snapshot(self, path: str) -> tuple[Any, ...]:
        """pysyncobj deserializer hook: replaces our state, returns pysyncobj's metadata.

        A snapshot that cannot be read stops the process: pysyncobj would log the error and
        go on applying later entries to the old state, and this replica would diverge.
        """
        try:
            document = read_snapshot_file(path)
            state = snapshot.load(document.state, term_fence=self.options.term_fence)
        except Exception:
            log.exception("loading the snapshot %s failed", path)
            halt(f"cannot restore the snapshot {path}")
        with self._state_lock:
            self.state = state
            self.snapshot_installs += 1
        return raft_metadata(document)

    def _finish_compaction(self) -> None:
        """Drops the log prefix the snapshot covers, if a stop came between the two steps.

        pysyncobj renames a new snapshot into place in one tick and drops the entries it
        covers in a later one. On start it compares the log's first two entries with the
        snapshot's and, when they differ, clears the log down to the snapshot: a node stopped
        (or killed) between the two steps lost every entry after the snapshot, acknowledged
        ones included. Finishing the drop first keeps them. A snapshot that cannot be read is
        left to pysyncobj's load, which stops the node with the reason.
        """
        path = os.path.join(self.options.data_dir, SNAPSHOT_FILE)
        if not os.path.exists(path) or len(self.log) < 2:
            return
        try:
            document = read_snapshot_file(path)
        except (OSError, ValueError):
            return
        previous, last = document.previous_entry, document.last_entry
        position = previous[1] - self.log[0][1]
        if 0 < position < len(self.log) - 1 and self.log[position : position + 2] == [
            previous,
            last,
        ]:
            log.info("finishing a log compaction a stop interrupted (up to index %d)", last[1])
            self.log.deleteEntriesTo(position)

    # ------------------------------------------------------------------ status

    def _role_changed(self, old: int, new: int) -> None:
        if self._on_role is None:
            return
        try:
            self._on_role(old == 2, new == 2)
        except Exception:
            log.exception("role hook failed")

    @property
    def is_leader(self) -> bool:
        return bool(self.replica._isLeader())

    @property
    def leader_address(self) -> str | None:
        """Peer address of the leader as this node knows it."""
        leader = self.replica._getLeader()
        return leader.id if leader is not None else None

    @property
    def term(self) -> int:
        return int(self.replica.raftCurrentTerm)

    @property
    def commit_index(self) -> int:
        return int(self.replica.raftCommitIndex)

    @property
    def applied_index(self) -> int:
        return int(self.replica.raftLastApplied)

    @property
    def role(self) -> str:
        return _RAFT_STATE_NAMES.get(self.replica._SyncObj__raftState, "unknown")  # internal

    def follower_lag(self) -> dict[str, int]:
        """On the leader: how many entries each follower's match index trails the log."""
        if not self.is_leader:
            return {}
        last_index = self.replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal
        match_index = dict(self.replica._SyncObj__raftMatchIndex)  # pysyncobj internal
        return {node.id: max(0, last_index - match) for node, match in match_index.items()}

    def last_contact_s(self) -> float:
        """Seconds since the last AppendEntries from a leader (0 on the leader)."""
        if self.is_leader:
            return 0.0
        return max(0.0, time.monotonic() - self._last_leader_contact)


def _durable_replace(source: str, target: str) -> None:
    """pysyncobj's rename of a snapshot into place (the one it wrote, or the one a leader
    sent), with the file synced before and the directory after: a power loss must not leave
    an empty snapshot beside a log it already dropped, or undo the rename after the log it
    replaces was cleared. Always synced: snapshots are rare."""
    with open(source, "rb") as file:
        os.fsync(file.fileno())
    os.replace(source, target)
    DiskFiles(os.path.dirname(target) or ".").sync_directory()


pysyncobj.serializer.atomicReplace = _durable_replace  # pysyncobj internal

#: Exit status of a node that stopped because continuing could make its state diverge.
HALT_EXIT_STATUS = 70


def halt(why: str) -> NoReturn:
    """Stops this node process at once, with a CRITICAL line saying why.

    For what must never be papered over: pysyncobj would log an exception and go on applying
    later entries, and this replica would silently diverge from the others.
    """
    log.critical("%s; stopping this node", why)
    logging.shutdown()
    os._exit(HALT_EXIT_STATUS)


def _split_group(callbacks: list[ProposalCallback]) -> ProposalCallback:
    """One group entry's callback: each command's own result, or the entry's failure to all."""

    def split(result: Any, error: int) -> None:
        if error == SUCCESS and isinstance(result, list) and len(result) == len(callbacks):
            for callback, applied in zip(callbacks, result, strict=True):
                _guarded(callback)(applied, SUCCESS)
            return
        if error == SUCCESS:
            log.error("a grouped entry returned %r for %d commands", result, len(callbacks))
            error = FAIL_REASON.UNKNOWN_OUTCOME
        for callback in callbacks:
            _guarded(callback)(None, error)

    return split


def _guarded(callback: ProposalCallback) -> ProposalCallback:
    def guarded(result: Any, error: int) -> None:
        try:
            callback(result, error)
        except Exception:
            log.exception("proposal callback failed")

    return guarded


#: pysyncobj failure codes that guarantee the command was not applied.
NOT_APPLIED = frozenset(
    {
        FAIL_REASON.QUEUE_FULL,
        FAIL_REASON.MISSING_LEADER,
        FAIL_REASON.NOT_LEADER,
        FAIL_REASON.DISCARDED,
    }
)
SUCCESS = FAIL_REASON.SUCCESS


def write_initial_snapshot(data_dir: str, state_bytes: bytes, cluster: list[str]) -> str:
    """Writes the Raft snapshot a node of a *new* cluster starts from; returns its path.

    Used by ``turnstile snapshot restore``. The log it describes holds two no-op entries at
    indexes 2 and 3 of term 0, both applied, so every restored node starts with the same log
    and the same state. Index 2, not 1: a node started with an empty data directory instead
    (its log is one no-op at index 1) then cannot match the leader's log and is sent the
    snapshot, rather than silently replaying from an empty state. ``cluster`` is every
    member's peer address. Refuses a data directory that already holds Raft files.
    """
    os.makedirs(data_dir, exist_ok=True)
    for name in RAFT_FILES:
        if os.path.exists(os.path.join(data_dir, name)):
            raise FileExistsError(f"{data_dir} already holds {name}; restore into an empty one")
    no_op = bytes([_COMMAND_TYPE.NO_OP])  # pysyncobj internal: its log entry type
    data = pack_snapshot_file(state_bytes, [no_op, 3, 0], [no_op, 2, 0], cluster)
    files = DiskFiles(data_dir)
    files.replace(SNAPSHOT_FILE, data, durable=True)
    return files.path(SNAPSHOT_FILE)
