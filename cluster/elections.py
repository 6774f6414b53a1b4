"""When a replica stands for leader: after a pre-vote, at once when its leader's connection
closes, and at once when it refused a vote because its own log is the better one.

pysyncobj (``syncobj.py``, ``SyncObj._onTick``) starts an election whenever a follower's
election deadline has passed, and knows no other trigger. That costs a failover in three ways:

- **A kill -9 is noticed an election timeout late** (0.5-1.0 s), although the followers' TCP
  connections to the dead leader close at once (``TcpTransport._onDisconnected``).
- **The first election after a kill often fails.** Under load one follower has acknowledged an
  entry the other has not; when the one behind times out first, the other refuses its vote
  (correctly: Raft elects only an up-to-date log) but keeps its own deadline, so the cluster
  waits one more election timeout for the better candidate to stand.
- **A CPU-starved follower deposes a healthy leader.** Its deadline passes while the leader's
  heartbeats wait in its socket; its vote request carries a higher term, and the leader steps
  down. Elections triggered early would make that worse.

This module adds the pre-vote of the Raft thesis (section 9.6): before a real election a
candidate asks the others whether they would vote for it in the next term; they say yes only
if its log is as up to date as theirs and they have lost their leader themselves (no
AppendEntries for a minimum election timeout, or its connection closed). Only with a majority
of yeses does pysyncobj's election run, so a starved follower or a lone broken link deposes
nobody. With that guard, a follower whose leader's connection closes, or one that refuses a
vote with the better log, stands at once (after a short random stagger, so two followers
seldom split the vote). A transfer's ``timeout_now`` skips the pre-vote, as in the thesis.

The messages are ``pre_vote`` and ``pre_vote_reply``. A replica asks for pre-votes only from
cluster version ``PRE_VOTE_VERSION`` on, which a leader sets once every member reports it;
until then it elects as pysyncobj does, so a mixed-version cluster never waits on a reply an
older member would not send. Every replica of this build answers them. The pysyncobj
internals read here are marked ``# pysyncobj internal``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from pysyncobj import SyncObj

#: The cluster version from which replicas pre-vote (``commands.PROTOCOL_VERSION`` 3).
PRE_VOTE_VERSION = 3
#: A follower whose leader's connection closed stands after a random delay up to this, so
#: the two followers of a three-member cluster seldom stand in the same instant.
STAGGER_S = 0.05
#: A pre-vote round that was not won is asked again after a random time in this range, not
#: an election timeout later: a follower asked a moment before it lost the leader itself says
#: no, and a paused leader's followers should not wait another timeout for that.
PRE_VOTE_RETRY_S = (0.1, 0.2)
#: Stand this close to the deadline already: pysyncobj would elect in the very next tick.
_EARLY_S = 0.005

MessageHandler = Callable[[Any, dict[str, Any]], None]
Send = Callable[[Any, dict[str, Any]], None]

_FOLLOWER, _CANDIDATE = 0, 1


class Elections:
    """Pre-vote and early standing for one replica; every method runs on its loop thread."""

    def __init__(
        self,
        replica: SyncObj,
        *,
        enabled: Callable[[], bool],
        timeout_s: tuple[float, float],
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._replica = replica
        transport = replica._SyncObj__transport  # pysyncobj internal
        self._send: Send = transport.send
        on_disconnected = transport._onNodeDisconnectedCallback  # pysyncobj internal

        def disconnected(node: Any) -> None:
            on_disconnected(node)
            self.disconnected(node)

        transport.setOnNodeDisconnectedCallback(disconnected)
        self._enabled = enabled
        self._min_timeout_s, self._max_timeout_s = timeout_s
        self._clock = clock
        self._random = rand
        self._leader_contact = clock()
        self._leader_lost = False
        #: When to stand before the deadline (leader's connection closed, a better log).
        self._stand_at: float | None = None
        #: The pre-vote round in progress: its number and who said yes.
        self._round = 0
        self._yeses: set[str] = set()
        #: A round was won: the next tick runs pysyncobj's election.
        self._won = False
        #: Pre-vote rounds started, and won (``turnstile_raft_pre_vote_rounds_total``).
        self.rounds = 0
        self.rounds_won = 0

    # ------------------------------------------------------------------ the loop

    def before_tick(self) -> None:
        """Called before every ``doTick``: where pysyncobj would elect now, pre-vote instead,
        or let its election run when a round was won."""
        replica = self._replica
        state = replica._SyncObj__raftState  # pysyncobj internal
        if state not in (_FOLLOWER, _CANDIDATE) or not self._enabled():
            self._reset()
            return
        if self._won:
            self._won = False
            replica._SyncObj__raftElectionDeadline = 0  # pysyncobj internal: elect this tick
            return
        if replica._SyncObj__transferInProgress:  # pysyncobj internal: a transfer's timeout_now
            return
        now = self._clock()
        deadline = replica._SyncObj__raftElectionDeadline  # pysyncobj internal
        if self._stand_at is not None and now >= self._stand_at:
            self._stand_at = None
        elif deadline > now + _EARLY_S:
            return
        replica._SyncObj__raftElectionDeadline = now + self._timeout()  # pysyncobj internal
        self._start_round()
        low, high = PRE_VOTE_RETRY_S
        self._stand(low + (high - low) * self._random())

    def receive(self, handle: MessageHandler, node: Any, message: dict[str, Any]) -> bool:
        """Handles a message of the elections (``handle`` is pysyncobj's handler); False for
        any other kind, which is left to the caller."""
        kind = message.get("type")
        if kind == "append_entries":
            if message.get("term", 0) >= self._replica.raftCurrentTerm:
                self.heard_from_leader()
            return False
        if kind == "request_vote":
            self.request_vote(handle, node, message)
        elif kind == "pre_vote":
            self.pre_vote(node, message)
        elif kind == "pre_vote_reply":
            self.pre_vote_reply(node, message)
        else:
            return False
        return True

    def heard_from_leader(self) -> None:
        """An AppendEntries of this term or a later one arrived: the leader is alive."""
        self._leader_contact = self._clock()
        self._leader_lost = False
        self._stand_at = None
        self._won = False

    def disconnected(self, node: Any) -> None:
        """A peer's connection closed: if it was the leader's, stand soon."""
        if node is not None and node == self._replica._SyncObj__raftLeader:  # pysyncobj internal
            self._leader_lost = True
            if self._enabled():
                self._stand(self._random() * STAGGER_S)

    # ------------------------------------------------------------------ messages

    def request_vote(self, handle: MessageHandler, node: Any, message: dict[str, Any]) -> None:
        """pysyncobj's handling of a vote request; a refusal from a better log stands at once.

        Two candidates of one term with equal logs split the vote; the one with the greater
        id stands again at once, so the tie does not cost an election timeout."""
        handle(node, message)
        replica = self._replica
        if not self._enabled() or replica._SyncObj__raftState == 2:  # pysyncobj internal
            return
        if message.get("term") != replica.raftCurrentTerm:
            return
        if replica._SyncObj__votedForNodeId == node.id:  # pysyncobj internal: it got the vote
            return
        theirs = (message.get("last_log_term", 0), message.get("last_log_index", 0))
        ours = self._last_log()
        tie = ours == theirs and replica._SyncObj__votedForNodeId == replica.selfNode.id
        if ours > theirs or (tie and replica.selfNode.id > node.id):
            self._leader_lost = True
            self._stand(0.0)

    def pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        """Answers a pre-vote: yes if the asker's log is as up to date as this replica's and
        this replica has lost its leader too (it is no leader itself). Answered whatever the
        cluster version this replica has applied: one just restarted has not replayed its
        log yet, and a refusal for that reason would leave the asker no majority."""
        replica = self._replica
        theirs = (message.get("last_log_term", 0), message.get("last_log_index", 0))
        yes = (
            replica._SyncObj__raftState != 2  # pysyncobj internal: not the leader
            and message.get("term", 0) > replica.raftCurrentTerm
            and theirs >= self._last_log()
            and self._lost_leader()
        )
        self._send(node, {"type": "pre_vote_reply", "round": message.get("round"), "yes": yes})

    def pre_vote_reply(self, node: Any, message: dict[str, Any]) -> None:
        """Counts a yes of the current round; a majority (this replica included) wins it."""
        if message.get("round") != self._round or not message.get("yes") or self._won:
            return
        self._yeses.add(node.id)
        members = len(self._replica._SyncObj__otherNodes) + 1  # pysyncobj internal
        if len(self._yeses) + 1 > members / 2:
            self._won = True
            self.rounds_won += 1

    # ------------------------------------------------------------------ inside

    def _start_round(self) -> None:
        replica = self._replica
        self._round += 1
        self._yeses = set()
        self.rounds += 1
        last_term, last_index = self._last_log()
        message = {
            "type": "pre_vote",
            "round": self._round,
            "term": replica.raftCurrentTerm + 1,
            "last_log_index": last_index,
            "last_log_term": last_term,
        }
        for node in replica._SyncObj__otherNodes:  # pysyncobj internal
            self._send(node, message)
        if len(replica._SyncObj__otherNodes) == 0:  # pysyncobj internal: alone, it wins
            self._won = True
            self.rounds_won += 1

    def _stand(self, delay: float) -> None:
        at = self._clock() + delay
        self._stand_at = at if self._stand_at is None else min(self._stand_at, at)

    def since_leader_contact(self) -> float:
        """Seconds since the last AppendEntries of this term or a later one."""
        return max(0.0, self._clock() - self._leader_contact)

    def _lost_leader(self) -> bool:
        if self._replica._SyncObj__raftLeader is None or self._leader_lost:  # pysyncobj internal
            return True
        return self.since_leader_contact() >= self._min_timeout_s

    def _last_log(self) -> tuple[int, int]:
        entry = self._replica._SyncObj__raftLog[-1]  # pysyncobj internal: (command, index, term)
        return int(entry[2]), int(entry[1])

    def _timeout(self) -> float:
        spread = self._max_timeout_s - self._min_timeout_s
        return self._min_timeout_s + spread * self._random()

    def _reset(self) -> None:
        self._stand_at = None
        self._won = False
        self._yeses = set()
