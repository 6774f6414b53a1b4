"""Read views of the replicated state: what a read RPC, a metric or a backup reports.

Pure functions of a ``StateMachine``; they never change it. They take ``now`` only to report
remaining durations. A request that breaks a bound (a bad name, page size or batch, a list
that does not exist) is answered with the ``Err`` the state machine would have refused a
command with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from turnstile.cluster import limits as bounds
from turnstile.cluster.commands import Err
from turnstile.cluster.limits import RefusedError
from turnstile.cluster.records import Holder, ListState, LockState, SemaphoreState, Session, Waiter
from turnstile.cluster.state import StateMachine
from turnstile.v1.reasons import Reason


@dataclass(frozen=True, slots=True)
class HolderView:
    session: int
    token: int
    held_for_ms: int
    #: 0 means no cap.
    expires_in_ms: int
    client_name: str
    client_host: str
    client_pid: int
    description: str
    #: The request seq of the acquire that was granted.
    seq: int


@dataclass(frozen=True, slots=True)
class WaiterView:
    session: int
    seq: int
    waited_for_ms: int
    wait_remaining_ms: int
    client_name: str
    client_host: str
    client_pid: int
    description: str
    #: Every lock an acquire of several takes; empty for one.
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LockView:
    name: str
    holder: HolderView | None
    waiters: tuple[WaiterView, ...]


@dataclass(frozen=True, slots=True)
class SemaphoreView:
    name: str
    #: 0 for an unused semaphore.
    limit: int
    holders: tuple[HolderView, ...]
    waiters: tuple[WaiterView, ...]


@dataclass(frozen=True, slots=True)
class SessionView:
    session: int
    ttl_ms: int
    client_name: str
    client_host: str
    client_pid: int
    age_ms: int
    held: tuple[str, ...]
    waiting: tuple[str, ...]
    #: One entry per permit held.
    permits: tuple[str, ...]
    permit_waits: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListView:
    name: str
    size: int
    ttl_ms: int
    #: 0 means no expiry.
    expires_in_ms: int


@dataclass(frozen=True, slots=True)
class Counts:
    sessions: int
    locks_held: int
    waiters: int
    lists: int
    members: int
    groups: int
    group_members: int
    elections: int
    semaphores: int
    permits_held: int


Params = ParamSpec("Params")
View = TypeVar("View")


def refusal_as_err(read: Callable[Params, View]) -> Callable[Params, View | Err]:
    """Answers a read that raises ``RefusedError`` with that refusal as an ``Err``."""

    @functools.wraps(read)
    def answer(*args: Params.args, **kwargs: Params.kwargs) -> View | Err:
        try:
            return read(*args, **kwargs)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)

    return answer


@refusal_as_err
def describe_lock(state: StateMachine, name: str, now: int) -> LockView:
    """The holder and FIFO queue of ``name``; a free lock has no holder and no waiters."""
    bounds.check_name(state.limits, "lock name", name)
    lock = state.locks.get(name)
    return _lock_view(state, lock, now) if lock else LockView(name, None, ())


@refusal_as_err
def list_locks(
    state: StateMachine, prefix: str, after: str, limit: int, now: int
) -> list[LockView]:
    """Locks in use whose name starts with ``prefix``, by name, after ``after``."""
    page = bounds.check_page(state.limits, limit)
    names = sorted(n for n in state.locks if n.startswith(prefix) and n > after)
    return [_lock_view(state, state.locks[n], now) for n in names[:page]]


@refusal_as_err
def describe_semaphore(state: StateMachine, name: str, now: int) -> SemaphoreView:
    """The limit, permit holders and FIFO queue of ``name``; an unused one has none."""
    bounds.check_name(state.limits, "semaphore name", name)
    semaphore = state.semaphores.get(name)
    return _semaphore_view(state, semaphore, now) if semaphore else SemaphoreView(name, 0, (), ())


@refusal_as_err
def list_semaphores(
    state: StateMachine, prefix: str, after: str, limit: int, now: int
) -> list[SemaphoreView]:
    """Semaphores in use whose name starts with ``prefix``, by name, after ``after``."""
    page = bounds.check_page(state.limits, limit)
    names = sorted(n for n in state.semaphores if n.startswith(prefix) and n > after)
    return [_semaphore_view(state, state.semaphores[n], now) for n in names[:page]]


@refusal_as_err
def validate_token(state: StateMachine, name: str, token: int) -> tuple[bool, int]:
    """(token holds ``name`` now, current holder's token or 0)."""
    bounds.check_name(state.limits, "lock name", name)
    lock = state.locks.get(name)
    current = lock.holder.token if lock and lock.holder else 0
    return (current != 0 and current == token, current)


def session_view(state: StateMachine, session_id: int, now: int) -> SessionView | None:
    session = state.sessions.get(session_id)
    return _session_view(session, now) if session else None


def session_ttls(state: StateMachine, sessions: list[int]) -> list[int | None]:
    """Each session's TTL in ms; None for one that is gone."""
    found = state.sessions
    return [found[s].ttl_ms if s in found else None for s in sessions]


@refusal_as_err
def list_sessions(state: StateMachine, after: int, limit: int, now: int) -> list[SessionView]:
    page = bounds.check_page(state.limits, limit)
    ids = sorted(i for i in state.sessions if i > after)[:page]
    return [_session_view(state.sessions[i], now) for i in ids]


@refusal_as_err
def contains(state: StateMachine, name: str, members: tuple[bytes, ...]) -> list[int]:
    """The id of each member, 0 where absent."""
    bounds.check_name(state.limits, "list name", name)
    bounds.check_members(state.limits, members)
    target = state.existing_list(name)
    return [target.ids.get(m, 0) for m in members]


@refusal_as_err
def lookup(state: StateMachine, name: str, ids: tuple[int, ...]) -> list[bytes]:
    """The member each id was given, empty where none was (ids are 1..size)."""
    bounds.check_name(state.limits, "list name", name)
    if not ids:
        raise RefusedError(Reason.INVALID_ARGUMENT, "ids must not be empty")
    if len(ids) > state.limits.max_batch:
        raise RefusedError(
            Reason.LIMIT_EXCEEDED,
            f"batch of {len(ids)} ids is over max_batch={state.limits.max_batch}",
        )
    target = state.existing_list(name)
    size = len(target.members)
    return [target.members[i - 1] if 0 < i <= size else b"" for i in ids]


@refusal_as_err
def members(state: StateMachine, name: str, after_id: int, limit: int) -> list[tuple[int, bytes]]:
    """(id, member) pairs with id > after_id, in id order, at most one page."""
    if after_id < 0:
        raise RefusedError(
            Reason.INVALID_ARGUMENT, f"after_id must not be negative, got {after_id}"
        )
    bounds.check_name(state.limits, "list name", name)
    page = bounds.check_page(state.limits, limit)
    target = state.existing_list(name)
    chunk = target.members[after_id : after_id + page]
    return [(after_id + i + 1, m) for i, m in enumerate(chunk)]


@refusal_as_err
def list_view(state: StateMachine, name: str, now: int) -> ListView:
    bounds.check_name(state.limits, "list name", name)
    return _list_view(state.existing_list(name), now)


@refusal_as_err
def list_lists(
    state: StateMachine, prefix: str, after: str, limit: int, now: int
) -> list[ListView]:
    page = bounds.check_page(state.limits, limit)
    names = sorted(n for n in state.lists if n.startswith(prefix) and n > after)[:page]
    return [_list_view(state.lists[n], now) for n in names]


def counts(state: StateMachine) -> Counts:
    held = sum(1 for lock in state.locks.values() if lock.holder)
    return Counts(
        sessions=len(state.sessions),
        locks_held=held,
        waiters=state.waiter_count,
        lists=len(state.lists),
        members=state.member_count,
        groups=len(state.groups),
        group_members=sum(len(g.members) for g in state.groups.values()),
        elections=len(state.elections),
        semaphores=len(state.semaphores),
        permits_held=state.permit_count,
    )


def _lock_view(state: StateMachine, lock: LockState, now: int) -> LockView:
    holder = _holder_view(state, lock.holder, now) if lock.holder else None
    waiters = tuple(_waiter_view(state, w, now) for w in lock.waiters)
    return LockView(lock.name, holder, waiters)


def _semaphore_view(state: StateMachine, semaphore: SemaphoreState, now: int) -> SemaphoreView:
    return SemaphoreView(
        semaphore.name,
        semaphore.limit,
        tuple(_holder_view(state, h, now) for h in semaphore.holders),
        tuple(_waiter_view(state, w, now) for w in semaphore.waiters),
    )


def _holder_view(state: StateMachine, h: Holder, now: int) -> HolderView:
    owner = state.sessions[h.session]
    return HolderView(
        session=h.session,
        token=h.token,
        held_for_ms=max(0, now - h.granted_at),
        expires_in_ms=max(1, h.expires_at - now) if h.expires_at else 0,
        client_name=owner.client_name,
        client_host=owner.client_host,
        client_pid=owner.client_pid,
        description=h.description,
        seq=h.acquire_seq,
    )


def _waiter_view(state: StateMachine, w: Waiter, now: int) -> WaiterView:
    owner = state.sessions[w.session]
    return WaiterView(
        session=w.session,
        seq=w.seq,
        waited_for_ms=max(0, now - w.enqueued_at),
        wait_remaining_ms=max(0, w.deadline - now),
        client_name=owner.client_name,
        client_host=owner.client_host,
        client_pid=owner.client_pid,
        description=w.description,
        names=w.names,
    )


def _session_view(session: Session, now: int) -> SessionView:
    return SessionView(
        session=session.id,
        ttl_ms=session.ttl_ms,
        client_name=session.client_name,
        client_host=session.client_host,
        client_pid=session.client_pid,
        age_ms=max(0, now - session.opened_at),
        held=tuple(sorted(session.held)),
        waiting=tuple(sorted({name for name, _ in session.waiting})),
        permits=tuple(sorted(name for name, _ in session.permits)),
        permit_waits=tuple(sorted({name for name, _ in session.permit_waits})),
    )


def _list_view(target: ListState, now: int) -> ListView:
    remaining = max(1, target.expires_at - now) if target.expires_at else 0
    return ListView(target.name, len(target.members), target.ttl_ms, remaining)
