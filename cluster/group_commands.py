"""Commands, results and events of groups and elections (cluster version 5).

Registered in the same tables as every other record (``code_tables``), with op and result
codes after those of ``commands``, stable forever. Every command here is a request of a
client's session, deduplicated by (session, seq) like an acquire.

- A group is a named set of members; a member (``member_id``) is tied to the session that
  joined it and carries an opaque ``capabilities`` value.
- An election is a FIFO queue of candidate sessions; the head leads, with a fencing token
  from the counter locks use, and hands off to the next in the step that ends its leadership.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnstile.cluster.code_tables import register_command, register_result

#: The cluster version groups and elections need.
GROUPS_SINCE = 5


@register_command(op=18, exactly_once=True, since=GROUPS_SINCE)
@dataclass(frozen=True, slots=True)
class CreateGroup:
    """Create the group ``name``; a group that exists is left as it is."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=19, exactly_once=True, since=GROUPS_SINCE)
@dataclass(frozen=True, slots=True)
class DeleteGroup:
    """Delete the group ``name``, which must have no members."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=20, exactly_once=True, since=GROUPS_SINCE)
@dataclass(frozen=True, slots=True)
class JoinGroup:
    """Add ``member_id`` to ``name`` for this session, unless the id is taken."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    member_id: str
    capabilities: bytes
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=21, exactly_once=True, since=GROUPS_SINCE)
@dataclass(frozen=True, slots=True)
class LeaveGroup:
    """Remove ``member_id`` from ``name``, whichever session joined it."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    member_id: str
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=22, exactly_once=True, since=GROUPS_SINCE)
@dataclass(frozen=True, slots=True)
class UpdateCapabilities:
    """Replace the capabilities of a member of ``name`` that this session joined."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    member_id: str
    capabilities: bytes
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=23, exactly_once=True, since=GROUPS_SINCE)
@dataclass(frozen=True, slots=True)
class Campaign:
    """Stand this session for the election ``name`` (once; standing again changes nothing)."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    member_id: str
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=24, exactly_once=True, since=GROUPS_SINCE)
@dataclass(frozen=True, slots=True)
class Resign:
    """Withdraw this session's candidacy for ``name``; a leader hands off to the next."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    answered: tuple[int, ...] = ()
    term: int = 0


GroupCommand = (
    CreateGroup | DeleteGroup | JoinGroup | LeaveGroup | UpdateCapabilities | Campaign | Resign
)


@register_result(code=14)
@dataclass(frozen=True, slots=True)
class GroupCreated:
    created: bool


@register_result(code=15)
@dataclass(frozen=True, slots=True)
class GroupJoined:
    """``joined`` false: the member id was already in the group."""

    joined: bool


@register_result(code=16)
@dataclass(frozen=True, slots=True)
class GroupLeft:
    """``left`` false: no such member."""

    left: bool


@register_result(code=17)
@dataclass(frozen=True, slots=True)
class CapabilitiesUpdated:
    """``updated`` false: this session has no such member."""

    updated: bool


@register_result(code=18)
@dataclass(frozen=True, slots=True)
class Standing:
    """Where a candidate stands: ``elected`` with the leadership's ``token``, or queued at
    ``position`` (the leader being 1)."""

    elected: bool
    token: int
    position: int


@register_result(code=19)
@dataclass(frozen=True, slots=True)
class Resigned:
    was_candidate: bool
    was_leader: bool


GroupResult = GroupCreated | GroupJoined | GroupLeft | CapabilitiesUpdated | Standing | Resigned

GROUP_CREATED = "created"
GROUP_DELETED = "deleted"
MEMBER_JOINED = "joined"
MEMBER_LEFT = "left"
MEMBER_UPDATED = "updated"
LEADER_ELECTED = "elected"
LEADER_RESIGNED = "resigned"


@dataclass(frozen=True, slots=True)
class GroupChanged:
    """A group was created or deleted, or a member joined, left or was updated (``change`` is
    one of the ``GROUP_*`` / ``MEMBER_*`` strings). ``cause`` says why a member left:
    ``left`` or how its session ended."""

    name: str
    change: str
    member_id: str = ""
    session: int = 0
    capabilities: bytes = b""
    cause: str = ""


@dataclass(frozen=True, slots=True)
class LeadershipChanged:
    """A candidate was elected, or a leader stepped down (``cause``: ``resigned`` or how its
    session ended)."""

    name: str
    change: str
    member_id: str
    session: int
    token: int
    cause: str = ""
