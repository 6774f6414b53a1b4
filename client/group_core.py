"""What the sync and asyncio groups and elections share and does no I/O: the views of a group
and an election, the trackers their watches keep, and a campaign's timing.

A member belongs to the session that joined it and leaves when that session ends; an
election's leader is the head of a FIFO queue of candidate sessions, elected with a fresh
fencing token from the counter locks use (``docs/design.md``, and the proto's "groups" and
"elections" sections).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from turnstile.client.core import client_identity
from turnstile.client.watch_core import (
    CAUSE_COMPACTED,
    WATCH_SLICE_S,
    Change,
    ChangeType,
    WatchKey,
    WatchKind,
)
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.timeouts import CLIENT_WAIT_GRACE_S

# ---------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class Member:
    """A group member as the cluster reported it."""

    member_id: str
    #: The session that joined it; the member leaves when that session ends.
    session_id: int
    capabilities: bytes
    #: Seconds it has been a member, and since its capabilities were last set.
    joined_for: float = 0.0
    updated_for: float = 0.0
    #: The joining client's name, host and pid (as the admin tools show them).
    client_name: str = ""
    client_host: str = ""
    client_pid: int = 0

    @classmethod
    def from_pb(cls, member: pb.GroupMember) -> Member:
        return cls(
            member.member_id,
            member.session_id,
            member.capabilities,
            member.joined_for_ms / 1000,
            member.updated_for_ms / 1000,
            member.client_name,
            member.client_host,
            member.client_pid,
        )


@dataclass(frozen=True)
class GroupInfo:
    """A group and its members, at the state's ``revision`` (watch from there)."""

    name: str
    #: Seconds the group has existed.
    age: float
    members: dict[str, Member]
    revision: int

    @classmethod
    def from_pb(cls, info: pb.GroupInfo, revision: int) -> GroupInfo:
        members = {m.member_id: Member.from_pb(m) for m in info.members}
        return cls(info.name, info.age_ms / 1000, members, revision)


def group_of(response: pb.ListGroupsResponse, name: str) -> GroupInfo | None:
    """Group ``name`` out of a listing by its name as prefix (None: no such group). A listing
    answers a missing group with its revision, where a Describe would be NOT_FOUND."""
    for info in response.groups:
        if info.name == name:
            return GroupInfo.from_pb(info, response.revision)
    return None


def group_read(name: str) -> pb.ListGroupsRequest:
    """The read of group ``name`` that works for a missing group too: see ``group_of``."""
    return pb.ListGroupsRequest(prefix=name, limit=1)


def check_member_id(member_id: str) -> None:
    if not isinstance(member_id, str) or not member_id:
        raise ValueError("a member id is a non-empty str")


@dataclass
class GroupTracker:
    """Group ``name``'s members as a watch knows them (see ``watch_core.Tracker``)."""

    name: str
    members: dict[str, Member] = field(default_factory=dict)
    exists: bool = False
    loaded: bool = False

    @property
    def key(self) -> WatchKey:
        return (WatchKind.GROUP, self.name)

    def read_request(self) -> pb.ListGroupsRequest:
        return group_read(self.name)

    def load(self, response: pb.ListGroupsResponse) -> tuple[list[Change], int]:
        info = group_of(response, self.name)
        now = info.members if info else {}
        changes: list[Change] = []
        if self.loaded:
            changes = self._difference(now, info is not None, response.revision)
        self.members, self.exists, self.loaded = dict(now), info is not None, True
        return changes, response.revision

    def _difference(self, now: dict[str, Member], exists: bool, revision: int) -> list[Change]:
        """What happened between the known state and ``now``, as made-up changes."""

        def change(kind: ChangeType, member: Member | None = None) -> Change:
            return Change(
                revision,
                WatchKind.GROUP,
                self.name,
                kind,
                member.member_id if member else "",
                member.session_id if member else 0,
                cause=CAUSE_COMPACTED,
                capabilities=member.capabilities if member and kind is not ChangeType.LEFT else b"",
            )

        changes = []
        if exists and not self.exists:
            changes.append(change(ChangeType.CREATED))
        for member_id in sorted(self.members.keys() - now.keys()):
            changes.append(change(ChangeType.LEFT, self.members[member_id]))
        for member_id in sorted(now):
            old, new = self.members.get(member_id), now[member_id]
            if old is None or old.session_id != new.session_id:
                if old is not None:
                    changes.append(change(ChangeType.LEFT, old))
                changes.append(change(ChangeType.JOINED, new))
            elif old.capabilities != new.capabilities:
                changes.append(change(ChangeType.UPDATED, new))
        if self.exists and not exists:
            changes.append(change(ChangeType.DELETED))
        return changes

    def apply(self, change: Change) -> None:
        if change.type is ChangeType.CREATED:
            self.exists = True
        elif change.type is ChangeType.DELETED:
            self.exists, self.members = False, {}
        elif change.type in (ChangeType.JOINED, ChangeType.UPDATED):
            old = self.members.get(change.member_id)
            self.members[change.member_id] = Member(
                change.member_id,
                change.session_id,
                change.capabilities,
                client_name=old.client_name if old else "",
                client_host=old.client_host if old else "",
                client_pid=old.client_pid if old else 0,
            )
        elif change.type is ChangeType.LEFT:
            self.members.pop(change.member_id, None)


# ---------------------------------------------------------------------------- elections


@dataclass(frozen=True)
class Candidate:
    """An election's candidate (its leader, or one queued behind)."""

    member_id: str
    session_id: int
    #: The leadership's fencing token; 0 for a candidate not elected.
    token: int
    #: Seconds it has led (the leader) or stood in the queue.
    standing_for: float = 0.0
    client_name: str = ""
    client_host: str = ""
    client_pid: int = 0

    @classmethod
    def from_pb(cls, candidate: pb.ElectionCandidate) -> Candidate:
        return cls(
            candidate.member_id,
            candidate.session_id,
            candidate.token,
            candidate.for_ms / 1000,
            candidate.client_name,
            candidate.client_host,
            candidate.client_pid,
        )


def leader_of(response: pb.DescribeElectionResponse) -> Candidate | None:
    election = response.election
    return Candidate.from_pb(election.leader) if election.HasField("leader") else None


def default_member_id(name: str | None) -> str:
    """A candidate's id when none is given: the client's name, host and pid."""
    client, host, pid = client_identity(name)
    return f"{client}@{host}:{pid}"


@dataclass
class ElectionTracker:
    """Election ``name``'s leader as a watch knows it (see ``watch_core.Tracker``)."""

    name: str
    leader: Candidate | None = None
    loaded: bool = False

    @property
    def key(self) -> WatchKey:
        return (WatchKind.ELECTION, self.name)

    def read_request(self) -> pb.DescribeElectionRequest:
        return pb.DescribeElectionRequest(name=self.name)

    def load(self, response: pb.DescribeElectionResponse) -> tuple[list[Change], int]:
        now = leader_of(response)
        changes: list[Change] = []
        old = self.leader
        differs = (old.token if old else 0) != (now.token if now else 0)
        if self.loaded and differs:
            if old is not None:
                changes.append(self._change(ChangeType.RESIGNED, old, response.revision))
            if now is not None:
                changes.append(self._change(ChangeType.ELECTED, now, response.revision))
        self.leader, self.loaded = now, True
        return changes, response.revision

    def _change(self, kind: ChangeType, leader: Candidate, revision: int) -> Change:
        return Change(
            revision,
            WatchKind.ELECTION,
            self.name,
            kind,
            leader.member_id,
            leader.session_id,
            leader.token,
            CAUSE_COMPACTED,
        )

    def apply(self, change: Change) -> None:
        if change.type is ChangeType.ELECTED:
            self.leader = Candidate(change.member_id, change.session_id, change.token)
        elif change.type is ChangeType.RESIGNED:
            self.leader = None


class CampaignTiming:
    """The timing of one ``campaign(timeout)``: how long each Campaign waits on the server (in
    slices of ``WATCH_SLICE_S``), and when to stop asking."""

    def __init__(self, timeout: float | None, started: float) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or non-negative seconds")
        self._ends = None if timeout is None else started + timeout

    def wait(self, now: float, first: bool) -> float | None:
        """Seconds the next Campaign waits on the server; None once the timeout passed (the
        first Campaign is always sent, with a zero wait at worst)."""
        if self._ends is None:
            return WATCH_SLICE_S
        left = self._ends - now
        if left <= 0 and not first:
            return None
        return max(0.0, min(left, WATCH_SLICE_S))

    def request(self, name: str, member_id: str, wait: float) -> tuple[pb.CampaignRequest, float]:
        """The Campaign, and the longest attempt (its wait plus the server's grace)."""
        return (
            pb.CampaignRequest(name=name, member_id=member_id, wait_ms=int(wait * 1000)),
            wait + CLIENT_WAIT_GRACE_S,
        )
