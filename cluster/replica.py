"""What a node needs from its Raft replica: the seam between the node and pysyncobj.

``turnstile.cluster.raft.RaftNode`` is the real one. The unit tests of the node, the service
and the protocols run against an in-memory one over the same state machine (as hashicorp/raft
ships in-memory stores and transports), so the leader's rules are tested without processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from turnstile.cluster.proposals import ProposalCallback
from turnstile.cluster.raft import AppliedHook, AppliedIndexHook, RoleHook
from turnstile.cluster.raft_options import RaftOptions
from turnstile.cluster.state import StateMachine

T = TypeVar("T")


class SyncCounters(Protocol):
    """The Raft log's fdatasync counters, for the metrics."""

    @property
    def syncs(self) -> int: ...

    @property
    def sync_seconds(self) -> float: ...


class Replica(Protocol):
    """One member's Raft replica of the state machine.

    Callbacks (``on_applied``, ``on_role``, ``on_applied_index``, proposal and request
    callbacks) may run on another thread; the node hands them to its loop
    (``turnstile.cluster.bridge``).
    """

    @property
    def log(self) -> SyncCounters: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_address(self) -> str | None: ...

    @property
    def term(self) -> int: ...

    @property
    def commit_index(self) -> int: ...

    @property
    def applied_index(self) -> int: ...

    @property
    def role(self) -> str: ...

    @property
    def snapshot_installs(self) -> int: ...

    @property
    def leader_changes(self) -> int: ...

    @property
    def pre_vote_rounds(self) -> tuple[int, int]:
        """Pre-vote rounds this replica asked for, and those it won (``elections``)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def submit(self, payload: bytes, callback: ProposalCallback, term: int) -> None:
        """Proposes ``payload`` if this replica leads in ``term``; ``callback(applied,
        error)`` answers."""

    def read(self, reader: Callable[[StateMachine], T]) -> T:
        """``reader(state)`` under the state's lock."""

    def follower_lag(self) -> dict[str, int]: ...

    def last_contact_s(self) -> float: ...

    def member_protocol_versions(self) -> dict[str, int]: ...

    def change_membership(
        self, add: bool, peer_address: str, callback: ProposalCallback
    ) -> None: ...

    def transfer_leadership(self, peer_address: str | None, callback: ProposalCallback) -> None: ...


#: Builds a node's replica: (options, state machine, applied hook, role hook, applied-index
#: hook).
ReplicaFactory = Callable[
    [RaftOptions, StateMachine, AppliedHook, RoleHook, AppliedIndexHook], Replica
]
