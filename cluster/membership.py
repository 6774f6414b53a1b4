"""Who the cluster's members are, and changing them one at a time.

The members live in two places that must agree: pysyncobj's Raft configuration (who votes and
receives entries) and the replicated registry in the state machine (ids and client addresses,
for leader hints). An addition registers the member first and then changes the Raft
configuration; a removal goes the other way round; a refused Raft change undoes the
registration. One change is in flight at a time, and the leader cannot remove itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from turnstile.cluster.commands import Command, RemoveMember, SetMember
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.peers import Peer, clash_problem, peer_problem
from turnstile.cluster.raft import NOT_APPLIED, SUCCESS
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.node import Node

log = logging.getLogger(__name__)


class Membership:
    """The members as this node knows them, and the changes its leader makes."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._change_in_flight = False
        #: Bumped on the Raft thread after a SetMember/RemoveMember applies.
        self._changes_applied = 0
        self._members_cache: tuple[tuple[int, int], tuple[Peer, ...]] | None = None
        self._leader_cache: tuple[tuple[str | None, tuple[int, int]], tuple[str, str]] | None = None

    def observe_applied(self, command: Command | None) -> None:
        """Raft thread, for every applied command: a registry change makes the caches stale
        before the next read, whichever thread makes it."""
        if isinstance(command, SetMember | RemoveMember):
            self._changes_applied += 1

    def members(self) -> list[Peer]:
        """The cluster's members: the replicated registry, or the config before it is seeded.

        Every response header names the leader from this list, so it is cached until a
        membership command applies or a snapshot is installed.
        """
        version = self._version()
        cached = self._members_cache
        if cached is not None and cached[0] == version:
            return list(cached[1])
        registry = self._node.raft.read(lambda state: dict(state.cluster_members))
        if registry:
            peers = tuple(Peer(node_id, *registry[node_id]) for node_id in sorted(registry))
        else:
            peers = tuple(self._node.config.peers)
        # Taken before reading: a change applied meanwhile makes this entry stale at once.
        self._members_cache = (version, peers)
        return list(peers)

    def leader_ids(self) -> tuple[str, str]:
        """(node id, client address) of the leader as this node knows it; empty if none."""
        address = self._node.raft.leader_address
        version = self._version()
        cached = self._leader_cache
        if cached is not None and cached[0] == (address, version):
            return cached[1]
        peer = next((p for p in self.members() if p.peer_address == address), None)
        ids = (peer.node_id, peer.client_address) if peer else ("", "")
        self._leader_cache = ((address, version), ids)
        return ids

    def find(self, node_id: str) -> Peer:
        """:raises TurnstileError: NOT_FOUND."""
        peer = next((p for p in self.members() if p.node_id == node_id), None)
        if peer is None:
            raise TurnstileError(Reason.NOT_FOUND, f"no member {node_id!r}")
        return peer

    async def add(self, peer: Peer) -> None:
        """Adds ``peer``, which must be valid and share no id or address with a member (the
        members themselves are not judged again: a rule added later cannot block additions).

        :raises TurnstileError: INVALID_ARGUMENT, NOT_LEADER, FAILED_PRECONDITION, or
            UNKNOWN_OUTCOME.
        """
        problem = peer_problem(peer) or clash_problem(peer, self.members())
        if problem:
            raise TurnstileError(Reason.INVALID_ARGUMENT, problem)
        await self._change(peer, add=True)

    async def remove(self, node_id: str) -> None:
        """Removes the member ``node_id`` (not the leader: transfer leadership first)."""
        await self._change(self.find(node_id), add=False)

    async def _change(self, peer: Peer, add: bool) -> None:
        node = self._node
        node.require_leader()
        if self._change_in_flight:
            raise TurnstileError(
                Reason.FAILED_PRECONDITION, "a membership change is in progress; retry after it"
            )
        if not add and peer.node_id == node.config.node_id:
            raise TurnstileError(
                Reason.FAILED_PRECONDITION,
                f"{peer.node_id} is the leader: transfer leadership first",
            )
        self._change_in_flight = True
        try:
            if add:
                await node.execute(
                    lambda now: SetMember(now, peer.node_id, peer.peer_address, peer.client_address)
                )
            error = await node.raft_request(
                lambda done: node.raft.change_membership(add, peer.peer_address, done)
            )
            if error != SUCCESS:
                if add:
                    await node.execute(lambda now: RemoveMember(now, peer.node_id))
                raise TurnstileError(
                    Reason.FAILED_PRECONDITION,
                    f"raft refused the change (code {error}): another change is still being "
                    "committed, or the member is already (not) in the configuration",
                )
            if not add:
                await node.execute(lambda now: RemoveMember(now, peer.node_id))
            log.warning("member %s %s (%s)", peer.node_id, "added" if add else "removed", peer)
        finally:
            self._change_in_flight = False

    def _version(self) -> tuple[int, int]:
        return (self._changes_applied, self._node.raft.snapshot_installs)

    async def transfer_leadership(self, node_id: str) -> None:
        """Hands leadership to ``node_id`` (empty: the most caught-up follower)."""
        node = self._node
        node.require_leader()
        target = None
        if node_id:
            peer = self.find(node_id)
            if peer.node_id == node.config.node_id:
                raise TurnstileError(Reason.FAILED_PRECONDITION, f"{node_id} is already leader")
            target = peer.peer_address
        # A busy follower is usually a few entries behind; give it a moment to catch up.
        deadline = time.monotonic() + 2.0
        while True:
            error = await node.raft_request(
                lambda done: node.raft.transfer_leadership(target, done)
            )
            if error == SUCCESS:
                log.info("leadership transfer to %s requested", node_id or "the best follower")
                return
            if error in NOT_APPLIED:
                raise TurnstileError(Reason.NOT_LEADER, "this node is no longer the leader")
            if time.monotonic() > deadline:
                raise TurnstileError(
                    Reason.FAILED_PRECONDITION,
                    f"refused: the target {node_id or '(any follower)'} is not connected or "
                    "not caught up with the leader's log; retry in a moment",
                )
            await asyncio.sleep(node.config.timing.heartbeat_ms / 1000)
