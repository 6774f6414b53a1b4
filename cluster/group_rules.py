"""The state machine's rules for groups and elections (``group_commands``).

Handlers entered in ``HANDLERS`` like the state machine's own methods: each takes the machine,
the request's session and the command, runs inside ``StateMachine.apply`` (so it is as pure
and deterministic as the rest), and raises ``RefusedError`` before any mutation to refuse.

- A member belongs to the session that joined it; ``end_session`` removes it when that session
  ends, as its locks are released.
- An election's head candidate leads. Whatever ends a leadership (resign, the end of the
  session) elects the next candidate in the same step, with a fresh fencing token from the
  counter locks use, so leaderships of one election have strictly increasing tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnstile.cluster import commands as cmd
from turnstile.cluster import group_commands as group
from turnstile.cluster import limits as bounds
from turnstile.cluster.handlers import handles
from turnstile.cluster.limits import RefusedError
from turnstile.cluster.records import Candidate, ElectionState, GroupMember, GroupState, Session
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.state import StateMachine

CAUSE_LEFT = "left"
CAUSE_RESIGNED = "resigned"


# --------------------------------------------------------------------------- groups


@handles(group.CreateGroup)
def create_group(
    machine: StateMachine, session: Session, command: group.CreateGroup
) -> group.GroupCreated:
    bounds.check_name(machine.limits, "group name", command.name)
    if command.name in machine.groups:
        return group.GroupCreated(created=False)
    if len(machine.groups) >= machine.limits.max_locks:
        raise RefusedError(
            Reason.LIMIT_EXCEEDED,
            f"{len(machine.groups)} groups exist, max_locks={machine.limits.max_locks}",
        )
    machine.groups[command.name] = GroupState(command.name, machine.clock)
    machine.emit(group.GroupChanged(command.name, group.GROUP_CREATED))
    return group.GroupCreated(created=True)


@handles(group.DeleteGroup)
def delete_group(machine: StateMachine, session: Session, command: group.DeleteGroup) -> cmd.Done:
    target = _existing_group(machine, command.name)
    if target.members:
        raise RefusedError(
            Reason.FAILED_PRECONDITION,
            f"group {command.name!r} has {len(target.members)} members; they must leave first",
        )
    del machine.groups[command.name]
    machine.emit(group.GroupChanged(command.name, group.GROUP_DELETED))
    return cmd.Done()


@handles(group.JoinGroup)
def join_group(
    machine: StateMachine, session: Session, command: group.JoinGroup
) -> group.GroupJoined:
    bounds.check_name(machine.limits, "member id", command.member_id)
    bounds.check_capabilities(machine.limits, command.capabilities)
    target = _existing_group(machine, command.name)
    if command.member_id in target.members:
        return group.GroupJoined(joined=False)
    if len(target.members) >= machine.limits.max_waiters_per_lock:
        raise RefusedError(
            Reason.LIMIT_EXCEEDED,
            f"group {command.name!r} has {len(target.members)} members, "
            f"max_waiters_per_lock={machine.limits.max_waiters_per_lock}",
        )
    target.members[command.member_id] = GroupMember(
        command.member_id, session.id, command.capabilities, machine.clock, machine.clock
    )
    session.joined.add((command.name, command.member_id))
    machine.emit(
        group.GroupChanged(
            command.name,
            group.MEMBER_JOINED,
            command.member_id,
            session.id,
            command.capabilities,
        )
    )
    return group.GroupJoined(joined=True)


@handles(group.LeaveGroup)
def leave_group(
    machine: StateMachine, session: Session, command: group.LeaveGroup
) -> group.GroupLeft:
    bounds.check_name(machine.limits, "member id", command.member_id)
    target = _existing_group(machine, command.name)
    member = target.members.get(command.member_id)
    if member is None:
        return group.GroupLeft(left=False)
    _remove_member(machine, target, member, CAUSE_LEFT)
    return group.GroupLeft(left=True)


@handles(group.UpdateCapabilities)
def update_capabilities(
    machine: StateMachine, session: Session, command: group.UpdateCapabilities
) -> group.CapabilitiesUpdated:
    bounds.check_name(machine.limits, "member id", command.member_id)
    bounds.check_capabilities(machine.limits, command.capabilities)
    target = _existing_group(machine, command.name)
    member = target.members.get(command.member_id)
    if member is None or member.session != session.id:
        return group.CapabilitiesUpdated(updated=False)
    member.capabilities = command.capabilities
    member.updated_at = machine.clock
    machine.emit(
        group.GroupChanged(
            command.name, group.MEMBER_UPDATED, member.member_id, session.id, member.capabilities
        )
    )
    return group.CapabilitiesUpdated(updated=True)


def _existing_group(machine: StateMachine, name: str) -> GroupState:
    bounds.check_name(machine.limits, "group name", name)
    target = machine.groups.get(name)
    if target is None:
        raise RefusedError(Reason.NOT_FOUND, f"group {name!r} does not exist")
    return target


def _remove_member(
    machine: StateMachine, target: GroupState, member: GroupMember, cause: str
) -> None:
    del target.members[member.member_id]
    owner = machine.sessions.get(member.session)
    if owner is not None:
        owner.joined.discard((target.name, member.member_id))
    machine.emit(
        group.GroupChanged(
            target.name, group.MEMBER_LEFT, member.member_id, member.session, cause=cause
        )
    )


# --------------------------------------------------------------------------- elections


@handles(group.Campaign)
def campaign(machine: StateMachine, session: Session, command: group.Campaign) -> group.Standing:
    bounds.check_name(machine.limits, "election name", command.name)
    bounds.check_name(machine.limits, "member id", command.member_id)
    election = machine.elections.get(command.name)
    current = standing(election, session.id)
    if current.position:
        return current
    if election is not None:
        if len(election.candidates) >= machine.limits.max_waiters_per_lock:
            raise RefusedError(
                Reason.LIMIT_EXCEEDED,
                f"election {command.name!r} has {len(election.candidates)} candidates, "
                f"max_waiters_per_lock={machine.limits.max_waiters_per_lock}",
            )
    elif len(machine.elections) >= machine.limits.max_locks:
        raise RefusedError(
            Reason.LIMIT_EXCEEDED,
            f"{len(machine.elections)} elections have candidates, "
            f"max_locks={machine.limits.max_locks}",
        )
    else:
        election = machine.elections[command.name] = ElectionState(command.name)
    election.candidates.append(Candidate(session.id, command.member_id, machine.clock))
    session.standing.add(command.name)
    if len(election.candidates) == 1:
        _elect_head(machine, election)
    return standing(election, session.id)


def standing(election: ElectionState | None, session: int) -> group.Standing:
    """Where ``session`` stands in ``election`` (position 0: it does not stand)."""
    for position, candidate in enumerate(election.candidates if election else [], start=1):
        if candidate.session == session:
            return group.Standing(position == 1, candidate.token, position)
    return group.Standing(False, 0, 0)


@handles(group.Resign)
def resign(machine: StateMachine, session: Session, command: group.Resign) -> group.Resigned:
    bounds.check_name(machine.limits, "election name", command.name)
    election = machine.elections.get(command.name)
    if election is None or command.name not in session.standing:
        return group.Resigned(was_candidate=False, was_leader=False)
    was_leader = _withdraw(machine, election, session, CAUSE_RESIGNED)
    return group.Resigned(was_candidate=True, was_leader=was_leader)


def _withdraw(machine: StateMachine, election: ElectionState, session: Session, cause: str) -> bool:
    """Removes ``session``'s candidacy; a leader hands off to the next. True if it led."""
    at = next(i for i, c in enumerate(election.candidates) if c.session == session.id)
    candidate = election.candidates.pop(at)
    session.standing.discard(election.name)
    if at == 0:
        machine.emit(
            group.LeadershipChanged(
                election.name,
                group.LEADER_RESIGNED,
                candidate.member_id,
                candidate.session,
                candidate.token,
                cause,
            )
        )
        if election.candidates:
            _elect_head(machine, election)
    if not election.candidates:
        del machine.elections[election.name]
    return at == 0


def _elect_head(machine: StateMachine, election: ElectionState) -> None:
    head = election.candidates[0]
    machine.last_token += 1
    head.token = machine.last_token
    head.since = machine.clock
    machine.emit(
        group.LeadershipChanged(
            election.name, group.LEADER_ELECTED, head.member_id, head.session, head.token
        )
    )


# --------------------------------------------------------------------------- sessions


def end_session(machine: StateMachine, session: Session, cause: str) -> None:
    """The session ended (``cause``): its members leave, its candidacies are withdrawn, in
    name order."""
    for name, member_id in sorted(session.joined):
        target = machine.groups[name]
        _remove_member(machine, target, target.members[member_id], cause)
    for name in sorted(session.standing):
        _withdraw(machine, machine.elections[name], session, cause)
