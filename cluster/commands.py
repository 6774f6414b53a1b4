"""Commands, results and events of the state machine (encoded by ``turnstile.cluster.codec``).

Op codes and result codes are stable forever: add new ones, never renumber.

Every command carries ``now``: milliseconds of log time stamped by the leader, and ``term``:
the Raft term of the leadership that stamped it. The state machine refuses, with no effect
at all, a command stamped in a term older than one it has already applied (the term fence: a
deposed leader's late commands never act). Commands made on behalf of a client carry its
``session``, a per-session ``seq`` (request id, >= 1, reused by retries), ``acked``: every
seq <= acked has been answered, and ``answered``: seqs above acked that have been answered
too. Their results may be forgotten; ``answered`` keeps one long blocked acquire from pinning
every later result of its session.

Each command class is registered in ``COMMANDS`` (``code_tables``) with its op code, whether it
is deduplicated by (session, seq), and the cluster version it needs. Groups and elections have
their records in ``group_commands``, semaphores and acquires of several locks in
``semaphore_commands``; the unions below include them.

``PROTOCOL_VERSION`` is the newest command set this build applies. A command class registered
with ``since`` above the cluster's replicated version is neither proposed nor applied: a leader
raises the cluster version (``SetClusterVersion``) only once every member reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from turnstile.cluster import group_commands as group
from turnstile.cluster import semaphore_commands as semaphore
from turnstile.cluster.code_tables import COMMANDS, register_command, register_result
from turnstile.cluster.limits import Limits
from turnstile.v1.reasons import Reason

#: The newest command set this build applies (see ``since`` and ``SetClusterVersion``); 3 adds
#: no command, only the pre-vote messages between replicas (``elections``); 4 neither, only
#: sealed peer frames (``peer_transport``); 5 adds groups and elections (``group_commands``); 6
#: semaphores, acquires of several locks and descriptions (``semaphore_commands``).
PROTOCOL_VERSION = 6


# --------------------------------------------------------------------------- commands


@register_command(op=1)
@dataclass(frozen=True, slots=True)
class OpenSession:
    """Open a session that lives while the leader hears keep-alives within ``ttl_ms``."""

    now: int
    ttl_ms: int
    client_name: str
    client_host: str
    client_pid: int
    term: int = 0


@register_command(op=2)
@dataclass(frozen=True, slots=True)
class CloseSession:
    """End a session on the client's request: release its locks, drop its waiters."""

    now: int
    session: int
    term: int = 0


@register_command(op=3)
@dataclass(frozen=True, slots=True)
class ExpireSession:
    """Proposed by the leader when a session's keep-alive deadline passes."""

    now: int
    session: int
    term: int = 0


@register_command(op=4, exactly_once=True)
@dataclass(frozen=True, slots=True)
class Acquire:
    """Take ``name``; if held, queue for up to ``wait_ms`` (0: refuse at once)."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    max_hold_ms: int
    wait_ms: int
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=5)
@dataclass(frozen=True, slots=True)
class CancelWait:
    """The acquire ``acquire_seq`` gave up: drop its waiter and, with ``release_grant``,
    release a grant that raced in.

    The leader proposes it, without a request id of its own (applying it twice changes nothing
    more than once), when the caller's connection went away: the caller may retry the same
    request, so a grant it may yet receive is left alone (``release_grant`` false). Format 1
    journals also hold cancels with ``release_grant`` true, from a wait that timed out on the
    server; they replay as they applied then. A grant is now given back only by the caller
    itself (``Abandon``), which alone knows that no retry of it received the grant.
    """

    now: int
    session: int
    name: str
    acquire_seq: int
    release_grant: bool = False
    term: int = 0


@register_command(op=6, exactly_once=True)
@dataclass(frozen=True, slots=True)
class Release:
    """Release ``name`` if ``token`` holds it; the head waiter is granted in the same step."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    token: int
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=7, exactly_once=True)
@dataclass(frozen=True, slots=True)
class Extend:
    """Reset the max-hold of the hold ``token`` to ``max_hold_ms`` from now (0: no cap)."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    token: int
    max_hold_ms: int
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=8)
@dataclass(frozen=True, slots=True)
class ForceRelease:
    """Operator action: take ``name`` from its holder, recording ``reason``.

    With ``token`` (non-zero) only that hold is taken, so a retried force-release cannot take
    the lock from the waiter it was handed to.
    """

    now: int
    name: str
    reason: str
    token: int = 0
    term: int = 0


@register_command(op=9, exactly_once=True)
@dataclass(frozen=True, slots=True)
class SetUpList:
    """Create the distinct list ``name`` or, if it exists, reset its TTL (0: no expiry)."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    ttl_ms: int
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=10, exactly_once=True)
@dataclass(frozen=True, slots=True)
class Insert:
    """Add members to a list; each gets a dense id, a duplicate the id it was first given."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    members: tuple[bytes, ...]
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=11, exactly_once=True)
@dataclass(frozen=True, slots=True)
class TearDownList:
    """Delete a list and its ids."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=12)
@dataclass(frozen=True, slots=True)
class Tick:
    """Advance log time only: applies due expiries; also the barrier for linearizable reads."""

    now: int
    term: int = 0


@register_command(op=13)
@dataclass(frozen=True, slots=True)
class SetLimits:
    """Replace the bounds, so every replica checks the same ones from this entry on."""

    now: int
    limits: Limits
    term: int = 0


@register_command(op=14)
@dataclass(frozen=True, slots=True)
class SetMember:
    """Records a cluster member's addresses (the peer port for Raft, the client port for
    leader hints), so every node can name every member to clients."""

    now: int
    node_id: str
    peer_address: str
    client_address: str
    term: int = 0


@register_command(op=15)
@dataclass(frozen=True, slots=True)
class RemoveMember:
    """Forgets a member that has left the Raft configuration."""

    now: int
    node_id: str
    term: int = 0


@register_command(op=16, since=2)
@dataclass(frozen=True, slots=True)
class SetClusterVersion:
    """Raises the cluster's command set to ``version``: proposed by a leader once every member
    of the Raft configuration has reported that it supports it."""

    now: int
    version: int
    term: int = 0


@register_command(op=17, exactly_once=True, since=2)
@dataclass(frozen=True, slots=True)
class Abandon:
    """The client gave up on its acquire ``acquire_seq`` without learning the outcome: drop its
    waiter or release the grant it received, and refuse any late copy of it from now on."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    acquire_seq: int
    answered: tuple[int, ...] = ()
    term: int = 0


Command = (
    OpenSession
    | CloseSession
    | ExpireSession
    | Acquire
    | CancelWait
    | Release
    | Extend
    | ForceRelease
    | SetUpList
    | Insert
    | TearDownList
    | Tick
    | SetLimits
    | SetMember
    | RemoveMember
    | SetClusterVersion
    | Abandon
    | group.GroupCommand
    | semaphore.SemaphoreCommand
)


class SessionCommand(Protocol):
    """A command registered ``exactly_once``: made for a client's session, deduplicated by
    (session, seq)."""

    @property
    def session(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def acked(self) -> int: ...
    @property
    def answered(self) -> tuple[int, ...]: ...


def since(command: Command | type) -> int:
    """The cluster version from which a command may be proposed and applied (1: always)."""
    return COMMANDS.of(command).since


# --------------------------------------------------------------------------- results


@register_result(code=1)
@dataclass(frozen=True, slots=True)
class Err:
    """A refused command. Nothing was changed."""

    reason: Reason
    detail: str


@register_result(code=2)
@dataclass(frozen=True, slots=True)
class Done:
    """Applied; nothing to report."""


@register_result(code=3)
@dataclass(frozen=True, slots=True)
class SessionOpened:
    session: int
    ttl_ms: int


@register_result(code=4)
@dataclass(frozen=True, slots=True)
class Granted:
    """The lock is held with ``token`` until ``expires_at`` in log time (0: no cap)."""

    token: int
    expires_at: int


@register_result(code=5)
@dataclass(frozen=True, slots=True)
class Queued:
    """Waiting; the grant or the timeout arrives later as an event for (session, seq)."""

    position: int
    deadline: int


@register_result(code=6)
@dataclass(frozen=True, slots=True)
class NotAcquired:
    """Held by someone else and no wait, or the wait ended without a grant."""

    why: str


@register_result(code=7)
@dataclass(frozen=True, slots=True)
class Extended:
    expires_at: int


@register_result(code=8)
@dataclass(frozen=True, slots=True)
class WaitCancelled:
    """``removed``: the waiter was dropped; ``released``: a grant that raced in was released."""

    removed: bool
    released: bool


@register_result(code=9)
@dataclass(frozen=True, slots=True)
class ForceReleased:
    session: int
    token: int


@register_result(code=10)
@dataclass(frozen=True, slots=True)
class ListSetUp:
    created: bool
    expires_at: int


@register_result(code=11)
@dataclass(frozen=True, slots=True)
class Inserted:
    """One (added, id) per requested member, in request order."""

    results: tuple[tuple[bool, int], ...]


@register_result(code=12)
@dataclass(frozen=True, slots=True)
class TornDown:
    removed: bool


@register_result(code=13)
@dataclass(frozen=True, slots=True)
class Released:
    token: int


Result = (
    Err
    | Done
    | SessionOpened
    | Granted
    | Queued
    | NotAcquired
    | Extended
    | WaitCancelled
    | ForceReleased
    | ListSetUp
    | Inserted
    | TornDown
    | Released
    | group.GroupResult
    | semaphore.GrantedMany
)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class WaiterResolved:
    """A queued acquire (session, seq) got its final result (Granted, NotAcquired or Err)."""

    session: int
    seq: int
    name: str
    result: Result


@dataclass(frozen=True, slots=True)
class LockFreed:
    """A hold ended. ``cause`` is one of the ``CAUSE_*`` strings."""

    name: str
    session: int
    token: int
    cause: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    session: int
    cause: str


@dataclass(frozen=True, slots=True)
class ListExpired:
    name: str


@dataclass(frozen=True, slots=True)
class LockGranted:
    """A lock was granted to ``session`` with ``token`` (at once or to its head waiter)."""

    name: str
    session: int
    token: int


LIST_CREATED = "created"
LIST_INSERTED = "inserted"
LIST_TORN_DOWN = "torn_down"


@dataclass(frozen=True, slots=True)
class ListChanged:
    """A list was created, got members with ids ``first_id..last_id``, or was torn down."""

    name: str
    change: str
    first_id: int = 0
    last_id: int = 0


Event = (
    WaiterResolved
    | LockFreed
    | SessionEnded
    | ListExpired
    | LockGranted
    | ListChanged
    | group.GroupChanged
    | group.LeadershipChanged
    | semaphore.PermitGranted
    | semaphore.PermitFreed
)
#: The events watchers see (``turnstile.cluster.watches``): each applied command that has one
#: moves the state's revision.
WATCHED = (
    LockGranted,
    LockFreed,
    ListChanged,
    ListExpired,
    group.GroupChanged,
    group.LeadershipChanged,
)

CAUSE_RELEASED = "released"
CAUSE_MAX_HOLD = "max_hold"
CAUSE_SESSION_EXPIRED = "session_expired"
CAUSE_SESSION_CLOSED = "session_closed"
CAUSE_FORCE_RELEASED = "force_released"
CAUSE_WAIT_CANCELLED = "wait_cancelled"
CAUSE_ABANDONED = "abandoned"
