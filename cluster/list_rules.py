"""The state machine's rules for distinct lists: set up, insert, tear down.

Handlers entered in ``HANDLERS`` like the state machine's own methods (see ``group_rules``):
pure, run inside ``StateMachine.apply``, refusing with ``RefusedError`` before any mutation.
A list's TTL is a timer of the machine; when it falls due the machine calls ``delete_list``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnstile.cluster import commands as cmd
from turnstile.cluster import limits as bounds
from turnstile.cluster.handlers import handles
from turnstile.cluster.limits import RefusedError
from turnstile.cluster.records import ListState, Session
from turnstile.cluster.timers import Timer
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.state import StateMachine


@handles(cmd.SetUpList)
def set_up_list(machine: StateMachine, session: Session, command: cmd.SetUpList) -> cmd.Result:
    bounds.check_name(machine.limits, "list name", command.name)
    bounds.check_duration(machine.limits, "ttl_ms", command.ttl_ms, zero_ok=True)
    expires_at = machine.clock + command.ttl_ms if command.ttl_ms else 0
    existing = machine.lists.get(command.name)
    created = existing is None
    if existing is None:
        if len(machine.lists) >= machine.limits.max_lists:
            raise RefusedError(
                Reason.LIMIT_EXCEEDED,
                f"{len(machine.lists)} lists exist, max_lists={machine.limits.max_lists}",
            )
        existing = machine.lists[command.name] = ListState(
            command.name, command.ttl_ms, machine.clock, expires_at
        )
        machine.emit(cmd.ListChanged(command.name, cmd.LIST_CREATED))
    existing.ttl_ms = command.ttl_ms
    existing.expires_at = expires_at
    if expires_at:
        machine.push_timer(Timer.ttl(expires_at, command.name))
    return cmd.ListSetUp(created, expires_at)


@handles(cmd.Insert)
def insert(machine: StateMachine, session: Session, command: cmd.Insert) -> cmd.Result:
    bounds.check_name(machine.limits, "list name", command.name)
    bounds.check_members(machine.limits, command.members)
    target = machine.existing_list(command.name)
    fresh = {m for m in command.members if m not in target.ids}
    if len(target.members) + len(fresh) > machine.limits.max_members_per_list:
        raise RefusedError(
            Reason.LIMIT_EXCEEDED,
            f"list {command.name!r} would hold {len(target.members) + len(fresh)} members, "
            f"max_members_per_list={machine.limits.max_members_per_list}",
        )
    results: list[tuple[bool, int]] = []
    for member in command.members:
        known = target.ids.get(member)
        if known is not None:
            results.append((False, known))
            continue
        target.members.append(member)
        target.ids[member] = len(target.members)
        results.append((True, len(target.members)))
    if fresh:
        size = len(target.members)
        machine.emit(cmd.ListChanged(command.name, cmd.LIST_INSERTED, size - len(fresh) + 1, size))
    machine.member_count += len(fresh)
    return cmd.Inserted(tuple(results))


@handles(cmd.TearDownList)
def tear_down(machine: StateMachine, session: Session, command: cmd.TearDownList) -> cmd.Result:
    bounds.check_name(machine.limits, "list name", command.name)
    existing = machine.lists.get(command.name)
    if existing is None:
        return cmd.TornDown(removed=False)
    delete_list(machine, existing)
    machine.emit(cmd.ListChanged(command.name, cmd.LIST_TORN_DOWN))
    return cmd.TornDown(removed=True)


def delete_list(machine: StateMachine, existing: ListState) -> None:
    del machine.lists[existing.name]
    machine.member_count -= len(existing.members)
