"""The replicated state machine: sessions, locks with FIFO waiters, semaphores, distinct
lists, groups and elections (their rules in ``lock_rules``, ``semaphore_rules``,
``list_rules`` and ``group_rules``).

Pure and deterministic. No clock, thread, randomness, I/O, grpc or pysyncobj. Every replica
applies the same commands in the same order and so reaches the same state and results:

- Time is the log's. Each command carries ``now``; ``clock = max(clock, now)``, then every
  expiry due at ``clock`` (max-hold, waiter deadline, list TTL) is applied, in the order
  (due time, kind, name, id), before the command itself.
- Behaviour never depends on set or dict iteration order (str hashing differs per process):
  whatever is iterated is sorted first.
- ``apply`` never raises. A bad command is refused with an ``Err`` result after validation and
  before any mutation (an exception inside pysyncobj's apply halts the node for good).
- The term fence: ``epoch`` is the newest Raft term any applied command was stamped in (a new
  leader's first command sets it). A command stamped in an older term is refused before
  anything else: it changes no state, not even the clock. So a deposed leader's late commands
  (expiries, ticks, cancels, anything delivered after a successor took office) never act.
- The cluster version gates commands: one registered ``since`` a version above
  ``cluster_version`` is refused, so every replica of a mixed-version cluster applies the
  same entries alike.
- ``revision`` counts the applied commands that changed something watchers see (``WATCHED``
  events), from cluster version 5: every replica numbers the changes alike.

Reads are pure functions of the state, in ``turnstile.cluster.views``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from turnstile.cluster import commands as cmd
from turnstile.cluster import exactly_once, group_rules, list_rules, lock_rules, semaphore_rules
from turnstile.cluster import limits as bounds
from turnstile.cluster.group_commands import GROUPS_SINCE
from turnstile.cluster.handlers import HANDLERS, check_every_command_is_handled, handles
from turnstile.cluster.limits import Limits, RefusedError
from turnstile.cluster.records import (
    ElectionState,
    GroupState,
    ListState,
    LockState,
    SemaphoreState,
    Session,
    find_waiter,
)
from turnstile.cluster.timers import Timer, TimerKind, Timers
from turnstile.v1.reasons import Reason


@dataclass(frozen=True, slots=True)
class Applied:
    """What one command did: its result and what else happened in the same step."""

    result: cmd.Result
    events: tuple[cmd.Event, ...]
    #: The state's revision after it (moved by a command with ``WATCHED`` events).
    revision: int = 0


class StateMachine:
    """All replicated state. ``apply`` is the only mutator; see the module docstring."""

    def __init__(self, limits: Limits | None = None, term_fence: bool = True) -> None:
        self.limits = limits or Limits()
        #: Log time in ms: the largest ``now`` applied so far.
        self.clock = 0
        #: The newest Raft term a command was stamped in: older ones are refused.
        self.epoch = 0
        #: Commands registered ``since`` a version above this are refused (see
        #: ``SetClusterVersion``).
        self.cluster_version = 1
        #: Off only in the chaos test that shows what the fence prevents; every replica of
        #: a cluster must agree on it.
        self.term_fence = term_fence
        self.last_session = 0
        #: Fencing tokens come from one counter, so they increase per lock across all history.
        self.last_token = 0
        self.sessions: dict[int, Session] = {}
        self.locks: dict[str, LockState] = {}
        self.lists: dict[str, ListState] = {}
        self.semaphores: dict[str, SemaphoreState] = {}
        self.groups: dict[str, GroupState] = {}
        self.elections: dict[str, ElectionState] = {}
        #: Applied commands with a change watchers see (``cmd.WATCHED``), from version 5.
        self.revision = 0
        self.member_count = 0
        #: Entries in lock queues (an acquire of several locks counts once per lock).
        self.waiter_count = 0
        self.permit_count = 0
        self.permit_waiter_count = 0
        #: Cluster members: node id -> (peer address, client address).
        self.cluster_members: dict[str, tuple[str, str]] = {}
        #: Entries are checked against the state when popped (see ``_timer_is_live``).
        self._timers = Timers()
        self._events: list[cmd.Event] = []

    def reindex(self) -> None:
        """Recomputes everything derived from sessions, locks and lists (after a restore).

        Raises KeyError when a holder or waiter names a session that does not exist.
        """
        for session in self.sessions.values():
            session.held.clear()
            session.waiting.clear()
            session.joined.clear()
            session.standing.clear()
            session.permits.clear()
            session.permit_waits.clear()
        for joined in self.groups.values():
            for member in joined.members.values():
                self.sessions[member.session].joined.add((joined.name, member.member_id))
        for election in self.elections.values():
            for candidate in election.candidates:
                self.sessions[candidate.session].standing.add(election.name)
        timers: list[Timer] = []
        self.waiter_count = 0
        for lock in self.locks.values():
            if lock.holder is not None:
                self.sessions[lock.holder.session].held.add(lock.name)
                if lock.holder.expires_at:
                    timers.append(Timer.hold(lock.holder.expires_at, lock.name, lock.holder.token))
            for waiter in lock.waiters:
                self.sessions[waiter.session].waiting.add((lock.name, waiter.seq))
                if waiter.takes(lock.name)[0] == lock.name:
                    # One timer per waiter, under its first lock, as the acquire pushed it:
                    # expiries due at one instant then apply in the same order as before.
                    timers.append(
                        Timer.wait(waiter.deadline, lock.name, waiter.session, waiter.seq)
                    )
            self.waiter_count += len(lock.waiters)
        self.permit_count = self.permit_waiter_count = 0
        for semaphore in self.semaphores.values():
            for holder in semaphore.holders:
                self.sessions[holder.session].permits.add((semaphore.name, holder.token))
                if holder.expires_at:
                    timers.append(
                        Timer.permit_hold(holder.expires_at, semaphore.name, holder.token)
                    )
            for waiter in semaphore.waiters:
                self.sessions[waiter.session].permit_waits.add((semaphore.name, waiter.seq))
                timers.append(
                    Timer.permit_wait(waiter.deadline, semaphore.name, waiter.session, waiter.seq)
                )
            self.permit_count += len(semaphore.holders)
            self.permit_waiter_count += len(semaphore.waiters)
        self.member_count = 0
        for item in self.lists.values():
            if item.expires_at:
                timers.append(Timer.ttl(item.expires_at, item.name))
            self.member_count += len(item.members)
        self._timers = Timers(timers)

    # ----------------------------------------------------------------------- apply

    def apply(self, command: cmd.Command) -> Applied:
        """Applies one command: first the expiries due at its time, then the command.

        A command stamped in a term older than ``epoch``, or newer than the cluster version,
        is refused before anything else: it has no effect at all. The command's handler is
        its class's entry in ``HANDLERS``.
        """
        handler = HANDLERS.get(type(command))
        if handler is None:
            return Applied(
                cmd.Err(Reason.INVALID_ARGUMENT, f"unknown command {type(command).__name__}"), ()
            )
        if command.term < self.epoch and self.term_fence:
            return Applied(
                cmd.Err(
                    Reason.NOT_LEADER,
                    f"stamped in term {command.term} by a leader superseded in term "
                    f"{self.epoch}; not applied",
                ),
                (),
            )
        required = handler.spec.since
        if required > self.cluster_version and not isinstance(command, cmd.SetClusterVersion):
            return Applied(
                cmd.Err(
                    Reason.FAILED_PRECONDITION,
                    f"{type(command).__name__} needs cluster version {required}, the cluster "
                    f"is at {self.cluster_version}; upgrade every member first",
                ),
                (),
            )
        self.epoch = max(self.epoch, command.term)
        self._events = []
        self._advance(command.now)
        try:
            if handler.spec.exactly_once:
                # Registered exactly_once: it carries the request id fields.
                result = self._apply_once(cast(cmd.SessionCommand, command), handler.method)
            else:
                result = handler.method(self, command)
        except RefusedError as refused:
            result = cmd.Err(refused.reason, refused.detail)
        events, self._events = tuple(self._events), []
        if self.cluster_version >= GROUPS_SINCE and any(isinstance(e, cmd.WATCHED) for e in events):
            self.revision += 1
        return Applied(result, events, self.revision)

    def emit(self, event: cmd.Event) -> None:
        """Records an event of the command being applied (for the rules in other modules)."""
        self._events.append(event)

    def live_session(self, session_id: int) -> Session:
        """The session; raises RefusedError (SESSION_EXPIRED) if it is unknown or ended."""
        session = self.sessions.get(session_id)
        if session is None:
            raise RefusedError(
                Reason.SESSION_EXPIRED, f"session {session_id} is unknown or expired"
            )
        return session

    def _apply_once(
        self, command: cmd.SessionCommand, method: Callable[..., cmd.Result]
    ) -> cmd.Result:
        """Exactly-once: a retried (session, seq) returns its first result, applied once."""
        try:
            session = self.live_session(command.session)
        except RefusedError as refused:
            return cmd.Err(refused.reason, refused.detail)
        answer = exactly_once.admit(session, command, self.limits)
        if answer is not None:
            return answer
        try:
            result = method(self, session, command)
        except RefusedError as refused:
            result = cmd.Err(refused.reason, refused.detail)
        session.results[command.seq] = result
        return result

    # ----------------------------------------------------------------------- time

    def _advance(self, now: int) -> None:
        self.clock = max(self.clock, now)
        while (timer := self._timers.pop_due(self.clock)) is not None:
            if self._timer_is_live(timer):
                self._expire(timer)

    def _expire(self, timer: Timer) -> None:
        """Applies a live timer: ends the hold, the wait or the list it times out (what
        ``_timer_is_live`` found is there)."""
        timed_out = cmd.NotAcquired("wait timed out")
        if timer.kind is TimerKind.HOLD:
            lock_rules.free(self, self.locks[timer.name], cmd.CAUSE_MAX_HOLD)
        elif timer.kind is TimerKind.WAIT:
            lock = self.locks[timer.name]
            waiter = find_waiter(lock.waiters, timer.session, timer.seq)
            assert waiter is not None
            lock_rules.drop_waiter(self, lock, waiter, timed_out, grant=True)
        elif timer.kind is TimerKind.PERMIT_HOLD:
            semaphore = self.semaphores[timer.name]
            holder = semaphore_rules.find_holder(semaphore, timer.token)
            assert holder is not None
            semaphore_rules.free(self, semaphore, holder, cmd.CAUSE_MAX_HOLD)
        elif timer.kind is TimerKind.PERMIT_WAIT:
            semaphore = self.semaphores[timer.name]
            waiter = find_waiter(semaphore.waiters, timer.session, timer.seq)
            assert waiter is not None
            semaphore_rules.drop_waiter(self, semaphore, waiter, timed_out)
        else:
            list_rules.delete_list(self, self.lists[timer.name])
            self._events.append(cmd.ListExpired(timer.name))

    def push_timer(self, timer: Timer) -> None:
        """Adds a timer. At most one timer per lock holder, waiter entry, permit, permit waiter
        and list is live: their count bounds the live entries for ``Timers.push``."""
        live_bound = (
            len(self.locks)
            + self.waiter_count
            + self.permit_count
            + self.permit_waiter_count
            + len(self.lists)
        )
        self._timers.push(timer, live_bound, self._timer_is_live)

    def next_due(self) -> int | None:
        """Log time of the earliest pending expiry, or None: when the leader should tick."""
        timer = self._timers.first_live(self._timer_is_live)
        return timer.due if timer else None

    def _timer_is_live(self, timer: Timer) -> bool:
        if timer.kind is TimerKind.LIST:
            existing = self.lists.get(timer.name)
            return existing is not None and existing.expires_at == timer.due
        if timer.kind in (TimerKind.PERMIT_HOLD, TimerKind.PERMIT_WAIT):
            semaphore = self.semaphores.get(timer.name)
            if semaphore is None:
                return False
            if timer.kind is TimerKind.PERMIT_HOLD:
                holder = semaphore_rules.find_holder(semaphore, timer.token)
                return holder is not None and holder.expires_at == timer.due
            entry = find_waiter(semaphore.waiters, timer.session, timer.seq)
            return entry is not None and entry.deadline == timer.due
        lock = self.locks.get(timer.name)
        if lock is None:
            return False
        if timer.kind is TimerKind.HOLD:
            return (
                lock.holder is not None
                and lock.holder.token == timer.token
                and lock.holder.expires_at == timer.due
            )
        waiter = find_waiter(lock.waiters, timer.session, timer.seq)
        return waiter is not None and waiter.deadline == timer.due

    # ----------------------------------------------------------------------- cluster

    @handles(cmd.Tick)
    def _tick(self, command: cmd.Tick) -> cmd.Result:
        return cmd.Done()

    @handles(cmd.SetMember)
    def _set_member(self, command: cmd.SetMember) -> cmd.Result:
        for what, text in (
            ("node_id", command.node_id),
            ("peer_address", command.peer_address),
            ("client_address", command.client_address),
        ):
            bounds.check_name(self.limits, what, text)
        self.cluster_members[command.node_id] = (command.peer_address, command.client_address)
        return cmd.Done()

    @handles(cmd.RemoveMember)
    def _remove_member(self, command: cmd.RemoveMember) -> cmd.Result:
        if self.cluster_members.pop(command.node_id, None) is None:
            return cmd.Err(Reason.NOT_FOUND, f"no member {command.node_id!r}")
        return cmd.Done()

    @handles(cmd.SetClusterVersion)
    def _set_cluster_version(self, command: cmd.SetClusterVersion) -> cmd.Result:
        self.cluster_version = max(self.cluster_version, command.version)
        return cmd.Done()

    @handles(cmd.SetLimits)
    def _set_limits(self, command: cmd.SetLimits) -> cmd.Result:
        problems = command.limits.problems()
        if problems:
            return cmd.Err(Reason.INVALID_ARGUMENT, "; ".join(problems))
        self.limits = command.limits
        return cmd.Done()

    # ----------------------------------------------------------------------- sessions

    @handles(cmd.OpenSession)
    def _open_session(self, command: cmd.OpenSession) -> cmd.Result:
        bounds.check_session_ttl(self.limits, command.ttl_ms)
        for what, text in (
            ("client_name", command.client_name),
            ("client_host", command.client_host),
        ):
            bounds.check_text(self.limits, what, text, self.limits.max_name_bytes, "max_name_bytes")
        if len(self.sessions) >= self.limits.max_sessions:
            raise RefusedError(
                Reason.LIMIT_EXCEEDED,
                f"{len(self.sessions)} sessions open, max_sessions={self.limits.max_sessions}",
            )
        self.last_session += 1
        session = Session(
            id=self.last_session,
            ttl_ms=command.ttl_ms,
            client_name=command.client_name,
            client_host=command.client_host,
            client_pid=command.client_pid,
            opened_at=self.clock,
        )
        self.sessions[session.id] = session
        return cmd.SessionOpened(session.id, session.ttl_ms)

    @handles(cmd.CloseSession)
    def _close_session(self, command: cmd.CloseSession) -> cmd.Result:
        return self._end_session(command.session, cmd.CAUSE_SESSION_CLOSED)

    @handles(cmd.ExpireSession)
    def _expire_session(self, command: cmd.ExpireSession) -> cmd.Result:
        return self._end_session(command.session, cmd.CAUSE_SESSION_EXPIRED)

    def _end_session(self, session_id: int, cause: str) -> cmd.Result:
        session = self.sessions.get(session_id)
        if session is None:
            return cmd.Err(Reason.SESSION_EXPIRED, f"session {session_id} is unknown or expired")
        lock_rules.end_session(self, session, cause)
        semaphore_rules.end_session(self, session, cause)
        group_rules.end_session(self, session, cause)
        del self.sessions[session_id]
        self._events.append(cmd.SessionEnded(session_id, cause))
        return cmd.Done()

    def resolve(self, session: Session, seq: int, name: str, outcome: cmd.Result) -> None:
        """A queued acquire's final result: a retry of it now returns this."""
        if seq in session.results:
            session.results[seq] = outcome
        self._events.append(cmd.WaiterResolved(session.id, seq, name, outcome))

    def existing_list(self, name: str) -> ListState:
        """The list ``name``; raises RefusedError (NOT_FOUND) if it does not exist."""
        existing = self.lists.get(name)
        if existing is None:
            raise RefusedError(Reason.NOT_FOUND, f"list {name!r} does not exist")
        return existing


check_every_command_is_handled()
