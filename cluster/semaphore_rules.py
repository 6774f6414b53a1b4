"""The state machine's rules for semaphores (``semaphore_commands``).

Handlers entered in ``HANDLERS`` like the state machine's own methods (see ``group_rules``):
pure, run inside ``StateMachine.apply``, refusing with ``RefusedError`` before any mutation.

- A permit is a hold of its own: a fencing token from the counter locks use, a max-hold, a
  session, a description. A session may hold several permits of one semaphore (threads of
  one worker share a session).
- Waiters queue FIFO, each for one permit, and only the head is ever granted, so a waiter is
  never passed by a later arrival. Whatever frees a permit (release, max-hold, abandon, the
  end of the holder's session, a raised limit) grants the head waiters in the same step while
  permits are free (``pump``). So a semaphore with waiters has no free permit.
- The acquire's ``limit`` becomes the semaphore's. Lowering it takes no permit away: new grants
  wait until fewer than ``limit`` permits are held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnstile.cluster import commands as cmd
from turnstile.cluster import limits as bounds
from turnstile.cluster import lock_rules
from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster.handlers import handles
from turnstile.cluster.limits import RefusedError
from turnstile.cluster.records import Holder, SemaphoreState, Session, Waiter, find_waiter
from turnstile.cluster.timers import Timer
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.state import StateMachine


@handles(sem.AcquirePermit)
def acquire_permit(
    machine: StateMachine, session: Session, command: sem.AcquirePermit
) -> cmd.Result:
    limits = machine.limits
    bounds.check_name(limits, "semaphore name", command.name)
    bounds.check_permit_limit(limits, command.limit)
    bounds.check_duration(limits, "max_hold_ms", command.max_hold_ms, zero_ok=True)
    bounds.check_duration(limits, "wait_ms", command.wait_ms, zero_ok=True)
    bounds.check_description(limits, command.description)
    semaphore = machine.semaphores.get(command.name)
    if semaphore is None:
        if len(machine.semaphores) >= limits.max_locks:
            raise RefusedError(
                Reason.LIMIT_EXCEEDED,
                f"{len(machine.semaphores)} semaphores in use, max_locks={limits.max_locks}",
            )
        semaphore = machine.semaphores[command.name] = SemaphoreState(command.name, command.limit)
    else:
        # Refuse before any mutation: the waiters the new limit grants leave the queue first.
        raised = min(len(semaphore.waiters), max(0, command.limit - len(semaphore.holders)))
        queued = len(semaphore.waiters) - raised
        free_after = len(semaphore.holders) + raised < command.limit and not queued
        if command.wait_ms and not free_after and queued >= limits.max_waiters_per_lock:
            raise RefusedError(
                Reason.LIMIT_EXCEEDED,
                f"semaphore {command.name!r} has {queued} waiters, "
                f"max_waiters_per_lock={limits.max_waiters_per_lock}",
            )
        if semaphore.limit != command.limit:
            semaphore.limit = command.limit
            pump(machine, semaphore)
    if len(semaphore.holders) < semaphore.limit and not semaphore.waiters:
        return _grant(
            machine,
            semaphore,
            session.id,
            command.seq,
            max_hold_ms=command.max_hold_ms,
            description=command.description,
        )
    if command.wait_ms == 0:
        return cmd.NotAcquired(f"all {semaphore.limit} permits are held")
    waiter = Waiter(
        session=session.id,
        seq=command.seq,
        max_hold_ms=command.max_hold_ms,
        enqueued_at=machine.clock,
        deadline=machine.clock + command.wait_ms,
        description=command.description,
    )
    semaphore.waiters.append(waiter)
    session.permit_waits.add((semaphore.name, waiter.seq))
    machine.permit_waiter_count += 1
    machine.push_timer(Timer.permit_wait(waiter.deadline, semaphore.name, session.id, waiter.seq))
    return cmd.Queued(position=len(semaphore.waiters), deadline=waiter.deadline)


def _grant(
    machine: StateMachine,
    semaphore: SemaphoreState,
    session_id: int,
    seq: int,
    *,
    max_hold_ms: int,
    description: str,
) -> cmd.Granted:
    machine.last_token += 1
    token = machine.last_token
    expires_at = machine.clock + max_hold_ms if max_hold_ms else 0
    semaphore.holders.append(Holder(session_id, token, seq, machine.clock, expires_at, description))
    machine.sessions[session_id].permits.add((semaphore.name, token))
    machine.permit_count += 1
    if expires_at:
        machine.push_timer(Timer.permit_hold(expires_at, semaphore.name, token))
    machine.emit(sem.PermitGranted(semaphore.name, session_id, token))
    return cmd.Granted(token, expires_at)


def pump(machine: StateMachine, semaphore: SemaphoreState) -> None:
    """Grants head waiters while permits are free; forgets an unused semaphore."""
    while semaphore.waiters and len(semaphore.holders) < semaphore.limit:
        head = semaphore.waiters.pop(0)
        machine.permit_waiter_count -= 1
        session = machine.sessions[head.session]
        session.permit_waits.discard((semaphore.name, head.seq))
        granted = _grant(
            machine,
            semaphore,
            head.session,
            head.seq,
            max_hold_ms=head.max_hold_ms,
            description=head.description,
        )
        machine.resolve(session, head.seq, semaphore.name, granted)
    _forget_if_unused(machine, semaphore)


def _forget_if_unused(machine: StateMachine, semaphore: SemaphoreState) -> None:
    if not semaphore.holders and not semaphore.waiters:
        del machine.semaphores[semaphore.name]


def free(machine: StateMachine, semaphore: SemaphoreState, holder: Holder, cause: str) -> None:
    """Ends one permit's hold and grants the head waiters in the same step."""
    semaphore.holders.remove(holder)
    machine.permit_count -= 1
    machine.sessions[holder.session].permits.discard((semaphore.name, holder.token))
    machine.emit(sem.PermitFreed(semaphore.name, holder.session, holder.token, cause))
    pump(machine, semaphore)


def drop_waiter(
    machine: StateMachine, semaphore: SemaphoreState, waiter: Waiter, outcome: cmd.Result
) -> None:
    """Removes ``waiter`` and resolves its acquire with ``outcome``. It frees no permit (a
    semaphore with waiters has none free), so nobody else is granted."""
    semaphore.waiters.remove(waiter)
    machine.permit_waiter_count -= 1
    session = machine.sessions[waiter.session]
    session.permit_waits.discard((semaphore.name, waiter.seq))
    machine.resolve(session, waiter.seq, semaphore.name, outcome)
    _forget_if_unused(machine, semaphore)


def find_holder(semaphore: SemaphoreState, token: int) -> Holder | None:
    for holder in semaphore.holders:
        if holder.token == token:
            return holder
    return None


def _held_by(
    machine: StateMachine, name: str, token: int, session: int
) -> tuple[SemaphoreState, Holder]:
    """The semaphore and the permit ``token`` holds for ``session``."""
    bounds.check_name(machine.limits, "semaphore name", name)
    semaphore = machine.semaphores.get(name)
    holder = find_holder(semaphore, token) if semaphore else None
    if semaphore is None or holder is None or holder.session != session:
        raise RefusedError(
            Reason.NOT_HOLDER,
            f"token {token} of session {session} holds no permit of semaphore {name!r}",
        )
    return semaphore, holder


@handles(sem.ReleasePermit)
def release_permit(
    machine: StateMachine, session: Session, command: sem.ReleasePermit
) -> cmd.Result:
    semaphore, holder = _held_by(machine, command.name, command.token, session.id)
    free(machine, semaphore, holder, cmd.CAUSE_RELEASED)
    return cmd.Released(command.token)


@handles(sem.ExtendPermit)
def extend_permit(machine: StateMachine, session: Session, command: sem.ExtendPermit) -> cmd.Result:
    bounds.check_duration(machine.limits, "max_hold_ms", command.max_hold_ms, zero_ok=True)
    semaphore, holder = _held_by(machine, command.name, command.token, session.id)
    holder.expires_at = machine.clock + command.max_hold_ms if command.max_hold_ms else 0
    if holder.expires_at:
        machine.push_timer(Timer.permit_hold(holder.expires_at, semaphore.name, holder.token))
    return cmd.Extended(holder.expires_at)


@handles(sem.AbandonPermit)
def abandon_permit(
    machine: StateMachine, session: Session, command: sem.AbandonPermit
) -> cmd.Result:
    bounds.check_name(machine.limits, "semaphore name", command.name)
    if not lock_rules.forget_acquire(session, command.seq, command.acquire_seq):
        return cmd.WaitCancelled(removed=False, released=False)
    return _withdraw(
        machine,
        session,
        command.name,
        command.acquire_seq,
        cmd.NotAcquired("abandoned by the client"),
        release=True,
    )


@handles(sem.CancelPermitWait)
def cancel_permit_wait(machine: StateMachine, command: sem.CancelPermitWait) -> cmd.Result:
    session = machine.live_session(command.session)
    bounds.check_name(machine.limits, "semaphore name", command.name)
    return _withdraw(
        machine,
        session,
        command.name,
        command.acquire_seq,
        cmd.NotAcquired("wait cancelled"),
        release=False,
    )


def _withdraw(
    machine: StateMachine,
    session: Session,
    name: str,
    acquire_seq: int,
    outcome: cmd.NotAcquired,
    *,
    release: bool,
) -> cmd.WaitCancelled:
    """Drops the waiter of ``session``'s acquire ``acquire_seq``, or, with ``release``, gives
    back the permit it was granted (its retained result then says ``outcome``)."""
    semaphore = machine.semaphores.get(name)
    if semaphore is None:
        return cmd.WaitCancelled(removed=False, released=False)
    waiter = find_waiter(semaphore.waiters, session.id, acquire_seq)
    if waiter is not None:
        drop_waiter(machine, semaphore, waiter, outcome)
        return cmd.WaitCancelled(removed=True, released=False)
    if release:
        for holder in semaphore.holders:
            if holder.session == session.id and holder.acquire_seq == acquire_seq:
                if acquire_seq in session.results:
                    session.results[acquire_seq] = outcome
                free(machine, semaphore, holder, cmd.CAUSE_ABANDONED)
                return cmd.WaitCancelled(removed=False, released=True)
    return cmd.WaitCancelled(removed=False, released=False)


def end_session(machine: StateMachine, session: Session, cause: str) -> None:
    """The session ended (``cause``): its permit waits are dropped first (so a freed permit is
    not handed to this same session), then its permits freed in (name, token) order."""
    for name, seq in sorted(session.permit_waits):
        semaphore = machine.semaphores[name]
        waiter = find_waiter(semaphore.waiters, session.id, seq)
        assert waiter is not None
        drop_waiter(
            machine,
            semaphore,
            waiter,
            cmd.Err(Reason.SESSION_EXPIRED, f"session {session.id} {cause}"),
        )
    for name, token in sorted(session.permits):
        semaphore = machine.semaphores[name]
        holder = find_holder(semaphore, token)
        assert holder is not None
        free(machine, semaphore, holder, cause)
