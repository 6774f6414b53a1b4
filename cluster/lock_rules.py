"""The state machine's rules for locks: acquire (one lock or several at once), the FIFO queue,
release, extend, abandon, force-release, and the hand-off to the next waiter.

Handlers entered in ``HANDLERS`` like the state machine's own methods (see ``group_rules``):
pure, run inside ``StateMachine.apply``, refusing with ``RefusedError`` before any mutation.

An acquire of several locks is one waiter queued in the queue of each (the same ``Waiter``).
A waiter is granted when every lock it takes is free and it heads every one of those queues,
all in one step (``pump``). So no caller ever holds some of its locks while waiting for the
rest, and a waiter only waits for holders and for waiters that queued before it in the log:
the waits-for relation follows log order and can have no cycle, whatever order callers name
their locks in. The price is strict FIFO: a free lock whose head waiter still waits for
another lock is not given to a later caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnstile.cluster import commands as cmd
from turnstile.cluster import limits as bounds
from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster.handlers import handles
from turnstile.cluster.limits import RefusedError
from turnstile.cluster.records import Holder, LockState, Session, Waiter, find_waiter
from turnstile.cluster.timers import Timer
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.state import StateMachine


# --------------------------------------------------------------------------- acquire


@handles(cmd.Acquire)
def acquire(machine: StateMachine, session: Session, command: cmd.Acquire) -> cmd.Result:
    return _take(
        machine,
        session,
        command.seq,
        (command.name,),
        max_hold_ms=command.max_hold_ms,
        wait_ms=command.wait_ms,
        description="",
    )


@handles(sem.AcquireLocks)
def acquire_locks(machine: StateMachine, session: Session, command: sem.AcquireLocks) -> cmd.Result:
    bounds.check_lock_names(machine.limits, command.names)
    bounds.check_description(machine.limits, command.description)
    return _take(
        machine,
        session,
        command.seq,
        command.names,
        max_hold_ms=command.max_hold_ms,
        wait_ms=command.wait_ms,
        description=command.description,
    )


def _take(
    machine: StateMachine,
    session: Session,
    seq: int,
    names: tuple[str, ...],
    *,
    max_hold_ms: int,
    wait_ms: int,
    description: str,
) -> cmd.Result:
    """Grants every lock of ``names`` at once if each is free with nobody queued; else
    refuses (``wait_ms`` 0) or queues one waiter in every queue."""
    for name in names:
        bounds.check_name(machine.limits, "lock name", name)
    bounds.check_duration(machine.limits, "max_hold_ms", max_hold_ms, zero_ok=True)
    bounds.check_duration(machine.limits, "wait_ms", wait_ms, zero_ok=True)
    locks = machine.locks
    if all(n not in locks or (locks[n].holder is None and not locks[n].waiters) for n in names):
        _check_room(machine, names)
        for name in names:
            locks.setdefault(name, LockState(name))
        return _grant_all(
            machine, session.id, seq, names, max_hold_ms=max_hold_ms, description=description
        )
    if wait_ms == 0:
        return cmd.NotAcquired("held by another holder")
    for name in names:
        queue = locks[name].waiters if name in locks else []
        if len(queue) >= machine.limits.max_waiters_per_lock:
            raise RefusedError(
                Reason.LIMIT_EXCEEDED,
                f"lock {name!r} has {len(queue)} waiters, "
                f"max_waiters_per_lock={machine.limits.max_waiters_per_lock}",
            )
    _check_room(machine, names)
    waiter = Waiter(
        session=session.id,
        seq=seq,
        max_hold_ms=max_hold_ms,
        enqueued_at=machine.clock,
        deadline=machine.clock + wait_ms,
        description=description,
        names=names if len(names) > 1 else (),
    )
    position = 0
    for name in names:
        lock = locks.setdefault(name, LockState(name))
        lock.waiters.append(waiter)
        session.waiting.add((name, seq))
        position = max(position, len(lock.waiters))
    machine.waiter_count += len(names)
    machine.push_timer(Timer.wait(waiter.deadline, names[0], session.id, seq))
    return cmd.Queued(position=position, deadline=waiter.deadline)


def _check_room(machine: StateMachine, names: tuple[str, ...]) -> None:
    new = sum(1 for name in names if name not in machine.locks)
    if new and len(machine.locks) + new > machine.limits.max_locks:
        raise RefusedError(
            Reason.LIMIT_EXCEEDED,
            f"{len(machine.locks)} locks in use, max_locks={machine.limits.max_locks}",
        )


def _grant_all(
    machine: StateMachine,
    session_id: int,
    seq: int,
    names: tuple[str, ...],
    *,
    max_hold_ms: int,
    description: str,
) -> cmd.Granted | sem.GrantedMany:
    expires_at = machine.clock + max_hold_ms if max_hold_ms else 0
    tokens = []
    for name in names:
        machine.last_token += 1
        token = machine.last_token
        machine.locks[name].holder = Holder(
            session_id, token, seq, machine.clock, expires_at, description
        )
        machine.sessions[session_id].held.add(name)
        if expires_at:
            machine.push_timer(Timer.hold(expires_at, name, token))
        machine.emit(cmd.LockGranted(name, session_id, token))
        tokens.append(token)
    if len(names) == 1:
        return cmd.Granted(tokens[0], expires_at)
    return sem.GrantedMany(tuple(tokens), expires_at)


# --------------------------------------------------------------------------- the queue


def pump(machine: StateMachine, lock: LockState) -> None:
    """Grants ``lock``'s head waiter if every lock it takes is free and it heads every one
    of their queues; forgets the lock if nobody holds or waits for it."""
    if lock.holder is None and lock.waiters:
        head = lock.waiters[0]
        names = head.takes(lock.name)
        locks = machine.locks
        if all(locks[n].holder is None and locks[n].waiters[0].same(head) for n in names):
            session = machine.sessions[head.session]
            _unqueue(machine, session, head, names)
            granted = _grant_all(
                machine,
                head.session,
                head.seq,
                names,
                max_hold_ms=head.max_hold_ms,
                description=head.description,
            )
            machine.resolve(session, head.seq, names[0], granted)
    forget_if_idle(machine, lock)


def _unqueue(
    machine: StateMachine, session: Session, waiter: Waiter, names: tuple[str, ...]
) -> None:
    for name in names:
        queue = machine.locks[name].waiters
        queue[:] = [w for w in queue if not w.same(waiter)]
        session.waiting.discard((name, waiter.seq))
    machine.waiter_count -= len(names)


def drop_waiter(
    machine: StateMachine, lock: LockState, waiter: Waiter, outcome: cmd.Result, *, grant: bool
) -> tuple[str, ...]:
    """Removes ``waiter`` from every queue it is in and resolves its acquire with
    ``outcome``; with ``grant``, gives each of its locks to whoever may now have it. Returns
    the locks it was queued for."""
    names = waiter.takes(lock.name)
    session = machine.sessions[waiter.session]
    _unqueue(machine, session, waiter, names)
    machine.resolve(session, waiter.seq, names[0], outcome)
    if grant:
        for name in names:
            pump(machine, machine.locks[name])
    return names


def forget_if_idle(machine: StateMachine, lock: LockState) -> None:
    if lock.holder is None and not lock.waiters:
        machine.locks.pop(lock.name, None)


def free(machine: StateMachine, lock: LockState, cause: str, detail: str = "") -> None:
    """Ends the current hold and hands the lock on in the same step."""
    holder = lock.holder
    assert holder is not None
    lock.holder = None
    machine.sessions[holder.session].held.discard(lock.name)
    machine.emit(cmd.LockFreed(lock.name, holder.session, holder.token, cause, detail))
    pump(machine, lock)


# --------------------------------------------------------------------------- giving up


@handles(cmd.CancelWait)
def cancel_wait(machine: StateMachine, command: cmd.CancelWait) -> cmd.Result:
    session = machine.live_session(command.session)
    bounds.check_name(machine.limits, "lock name", command.name)
    return _withdraw(
        machine,
        session,
        command.name,
        command.acquire_seq,
        outcome=cmd.NotAcquired("wait cancelled"),
        release_cause=cmd.CAUSE_WAIT_CANCELLED if command.release_grant else None,
    )


@handles(cmd.Abandon)
def abandon(machine: StateMachine, session: Session, command: cmd.Abandon) -> cmd.Result:
    """The client gave up on ``acquire_seq``: a late copy of it is refused from now on, its
    waiter is dropped, or the holds it was granted are released."""
    bounds.check_name(machine.limits, "lock name", command.name)
    if not forget_acquire(session, command.seq, command.acquire_seq):
        return cmd.WaitCancelled(removed=False, released=False)
    return _withdraw(
        machine,
        session,
        command.name,
        command.acquire_seq,
        outcome=cmd.NotAcquired("abandoned by the client"),
        release_cause=cmd.CAUSE_ABANDONED,
    )


def forget_acquire(session: Session, seq: int, acquire_seq: int) -> bool:
    """For an abandon (request ``seq``): refuses any later copy of ``acquire_seq``. False if
    the client acknowledged that acquire's answer, so a grant it got is in use."""
    if acquire_seq == seq or acquire_seq < 1:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"acquire_seq must be another request of the session, got {acquire_seq}",
        )
    if acquire_seq <= session.acked:
        return False
    session.results.pop(acquire_seq, None)
    session.forgotten.add(acquire_seq)
    return True


def _withdraw(
    machine: StateMachine,
    session: Session,
    name: str,
    acquire_seq: int,
    *,
    outcome: cmd.NotAcquired,
    release_cause: str | None,
) -> cmd.WaitCancelled:
    """Drops the waiter of ``session``'s acquire ``acquire_seq`` queued for ``name``, or, with
    a ``release_cause``, frees every hold that acquire was granted, ``name``'s among them (its
    retained result then says ``outcome``, as the dropped waiter's would)."""
    lock = machine.locks.get(name)
    if lock is None:
        return cmd.WaitCancelled(removed=False, released=False)
    waiter = find_waiter(lock.waiters, session.id, acquire_seq)
    if waiter is not None:
        drop_waiter(machine, lock, waiter, outcome, grant=True)
        return cmd.WaitCancelled(removed=True, released=False)
    holder = lock.holder
    if (
        release_cause is None
        or holder is None
        or holder.session != session.id
        or holder.acquire_seq != acquire_seq
    ):
        return cmd.WaitCancelled(removed=False, released=False)
    if acquire_seq in session.results:
        session.results[acquire_seq] = outcome
    for held in sorted(session.held):
        other = machine.locks[held]
        if other.holder is not None and other.holder.acquire_seq == acquire_seq:
            free(machine, other, release_cause)
    return cmd.WaitCancelled(removed=False, released=True)


# --------------------------------------------------------------------------- holds


@handles(cmd.Release)
def release(machine: StateMachine, session: Session, command: cmd.Release) -> cmd.Result:
    bounds.check_name(machine.limits, "lock name", command.name)
    lock = _held_by(machine, command.name, command.token, session.id)
    free(machine, lock, cmd.CAUSE_RELEASED)
    return cmd.Released(command.token)


@handles(cmd.Extend)
def extend(machine: StateMachine, session: Session, command: cmd.Extend) -> cmd.Result:
    bounds.check_name(machine.limits, "lock name", command.name)
    bounds.check_duration(machine.limits, "max_hold_ms", command.max_hold_ms, zero_ok=True)
    lock = _held_by(machine, command.name, command.token, session.id)
    holder = lock.holder
    assert holder is not None  # _held_by checked it
    holder.expires_at = machine.clock + command.max_hold_ms if command.max_hold_ms else 0
    if holder.expires_at:
        machine.push_timer(Timer.hold(holder.expires_at, lock.name, holder.token))
    return cmd.Extended(holder.expires_at)


@handles(cmd.ForceRelease)
def force_release(machine: StateMachine, command: cmd.ForceRelease) -> cmd.Result:
    bounds.check_name(machine.limits, "lock name", command.name)
    bounds.check_text(
        machine.limits,
        "reason",
        command.reason,
        machine.limits.max_reason_bytes,
        "max_reason_bytes",
    )
    lock = machine.locks.get(command.name)
    if lock is None or lock.holder is None:
        return cmd.Err(Reason.NOT_FOUND, f"lock {command.name!r} is not held")
    holder = lock.holder
    if command.token and holder.token != command.token:
        return cmd.Err(
            Reason.NOT_HOLDER,
            f"lock {command.name!r} is no longer held by token {command.token} "
            f"(now token {holder.token})",
        )
    free(machine, lock, cmd.CAUSE_FORCE_RELEASED, detail=command.reason)
    return cmd.ForceReleased(holder.session, holder.token)


def _held_by(machine: StateMachine, name: str, token: int, session: int) -> LockState:
    """The lock, if ``token`` holds it for ``session``: tokens are guessable, sessions not."""
    lock = machine.locks.get(name)
    if lock is None or lock.holder is None:
        raise RefusedError(Reason.NOT_HOLDER, f"lock {name!r} is not held")
    if lock.holder.token != token or lock.holder.session != session:
        raise RefusedError(
            Reason.NOT_HOLDER, f"token {token} of session {session} does not hold lock {name!r}"
        )
    return lock


# --------------------------------------------------------------------------- sessions


def end_session(machine: StateMachine, session: Session, cause: str) -> None:
    """The session ended (``cause``): its queued acquires are dropped, then its holds freed in
    name order. Dropping first, and handing on only once all are dropped, keeps a lock from
    being handed to a waiter of this same session."""
    dropped: set[str] = set()
    for name, seq in sorted(session.waiting):
        if (name, seq) not in session.waiting:
            continue  # an acquire of several locks, dropped from all of them already
        lock = machine.locks[name]
        waiter = find_waiter(lock.waiters, session.id, seq)
        assert waiter is not None
        outcome = cmd.Err(Reason.SESSION_EXPIRED, f"session {session.id} {cause}")
        dropped.update(drop_waiter(machine, lock, waiter, outcome, grant=False))
    for name in sorted(dropped):
        if name in machine.locks:
            pump(machine, machine.locks[name])
    for name in sorted(session.held):
        free(machine, machine.locks[name], cause)
