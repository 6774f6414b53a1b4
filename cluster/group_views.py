"""Read views of groups and elections: what their read RPCs report.

Pure functions of a ``StateMachine``, like ``turnstile.cluster.views``: they take ``now`` only
to report durations, and answer a request that breaks a bound (a bad name, a page size, a group
that does not exist) with the ``Err`` the state machine would refuse a command with. Each view
carries the state's ``revision``, from which a watcher follows the changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnstile.cluster import limits as bounds
from turnstile.cluster.limits import RefusedError
from turnstile.cluster.records import Candidate, ElectionState, GroupState
from turnstile.cluster.state import StateMachine
from turnstile.cluster.views import refusal_as_err
from turnstile.v1.reasons import Reason


@dataclass(frozen=True, slots=True)
class MemberView:
    member_id: str
    session: int
    capabilities: bytes
    joined_for_ms: int
    updated_for_ms: int
    client_name: str
    client_host: str
    client_pid: int


@dataclass(frozen=True, slots=True)
class GroupView:
    name: str
    age_ms: int
    members: tuple[MemberView, ...]


@dataclass(frozen=True, slots=True)
class CandidateView:
    member_id: str
    session: int
    #: The leadership's token; 0 for a candidate not elected.
    token: int
    #: How long it has led, or stood in the queue.
    for_ms: int
    client_name: str
    client_host: str
    client_pid: int


@dataclass(frozen=True, slots=True)
class ElectionView:
    name: str
    leader: CandidateView | None
    candidates: tuple[CandidateView, ...]


@refusal_as_err
def describe_group(state: StateMachine, name: str, now: int) -> tuple[GroupView, int]:
    """The group ``name`` and the revision; NOT_FOUND if it does not exist."""
    bounds.check_name(state.limits, "group name", name)
    target = state.groups.get(name)
    if target is None:
        raise RefusedError(Reason.NOT_FOUND, f"group {name!r} does not exist")
    return _group_view(state, target, now), state.revision


@refusal_as_err
def list_groups(
    state: StateMachine, prefix: str, after: str, limit: int, now: int
) -> tuple[list[GroupView], int]:
    """Groups whose name starts with ``prefix``, by name, after ``after``; and the revision."""
    page = bounds.check_page(state.limits, limit)
    names = sorted(n for n in state.groups if n.startswith(prefix) and n > after)[:page]
    return [_group_view(state, state.groups[n], now) for n in names], state.revision


@refusal_as_err
def describe_election(state: StateMachine, name: str, now: int) -> tuple[ElectionView, int]:
    """The leader and queue of ``name`` (none when nobody stands), and the revision."""
    bounds.check_name(state.limits, "election name", name)
    election = state.elections.get(name)
    view = _election_view(state, election, now) if election else ElectionView(name, None, ())
    return view, state.revision


@refusal_as_err
def list_elections(
    state: StateMachine, prefix: str, after: str, limit: int, now: int
) -> tuple[list[ElectionView], int]:
    """Elections with candidates whose name starts with ``prefix``; and the revision."""
    page = bounds.check_page(state.limits, limit)
    names = sorted(n for n in state.elections if n.startswith(prefix) and n > after)[:page]
    return [_election_view(state, state.elections[n], now) for n in names], state.revision


def _group_view(state: StateMachine, target: GroupState, now: int) -> GroupView:
    members = []
    for member_id in sorted(target.members):
        member = target.members[member_id]
        owner = state.sessions[member.session]
        members.append(
            MemberView(
                member_id=member.member_id,
                session=member.session,
                capabilities=member.capabilities,
                joined_for_ms=max(0, now - member.joined_at),
                updated_for_ms=max(0, now - member.updated_at),
                client_name=owner.client_name,
                client_host=owner.client_host,
                client_pid=owner.client_pid,
            )
        )
    return GroupView(target.name, max(0, now - target.created_at), tuple(members))


def _election_view(state: StateMachine, election: ElectionState, now: int) -> ElectionView:
    views = [_candidate_view(state, c, now) for c in election.candidates]
    return ElectionView(election.name, views[0], tuple(views[1:]))


def _candidate_view(state: StateMachine, candidate: Candidate, now: int) -> CandidateView:
    owner = state.sessions[candidate.session]
    return CandidateView(
        member_id=candidate.member_id,
        session=candidate.session,
        token=candidate.token,
        for_ms=max(0, now - candidate.since),
        client_name=owner.client_name,
        client_host=owner.client_host,
        client_pid=owner.client_pid,
    )
