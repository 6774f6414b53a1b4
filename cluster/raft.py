"""The pysyncobj adapter: one Raft replica of the state machine, driven by a loop we own.

pysyncobj **0.3.17** is pinned exactly in pyproject.toml. Its name-mangled internals are used
here and in ``pysyncobj_fixes`` (every correction of its behaviour, each with why and the test
that shows it), each use marked ``# pysyncobj internal``. The seams:

- ``SyncObj._SyncObj__onMessageReceived``, wrapped by ``RaftNode._on_message``: AppendEntries
  pass ``rewrite_by_append_rule``, forwarded commands are dropped (``ForwardedCommands``);
  on the leader, replies pass ``guard_next_index`` and report versions (``member_protocols``).
- ``SyncObj._SyncObj__sendNextNodeIdx``, replaced by ``RaftNode._send_next_index``: the reply
  with ``fast_log_repair``, acknowledging no more than a rewritten AppendEntries covered, sent
  once what it acknowledges is synced, with this build's protocol version; none to a commit
  announcement (``COMMIT_ONLY``) that matched.
- ``SyncObj._checkCommandsToApply``, overridden by ``_Replica``: ``fail_queued_commands`` off
  the leader. The loop hands a command over only while this node leads in the term it was
  stamped in; the state machine's term fence refuses whatever still arrives late.
- The loop: ``autoTick`` off, one thread owns every pysyncobj call, woken on submit through
  the replica's ``_poller`` (``LoopWakeup``); ``send_immediately`` runs before each tick and
  ``announce_commit`` in it, once it computed the commit index; an on-tick callback tells
  the applied index.
- The log: ``journal_factory_returning`` gives pysyncobj our ``raftlog.RaftLog``. A follower
  syncs before it acknowledges. pysyncobj counts the leader's whole log as matched when a tick
  computes the commit index, so the leader syncs in an on-tick callback (after the tick's
  AppendEntries, before it waits for acks), after the message that made it leader (its no-op
  is sent at once), and alone before each tick. ``RaftLog.setCurrentTerm`` syncs term and
  vote. Left: in a one-node cluster the election no-op commits in that same tick.
- Snapshots: the serializer hooks write and read ``snapshot_file``'s document; one that cannot
  be read stops the node. ``serializer.atomicReplace`` is ``durable_replace``, and
  ``finish_interrupted_compaction`` runs before pysyncobj loads.
- ``QuietTransfer`` holds proposals while a leadership transfer is pending.
- ``elections.Elections``: pre-vote, and standing at once when the leader's connection closes
  or a refused vote had the worse log; it sees every peer message first and runs before each
  tick.
- ``never_send_entries_in_chunks`` sets the batch size; callbacks handed to pysyncobj are
  ``guarded_callback``s; ``peer_transport.PeerTransport`` frames peer messages (sealed
  from cluster version ``SEALED_FRAMES_VERSION``, Fernet before and from older peers).

A committed entry this build cannot decode, or a cluster version above the one it supports,
stops the process (``halt``): refusing it would leave this replica's state different from its
peers'. The replicated surface is one method, ``apply(payload: bytes)`` (pysyncobj numbers
replicated methods by sorted name: a second would renumber ids in old journals), taking our
versioned msgpack command. With ``durability = "none"`` log entries are never synced (term,
vote, snapshots and compaction still are): durable against a process crash, not a power loss.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

from turnstile.cluster import pysyncobj_fixes, snapshot
from turnstile.cluster.codec import CodecError, decode_entry
from turnstile.cluster.commands import PROTOCOL_VERSION, Command, Err, SetClusterVersion
from turnstile.cluster.elections import PRE_VOTE_VERSION, Elections
from turnstile.cluster.member_protocols import PROTOCOL_FIELD, MemberProtocols
from turnstile.cluster.peer_transport import SEALED_FRAMES_VERSION, PeerTransport
from turnstile.cluster.proposals import (
    GROUP_MAX_COMMANDS,
    Proposal,
    ProposalCallback,
    group_entry,
    take_group,
)
from turnstile.cluster.pysyncobj_fixes import guarded_callback
from turnstile.cluster.raft_options import RaftOptions
from turnstile.cluster.raftlog import (
    LOG_FILE,
    PYSYNCOBJ_JOURNAL_FILE,
    DiskFiles,
    RaftLog,
    migrate_pysyncobj_journal,
)
from turnstile.cluster.snapshot_file import (
    SNAPSHOT_FILE,
    raft_metadata,
    read_snapshot_file,
    write_replica_snapshot,
)
from turnstile.cluster.state import Applied, StateMachine
from turnstile.v1.reasons import Reason

log = logging.getLogger(__name__)

#: Called on the raft loop thread after every applied command (all nodes, not only the leader).
AppliedHook = Callable[[Command | None, Applied], None]
#: Called on the loop thread, in the tick that applied them, with the index of the last entry
#: applied (each entry counted, whatever it held: pysyncobj's no-ops and membership changes
#: too). The ``AppliedHook`` runs before pysyncobj counts its entry as applied.
AppliedIndexHook = Callable[[int], None]
#: Called on the raft loop thread when the Raft role changes: (was_leader, is_leader).
RoleHook = Callable[[bool, bool], None]

_RAFT_STATE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}

pysyncobj_fixes.make_snapshot_renames_durable()


class _Replica(SyncObj):
    """The SyncObj with our single replicated entry point, our log, and no forwarding of
    commands."""

    def __init__(
        self, node: RaftNode, conf: SyncObjConf, options: RaftOptions, raft_log: RaftLog
    ) -> None:
        self._node = node
        self._forward = not options.term_fence
        # The dialer of each peer connection seals once every member runs this build.
        transport = functools.partial(
            PeerTransport, seal_when=lambda: node.state.cluster_version >= SEALED_FRAMES_VERSION
        )
        with pysyncobj_fixes.journal_factory_returning(raft_log):
            super().__init__(
                options.self_address, list(options.other_addresses), conf, transportClass=transport
            )

    @replicated
    def apply(self, payload: bytes) -> Applied | list[Applied]:
        return self._node._apply_entry(payload)

    def _checkCommandsToApply(self) -> None:  # noqa: N802 - pysyncobj's name
        """Moves queued commands into the log, on the leader only (``fail_queued_commands``)."""
        if self._forward or self._isLeader():
            super()._checkCommandsToApply()
        else:
            pysyncobj_fixes.fail_queued_commands(self)


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
        on_applied_index: AppliedIndexHook | None = None,
    ) -> None:
        self.options = options
        self.state = state or StateMachine()
        self._state_lock = threading.Lock()
        self._on_applied = on_applied
        self._on_role = on_role
        self._on_applied_index = on_applied_index
        self._told_applied = 0
        self._stopping = threading.Event()
        #: Work that must run on the loop thread (pysyncobj is not thread-safe).
        self._calls: deque[Callable[[], None]] = deque()
        #: Submitted commands not yet handed to pysyncobj, with the term each was stamped in;
        #: the loop groups them per tick.
        self._proposals: deque[Proposal] = deque()
        self._announced_commit = 0
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
        #: Commit announcements of the leader this follower did not answer (its log matched).
        self.commit_announcements_unanswered = 0
        #: Commands other nodes forwarded to this one (pysyncobj's ``apply_command``), refused.
        self.forwarded_commands_refused = 0
        self._forwarded = pysyncobj_fixes.ForwardedCommands()
        self._transfer = pysyncobj_fixes.QuietTransfer(
            options.election_timeout_max_s if options.quiet_transfer else 0.0
        )
        #: While pysyncobj handles a rewritten AppendEntries: the most its reply may acknowledge.
        self._ack_at_most: int | None = None
        #: While pysyncobj handles a commit announcement: a successful reply is not sent.
        self._commit_only = False
        self._protocols = MemberProtocols()
        os.makedirs(options.data_dir, exist_ok=True)
        if migrate_pysyncobj_journal(options.data_dir):
            log.info("converted pysyncobj's %s to %s", PYSYNCOBJ_JOURNAL_FILE, LOG_FILE)
        #: The Raft log on disk (entries, term, vote): ours, synced (see ``raftlog``).
        self.log = RaftLog(DiskFiles(options.data_dir), durable=options.durable, fail=halt)
        snapshot_path = os.path.join(options.data_dir, SNAPSHOT_FILE)
        pysyncobj_fixes.finish_interrupted_compaction(self.log, snapshot_path)
        conf = SyncObjConf(
            autoTick=False,
            appendEntriesUseBatch=options.batch,
            appendEntriesPeriod=options.heartbeat_s,
            raftMinTimeout=options.election_timeout_min_s,
            raftMaxTimeout=options.election_timeout_max_s,
            # A leader that hears from no majority for an election timeout steps down.
            leaderFallbackTimeout=options.election_timeout_max_s,
            connectionRetryTime=options.connection_retry_s,
            connectionTimeout=max(1.0, options.election_timeout_max_s * 2),
            journalFile=os.path.join(options.data_dir, LOG_FILE),
            fullDumpFile=snapshot_path,
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
        pysyncobj_fixes.never_send_entries_in_chunks(conf)
        self._wakeup = pysyncobj_fixes.LoopWakeup()
        self.replica = _Replica(self, conf, options, self.log)
        self._wakeup.subscribe(self.replica)
        transport = self.replica._SyncObj__transport  # pysyncobj internal
        self._original_on_message = self.replica._SyncObj__onMessageReceived  # pysyncobj internal
        transport.setOnMessageReceivedCallback(self._on_message)
        self.replica._SyncObj__sendNextNodeIdx = self._send_next_index  # pysyncobj internal
        # After the tick has computed the commit index, applied and sent AppendEntries,
        # before it waits for the acks: the commit announced, the log synced, the applied
        # index told.
        if options.batch:
            self.replica.addOnTickCallback(self._announce_commit)
        self.replica.addOnTickCallback(self.log.sync)
        self.replica.addOnTickCallback(self._tell_applied_index)
        self.elections = Elections(
            self.replica,
            enabled=lambda: self.state.cluster_version >= PRE_VOTE_VERSION,
            timeout_s=(options.election_timeout_min_s, options.election_timeout_max_s),
        )
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
        self._wakeup.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                while self._calls:
                    self._calls.popleft()()
                self._propose_pending()
                if self.options.batch:
                    self._announced_commit = pysyncobj_fixes.send_immediately(
                        self.replica, self._announced_commit
                    )
                if not self.replica._SyncObj__otherNodes:  # pysyncobj internal
                    # Alone, the tick commits what this node holds: synced first.
                    self.log.sync()
                self.elections.before_tick()
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

    def _announce_commit(self) -> None:
        self._announced_commit = pysyncobj_fixes.announce_commit(
            self.replica, self._announced_commit
        )

    def _tell_applied_index(self) -> None:
        applied = self.applied_index
        if applied != self._told_applied and self._on_applied_index is not None:
            self._told_applied = applied
            try:
                self._on_applied_index(applied)
            except Exception:
                log.exception("applied-index hook failed")

    # ------------------------------------------------------------------ peer messages

    def _on_message(self, node: Any, message: dict[str, Any]) -> None:
        """pysyncobj's message handler behind the fixes (see module docstring)."""
        was_leader = self.replica._isLeader()
        try:
            self._dispatch(node, message)
        finally:
            if self.replica._isLeader():
                if not was_leader:
                    self.log.sync()  # the no-op of a leader just elected, sent at once
            else:
                self._protocols.forget()

    def _dispatch(self, node: Any, message: dict[str, Any]) -> None:
        """Routes one peer message through the fix that applies to its kind."""
        kind, handle = message.get("type"), self._original_on_message
        if self.elections.receive(handle, node, message):
            return
        if kind == "append_entries":
            self._append_entries(node, message)
        elif kind == "apply_command" and self.options.term_fence:
            self.forwarded_commands_refused += 1
            self._forwarded.refuse(self.replica, node, message)
        elif kind == "next_node_idx" and self.replica._isLeader():
            self._protocols.record(self.replica.raftCurrentTerm, node.id, message)
            if self.options.next_index_guard:
                pysyncobj_fixes.guard_next_index(self.replica, handle, node, message)
            else:
                handle(node, message)
        else:
            handle(node, message)

    def _append_entries(self, node: Any, message: dict[str, Any]) -> None:
        """Follower side: hands pysyncobj the AppendEntries rewritten by the Raft append rule;
        its reply (``_send_next_index``, called from the handler) acknowledges no more than
        a rewritten message covered, and a commit announcement that matched is not answered
        (``pysyncobj_fixes.announce_commit``)."""
        rewritten, covered = pysyncobj_fixes.rewrite_by_append_rule(self.replica, message)
        if rewritten is not message:
            self.late_appends_rewritten += 1
        self._ack_at_most = covered
        self._commit_only = bool(message.get(pysyncobj_fixes.COMMIT_ONLY))
        try:
            self._original_on_message(node, rewritten)
        finally:
            self._ack_at_most = None
            self._commit_only = False

    def member_protocol_versions(self) -> dict[str, int]:
        """On the leader (any thread): the protocol version of each member of the current Raft
        configuration, itself included, as reported in this term (0: not heard from yet), so
        a new kind of command is proposed only once every member supports it. {} elsewhere."""
        replica = self.replica
        if not replica._isLeader():
            return {}
        members = {m.id for m in replica._SyncObj__otherNodes.copy()}  # pysyncobj internal
        own = (self.options.self_address, self.options.protocol_version)
        return self._protocols.versions(replica.raftCurrentTerm, members, *own)

    def _send_next_index(
        self,
        node: Any,
        reset: bool = False,
        nextNodeIdx: int | None = None,  # noqa: N803 - pysyncobj's keyword
        success: bool = False,
    ) -> None:
        """A follower's answer to AppendEntries, in place of pysyncobj's (same fields; see the
        module docstring for what it adds)."""
        replica = self.replica
        if reset and not success and nextNodeIdx is not None:
            self.log_repair_replies += 1
            if self.options.fast_log_repair:
                nextNodeIdx = pysyncobj_fixes.fast_log_repair(  # noqa: N806
                    nextNodeIdx, replica.raftCommitIndex
                )
        if nextNodeIdx is None:  # pysyncobj internal: its last log index
            nextNodeIdx = replica._SyncObj__getCurrentLogIndex() + 1  # noqa: N806
        if success and self._ack_at_most is not None:
            nextNodeIdx = min(nextNodeIdx, self._ack_at_most + 1)  # noqa: N806
        if success and self._commit_only:
            self.commit_announcements_unanswered += 1
            return
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
                PROTOCOL_FIELD: self.options.protocol_version,
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
        """Loop thread: hands what was submitted since the last tick to pysyncobj, grouped
        (``proposals``); one stamped in a term this node does not lead in is refused."""
        most = GROUP_MAX_COMMANDS if self.options.group_commands else 1
        if self._transfer.holding(self.replica):
            return
        while self._proposals:
            group = take_group(self._proposals, most, self._leads_in)
            if group:
                payload, callback = group_entry(group)
                self.replica.apply(payload, callback=guarded_callback(callback))

    def _leads_in(self, term: int) -> bool:
        """This node is leader in ``term`` right now (loop thread, so nothing moves meanwhile)."""
        if not self.options.term_fence:
            return True
        return bool(self.replica._isLeader()) and self.replica.raftCurrentTerm == term

    def transfer_leadership(self, peer_address: str | None, callback: ProposalCallback) -> None:
        """Asks pysyncobj (on the loop thread) to hand leadership to ``peer_address``, or to
        the most caught-up follower; ``callback(None, reason)`` says whether it was sent."""
        guarded = guarded_callback(callback)
        self._calls.append(lambda: self._transfer.request(self.replica, peer_address, guarded))
        self._wake()

    def change_membership(self, add: bool, peer_address: str, callback: ProposalCallback) -> None:
        """Adds or removes a Raft member through the log (pysyncobj allows one change at a
        time and answers REQUEST_DENIED otherwise)."""
        guarded = guarded_callback(callback)
        change = self.replica.addNodeToCluster if add else self.replica.removeNodeFromCluster
        self._calls.append(lambda: change(peer_address, callback=guarded))
        self._wake()

    def _wake(self) -> None:
        self._wakeup.wake()

    # ------------------------------------------------------------------ applying

    def _apply_entry(self, payload: bytes) -> Applied | list[Applied]:
        """Runs on every replica for every committed entry; never raises. Returns the
        ``Applied`` of a one-command entry, or a list of them for a group."""
        try:
            decoded = decode_entry(payload)
        except CodecError as exc:
            return self._apply_one(exc)
        if isinstance(decoded, list):
            return [self._apply_one(command) for command in decoded]
        return self._apply_one(decoded)

    def _apply_one(self, command: Command | CodecError) -> Applied:
        """Applies one decoded command. A command this build cannot apply halts the node:
        refusing it would leave this replica's state different from its peers' (during a
        rolling upgrade, say), so it stops loudly like a snapshot that fails to load."""
        if isinstance(command, CodecError):
            halt(f"a committed log entry cannot be decoded by this build ({command})")
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
        """pysyncobj serializer hook (pysyncobj then renames the file into place)."""
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

    # ------------------------------------------------------------------ status

    def _role_changed(self, old: int, new: int) -> None:
        if self._on_role is None:
            return
        try:
            self._on_role(old == 2, new == 2)
        except Exception:
            log.exception("role hook failed")

    @property
    def pre_vote_rounds(self) -> tuple[int, int]:
        return self.elections.rounds, self.elections.rounds_won

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
        return 0.0 if self.is_leader else self.elections.since_leader_contact()


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
