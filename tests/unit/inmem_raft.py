"""An in-memory Raft replica for unit tests of the node, its protocols and its servicers.

It satisfies ``turnstile.cluster.replica.Replica`` over one real state machine, as
hashicorp/raft ships in-memory stores and transports: no threads, sockets or disk. The test
plays the cluster: ``elect`` and ``depose`` change leadership, ``hold`` stops commits (a
leader without a quorum) until ``commit_held``, and ``answer`` sets what membership and
transfer requests get back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pysyncobj import FAIL_REASON

from turnstile.cluster.codec import decode_command
from turnstile.cluster.commands import PROTOCOL_VERSION, Command, OpenSession, SessionOpened
from turnstile.cluster.config import NodeConfig
from turnstile.cluster.node import Node
from turnstile.cluster.peers import Peer
from turnstile.cluster.proposals import ProposalCallback
from turnstile.cluster.raft import AppliedHook, AppliedIndexHook, RoleHook
from turnstile.cluster.raft_options import RaftOptions
from turnstile.cluster.state import StateMachine

T = TypeVar("T")


@dataclass
class SyncCounters:
    syncs: int = 0
    sync_seconds: float = 0.0


@dataclass
class Proposal:
    command: Command
    callback: ProposalCallback


@dataclass
class MembershipRequest:
    add: bool
    peer_address: str


class InMemoryRaft:
    """One replica that commits what its leader proposes at once (or when told)."""

    def __init__(
        self,
        options: RaftOptions,
        state: StateMachine,
        on_applied: AppliedHook,
        on_role: RoleHook,
        on_applied_index: AppliedIndexHook,
    ) -> None:
        self.options = options
        self.state = state
        self._on_applied = on_applied
        self._on_role = on_role
        self._on_applied_index = on_applied_index
        self.log = SyncCounters()
        self.is_leader = False
        self.term = 0
        self.commit_index = 0
        self.snapshot_installs = 0
        self.leader_changes = 0
        self.pre_vote_rounds = (0, 0)
        self.started = False
        #: Every command applied, in log order.
        self.applied: list[Command] = []
        #: Proposals waiting for ``commit_held`` while ``holding``.
        self.held: list[Proposal] = []
        self.holding = False
        #: Membership changes asked for, and the code the next request of any kind answers.
        self.membership_requests: list[MembershipRequest] = []
        self.transfers: list[str | None] = []
        self.answer_code: int = FAIL_REASON.SUCCESS
        #: Protocol versions the other members reported (none: a cluster of one).
        self.other_versions: dict[str, int] = {}

    # ------------------------------------------------------------------ the test's cluster

    def elect(self) -> None:
        """This replica wins the election of the next term."""
        self.term += 1
        self.is_leader = True
        self.leader_changes += 1
        self._on_role(False, True)

    def depose(self) -> None:
        """Another node wins the next term; held proposals are discarded (never applied)."""
        self.term += 1
        was_leader, self.is_leader = self.is_leader, False
        self.leader_changes += 1
        held, self.held = self.held, []
        for proposal in held:
            proposal.callback(None, FAIL_REASON.DISCARDED)
        self._on_role(was_leader, False)

    def hold(self) -> None:
        self.holding = True

    def take_held(self, kind: type[Command]) -> Proposal:
        """Takes the first held proposal of ``kind`` out of the queue: the test answers it
        later (``proposal.callback(None, code)``), as a late outcome from an old term."""
        proposal = next(p for p in self.held if isinstance(p.command, kind))
        self.held.remove(proposal)
        return proposal

    def commit_held(self) -> None:
        """Commits every held proposal in one burst, in order, and commits at once again."""
        self.holding = False
        held, self.held = self.held, []
        for proposal in held:
            self._commit(proposal)

    # ------------------------------------------------------------------ Replica

    @property
    def leader_address(self) -> str | None:
        return self.options.self_address if self.is_leader else None

    @property
    def applied_index(self) -> int:
        return self.commit_index

    @property
    def role(self) -> str:
        return "leader" if self.is_leader else "follower"

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def submit(self, payload: bytes, callback: ProposalCallback, term: int) -> None:
        if self.options.term_fence and not (self.is_leader and term == self.term):
            callback(None, FAIL_REASON.NOT_LEADER)
            return
        proposal = Proposal(decode_command(payload), callback)
        if self.holding:
            self.held.append(proposal)
        else:
            self._commit(proposal)

    def read(self, reader: Callable[[StateMachine], T]) -> T:
        return reader(self.state)

    def follower_lag(self) -> dict[str, int]:
        return {}

    def last_contact_s(self) -> float:
        return 0.0

    def member_protocol_versions(self) -> dict[str, int]:
        """This member's own version, and what the test says the others reported."""
        if not self.is_leader:
            return {}
        return {**self.other_versions, self.options.self_address: self.options.protocol_version}

    def change_membership(self, add: bool, peer_address: str, callback: ProposalCallback) -> None:
        self.membership_requests.append(MembershipRequest(add, peer_address))
        callback(None, self.answer_code)

    def transfer_leadership(self, peer_address: str | None, callback: ProposalCallback) -> None:
        self.transfers.append(peer_address)
        callback(None, self.answer_code)

    def _commit(self, proposal: Proposal) -> None:
        applied = self.state.apply(proposal.command)
        self.commit_index += 1
        self.applied.append(proposal.command)
        self._on_applied(proposal.command, applied)
        proposal.callback(applied, FAIL_REASON.SUCCESS)
        self._on_applied_index(self.commit_index)


def node_config(data_dir: Path) -> NodeConfig:
    """A one-member config whose files live under ``data_dir`` (only the password is read)."""
    password = data_dir / "peer-password"
    password.write_text("a-password-long-enough\n")
    me = Peer("n1", "127.0.0.1:7101", "127.0.0.1:7001")
    return NodeConfig(
        node_id=me.node_id,
        client_address=me.client_address,
        peer_address=me.peer_address,
        data_dir=data_dir,
        peer_password_file=password,
        peers=(me,),
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Lets the loop run until ``condition()`` holds; fails after a generous ``timeout``.

    The loop runs once before the first check, so what the replica posted to the node's
    bridge (a role change, say) is handled before the condition is judged.
    """
    deadline = time.monotonic() + timeout
    await asyncio.sleep(0)
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


async def open_session(node: Node, ttl_ms: int = 30_000) -> int:
    """Opens a session through the node, as the Open RPC does; returns its id."""
    opened = await node.execute(lambda now: OpenSession(now, ttl_ms, "worker", "host", 1))
    assert isinstance(opened, SessionOpened)
    return opened.session


async def leading_node(data_dir: Path) -> tuple[Node, InMemoryRaft]:
    """A started node over an in-memory replica, elected, serving as leader, and with the
    cluster version raised to this build's (as a cluster of one does at once)."""
    node = Node(node_config(data_dir), replica_factory=InMemoryRaft)
    raft = node.raft
    assert isinstance(raft, InMemoryRaft)
    node.start()
    raft.elect()
    await until(lambda: node.leading and raft.state.cluster_version == PROTOCOL_VERSION)
    return node, raft


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs an async test body on a fresh loop."""
    asyncio.run(test())
