"""The replicated state machine: sessions, locks with FIFO waiters, distinct lists.

Pure and deterministic. No clock, thread, randomness, I/O, grpc or pysyncobj. Every replica
applies the same commands in the same order and so reaches the same state and results:

- Time is the log's. Each command carries ``now``; ``clock = max(clock, now)``, then every
  expiry due at ``clock`` (lock max-hold, waiter deadline, list TTL) is applied, in the order
  (due time, kind, name, id), before the command itself.
- Behaviour never depends on set or dict iteration order (str hashing differs per process):
  whatever is iterated is sorted first.
- ``apply`` never raises. A bad command is refused with an ``Err`` result after validation and
  before any mutation (an exception inside pysyncobj's apply halts the node for good).
- The term fence: ``epoch`` is the newest Raft term any applied command was stamped in (a new
  leader's first command sets it). A command stamped in an older term is refused before
  anything else: it changes no state, not even the clock. So a deposed leader's late commands
  (expiries, ticks, cancels, anything delivered after a successor took office) never act.
- The cluster version gates commands: one whose ``SINCE`` is above ``cluster_version`` is
  refused, so every replica of a mixed-version cluster applies the same entries alike.

Reads are plain methods; they take ``now`` only to report remaining durations.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field

from turnstile.cluster import limits as bounds
from turnstile.cluster.commands import (
    CAUSE_ABANDONED,
    CAUSE_FORCE_RELEASED,
    CAUSE_MAX_HOLD,
    CAUSE_RELEASED,
    CAUSE_SESSION_CLOSED,
    CAUSE_SESSION_EXPIRED,
    CAUSE_WAIT_CANCELLED,
    SESSION_COMMANDS,
    Abandon,
    Acquire,
    CancelWait,
    CloseSession,
    Command,
    Done,
    Err,
    Event,
    ExpireSession,
    Extend,
    Extended,
    ForceRelease,
    ForceReleased,
    Granted,
    Insert,
    Inserted,
    ListExpired,
    ListSetUp,
    LockFreed,
    NotAcquired,
    OpenSession,
    Queued,
    Release,
    Released,
    RemoveMember,
    Result,
    SessionCommand,
    SessionEnded,
    SessionOpened,
    SetClusterVersion,
    SetLimits,
    SetMember,
    SetUpList,
    TearDownList,
    Tick,
    TornDown,
    WaitCancelled,
    WaiterResolved,
    since,
)
from turnstile.cluster.limits import Limits, RefusedError
from turnstile.v1.reasons import Reason

# Timer kinds, in the order expiries due at the same instant are applied.
_HOLD = 0
_WAIT = 1
_LIST = 2
#: Stale timers tolerated beyond twice the live bound before the heap is compacted.
_TIMER_SLACK = 64


class SeqRanges:
    """A set of request seqs as sorted, disjoint, inclusive ranges: the seqs a client reported
    answered above its ``acked``. Answered seqs are nearly contiguous, so a few ranges hold
    thousands of them while one long blocked acquire pins ``acked``."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: list[tuple[int, int]] | None = None) -> None:
        self.ranges: list[tuple[int, int]] = ranges or []

    def __contains__(self, seq: int) -> bool:
        at = bisect.bisect_right(self.ranges, (seq, 2**64)) - 1
        return at >= 0 and self.ranges[at][0] <= seq <= self.ranges[at][1]

    def add(self, seq: int) -> None:
        if seq in self:
            return
        ranges = self.ranges
        at = bisect.bisect_left(ranges, (seq, seq))
        joins_left = at > 0 and ranges[at - 1][1] == seq - 1
        joins_right = at < len(ranges) and ranges[at][0] == seq + 1
        if joins_left and joins_right:
            ranges[at - 1 : at + 1] = [(ranges[at - 1][0], ranges[at][1])]
        elif joins_left:
            ranges[at - 1] = (ranges[at - 1][0], seq)
        elif joins_right:
            ranges[at] = (seq, ranges[at][1])
        else:
            ranges.insert(at, (seq, seq))

    def drop_through(self, seq: int) -> None:
        """Forgets every seq <= ``seq`` (they are refused as acknowledged anyway)."""
        ranges = [(max(lo, seq + 1), hi) for lo, hi in self.ranges if hi > seq]
        self.ranges = ranges

    def __len__(self) -> int:
        return len(self.ranges)


@dataclass(slots=True)
class Session:
    id: int
    ttl_ms: int
    client_name: str
    client_host: str
    client_pid: int
    opened_at: int
    #: Names of the locks this session holds.
    held: set[str] = field(default_factory=set)
    #: (lock name, acquire seq) of each of its queued acquires.
    waiting: set[tuple[str, int]] = field(default_factory=set)
    #: seq -> result, for exactly-once retries; pruned by the client's ``acked``.
    results: dict[int, Result] = field(default_factory=dict)
    #: Highest seq the client has acknowledged; older requests are not re-applied.
    acked: int = 0
    #: Seqs above ``acked`` the client reported answered (their results may be gone): a late
    #: copy of one of them is refused, never applied a second time.
    forgotten: SeqRanges = field(default_factory=SeqRanges)


@dataclass(slots=True)
class Holder:
    session: int
    token: int
    #: The acquire request that was granted (abandoning it releases this hold).
    acquire_seq: int
    granted_at: int
    #: Log time when the max-hold ends; 0 means no cap.
    expires_at: int


@dataclass(slots=True)
class Waiter:
    session: int
    seq: int
    max_hold_ms: int
    enqueued_at: int
    deadline: int


@dataclass(slots=True)
class LockState:
    name: str
    holder: Holder | None = None
    waiters: list[Waiter] = field(default_factory=list)


@dataclass(slots=True)
class ListState:
    name: str
    ttl_ms: int
    created_at: int
    #: Log time when the list is torn down; 0 means never.
    expires_at: int
    ids: dict[bytes, int] = field(default_factory=dict)
    #: members[i] has id i + 1.
    members: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Applied:
    """What one command did: its result and what else happened in the same step."""

    result: Result
    events: tuple[Event, ...]


# --------------------------------------------------------------------------- read views


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


@dataclass(frozen=True, slots=True)
class WaiterView:
    session: int
    seq: int
    waited_for_ms: int
    wait_remaining_ms: int
    client_name: str
    client_host: str
    client_pid: int


@dataclass(frozen=True, slots=True)
class LockView:
    name: str
    holder: HolderView | None
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


class StateMachine:
    """All replicated state. ``apply`` is the only mutator; see the module docstring."""

    def __init__(self, limits: Limits | None = None, term_fence: bool = True) -> None:
        self.limits = limits or Limits()
        #: Log time in ms: the largest ``now`` applied so far.
        self.clock = 0
        #: The newest Raft term a command was stamped in: older ones are refused.
        self.epoch = 0
        #: Commands with ``SINCE`` above this are refused (see ``SetClusterVersion``).
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
        self.member_count = 0
        self.waiter_count = 0
        #: Cluster members: node id -> (peer address, client address).
        self.cluster_members: dict[str, tuple[str, str]] = {}
        # (due, kind, name, a, b); entries are checked against the state when popped.
        self._timers: list[tuple[int, int, str, int, int]] = []
        self._events: list[Event] = []

    def reindex(self) -> None:
        """Recomputes everything derived from sessions, locks and lists (after a restore).

        Raises KeyError when a holder or waiter names a session that does not exist.
        """
        for session in self.sessions.values():
            session.held.clear()
            session.waiting.clear()
        self._timers = []
        self.waiter_count = 0
        for lock in self.locks.values():
            if lock.holder is not None:
                self.sessions[lock.holder.session].held.add(lock.name)
                if lock.holder.expires_at:
                    self._timers.append(
                        (lock.holder.expires_at, _HOLD, lock.name, lock.holder.token, 0)
                    )
            for waiter in lock.waiters:
                self.sessions[waiter.session].waiting.add((lock.name, waiter.seq))
                self._timers.append((waiter.deadline, _WAIT, lock.name, waiter.session, waiter.seq))
            self.waiter_count += len(lock.waiters)
        self.member_count = 0
        for item in self.lists.values():
            if item.expires_at:
                self._timers.append((item.expires_at, _LIST, item.name, 0, 0))
            self.member_count += len(item.members)
        heapq.heapify(self._timers)

    # ----------------------------------------------------------------------- apply

    def apply(self, command: Command) -> Applied:
        """Applies one command: first the expiries due at its time, then the command.

        A command stamped in a term older than ``epoch``, or newer than the cluster version,
        is refused before anything else: it has no effect at all.
        """
        if command.term < self.epoch and self.term_fence:
            return Applied(
                Err(
                    Reason.NOT_LEADER,
                    f"stamped in term {command.term} by a leader superseded in term "
                    f"{self.epoch}; not applied",
                ),
                (),
            )
        required = since(command)
        if required > self.cluster_version and not isinstance(command, SetClusterVersion):
            return Applied(
                Err(
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
            result = self._dispatch(command)
        except RefusedError as refused:
            result = Err(refused.reason, refused.detail)
        events, self._events = tuple(self._events), []
        return Applied(result, events)

    def _dispatch(self, command: Command) -> Result:
        if isinstance(command, SESSION_COMMANDS):
            return self._apply_once(command)
        match command:
            case OpenSession():
                return self._open_session(command)
            case CloseSession():
                return self._end_session(command.session, CAUSE_SESSION_CLOSED)
            case ExpireSession():
                return self._end_session(command.session, CAUSE_SESSION_EXPIRED)
            case CancelWait():
                return self._cancel_wait(command)
            case ForceRelease():
                return self._force_release(command)
            case Tick():
                return Done()
            case SetMember():
                for what, text in (
                    ("node_id", command.node_id),
                    ("peer_address", command.peer_address),
                    ("client_address", command.client_address),
                ):
                    bounds.check_name(self.limits, what, text)
                self.cluster_members[command.node_id] = (
                    command.peer_address,
                    command.client_address,
                )
                return Done()
            case RemoveMember():
                if self.cluster_members.pop(command.node_id, None) is None:
                    return Err(Reason.NOT_FOUND, f"no member {command.node_id!r}")
                return Done()
            case SetClusterVersion():
                self.cluster_version = max(self.cluster_version, command.version)
                return Done()
            case SetLimits():
                problems = command.limits.problems()
                if problems:
                    return Err(Reason.INVALID_ARGUMENT, "; ".join(problems))
                self.limits = command.limits
                return Done()
        return Err(Reason.INVALID_ARGUMENT, f"unknown command {type(command).__name__}")

    def _apply_once(self, command: SessionCommand) -> Result:
        """Exactly-once: a retried (session, seq) returns its first result, applied once."""
        session = self.sessions.get(command.session)
        if session is None:
            return Err(Reason.SESSION_EXPIRED, f"session {command.session} is unknown or expired")
        if command.seq < 1 or command.acked >= command.seq:
            return Err(
                Reason.INVALID_ARGUMENT,
                f"seq must be >= 1 and above acked, got seq={command.seq} acked={command.acked}",
            )
        if len(command.answered) > self.limits.max_results_per_session:
            return Err(
                Reason.INVALID_ARGUMENT,
                f"{len(command.answered)} answered seqs in one request, over "
                f"max_results_per_session={self.limits.max_results_per_session}",
            )
        first = session.results.get(command.seq)
        if first is not None:
            return first
        if command.seq <= session.acked:
            return Err(Reason.INVALID_ARGUMENT, f"request {command.seq} was already acknowledged")
        if command.seq in session.forgotten:
            return Err(Reason.INVALID_ARGUMENT, f"request {command.seq} was already answered")
        late = [seq for seq in command.answered if seq >= command.seq]
        if late:
            return Err(
                Reason.INVALID_ARGUMENT,
                f"answered seq {late[0]} is not below the request's seq {command.seq}",
            )
        forgotten = session.forgotten
        if command.answered:
            # On a copy: a request whose record of answered seqs would outgrow its bound is
            # refused before anything changes.
            forgotten = SeqRanges(list(forgotten.ranges))
            forgotten.drop_through(max(session.acked, command.acked))
            for seq in command.answered:
                if seq > max(session.acked, command.acked):
                    forgotten.add(seq)
            if len(forgotten) > self.limits.max_results_per_session:
                return Err(
                    Reason.LIMIT_EXCEEDED,
                    f"session {session.id} would keep {len(forgotten)} ranges of answered "
                    f"seqs, max_results_per_session={self.limits.max_results_per_session}",
                )
        if command.acked > session.acked:
            session.acked = command.acked
            for seq in [s for s in session.results if s <= command.acked]:
                del session.results[seq]
            forgotten.drop_through(command.acked)
        session.forgotten = forgotten
        for seq in command.answered:
            if seq > session.acked:
                session.results.pop(seq, None)
        if len(session.results) >= self.limits.max_results_per_session:
            return Err(
                Reason.LIMIT_EXCEEDED,
                f"session {session.id} has {len(session.results)} unacknowledged results, "
                f"max_results_per_session={self.limits.max_results_per_session}",
            )
        try:
            result = self._apply_session_command(session, command)
        except RefusedError as refused:
            result = Err(refused.reason, refused.detail)
        session.results[command.seq] = result
        return result

    def _apply_session_command(self, session: Session, command: Command) -> Result:
        match command:
            case Acquire():
                return self._acquire(session, command)
            case Release():
                return self._release(command)
            case Extend():
                return self._extend(command)
            case SetUpList():
                return self._set_up_list(command)
            case Insert():
                return self._insert(command)
            case TearDownList():
                return self._tear_down(command.name)
            case Abandon():
                return self._abandon(session, command)
        return Err(Reason.INVALID_ARGUMENT, f"unknown command {type(command).__name__}")

    # ----------------------------------------------------------------------- time

    def _advance(self, now: int) -> None:
        self.clock = max(self.clock, now)
        while self._timers and self._timers[0][0] <= self.clock:
            due, kind, name, a, b = heapq.heappop(self._timers)
            if kind == _HOLD:
                lock = self.locks.get(name)
                holder = lock.holder if lock else None
                if lock and holder and holder.token == a and holder.expires_at == due:
                    self._free(lock, CAUSE_MAX_HOLD)
            elif kind == _WAIT:
                lock = self.locks.get(name)
                waiter = self._find_waiter(lock, a, b) if lock else None
                if lock and waiter and waiter.deadline == due:
                    self._drop_waiter(lock, waiter, NotAcquired("wait timed out"))
                    self._forget_if_idle(lock)
            elif kind == _LIST:
                existing = self.lists.get(name)
                if existing and existing.expires_at == due:
                    self._delete_list(existing)
                    self._events.append(ListExpired(name))

    def _push_timer(self, timer: tuple[int, int, str, int, int]) -> None:
        """Adds a timer; when stale entries (a renewed max-hold or TTL, a freed lock, a dropped
        waiter) outnumber the live ones, drops them all, so the heap stays O(live timers).

        At most one timer per lock holder, waiter and list is live: their count bounds the
        live entries without a scan. Rebuilding is O(n) after at least n pushes.
        """
        heapq.heappush(self._timers, timer)
        live_bound = len(self.locks) + self.waiter_count + len(self.lists)
        if len(self._timers) > 2 * live_bound + _TIMER_SLACK:
            # A set: renewals to the same instant leave equal entries, all of them "live".
            # Sorted, the distinct entries are a heap already, whatever the set's order.
            self._timers = sorted({t for t in self._timers if self._timer_is_live(*t)})

    def next_due(self) -> int | None:
        """Log time of the earliest pending expiry, or None: when the leader should tick."""
        while self._timers:
            due, kind, name, a, b = self._timers[0]
            if self._timer_is_live(due, kind, name, a, b):
                return due
            heapq.heappop(self._timers)
        return None

    def _timer_is_live(self, due: int, kind: int, name: str, a: int, b: int) -> bool:
        if kind == _LIST:
            existing = self.lists.get(name)
            return existing is not None and existing.expires_at == due
        lock = self.locks.get(name)
        if lock is None:
            return False
        if kind == _HOLD:
            return (
                lock.holder is not None
                and lock.holder.token == a
                and (lock.holder.expires_at == due)
            )
        waiter = self._find_waiter(lock, a, b)
        return waiter is not None and waiter.deadline == due

    # ----------------------------------------------------------------------- sessions

    def _open_session(self, command: OpenSession) -> Result:
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
        return SessionOpened(session.id, session.ttl_ms)

    def _end_session(self, session_id: int, cause: str) -> Result:
        session = self.sessions.get(session_id)
        if session is None:
            return Err(Reason.SESSION_EXPIRED, f"session {session_id} is unknown or expired")
        # Waiters first: releasing a hold must not hand the lock to this session's own waiter.
        for name, seq in sorted(session.waiting):
            lock = self.locks[name]
            waiter = self._find_waiter(lock, session_id, seq)
            if waiter is not None:
                self._drop_waiter(
                    lock, waiter, Err(Reason.SESSION_EXPIRED, f"session {session_id} {cause}")
                )
            self._forget_if_idle(lock)
        for name in sorted(session.held):
            self._free(self.locks[name], cause)
        del self.sessions[session_id]
        self._events.append(SessionEnded(session_id, cause))
        return Done()

    # ----------------------------------------------------------------------- locks

    def _acquire(self, session: Session, command: Acquire) -> Result:
        bounds.check_name(self.limits, "lock name", command.name)
        bounds.check_duration(self.limits, "max_hold_ms", command.max_hold_ms, zero_ok=True)
        bounds.check_duration(self.limits, "wait_ms", command.wait_ms, zero_ok=True)
        lock = self.locks.get(command.name)
        if lock is None:
            if len(self.locks) >= self.limits.max_locks:
                raise RefusedError(
                    Reason.LIMIT_EXCEEDED,
                    f"{len(self.locks)} locks in use, max_locks={self.limits.max_locks}",
                )
            lock = self.locks[command.name] = LockState(command.name)
        if lock.holder is None and not lock.waiters:
            return self._grant(lock, session.id, command.seq, command.max_hold_ms)
        if command.wait_ms == 0:
            self._forget_if_idle(lock)
            return NotAcquired("held by another holder")
        if len(lock.waiters) >= self.limits.max_waiters_per_lock:
            raise RefusedError(
                Reason.LIMIT_EXCEEDED,
                f"lock {command.name!r} has {len(lock.waiters)} waiters, "
                f"max_waiters_per_lock={self.limits.max_waiters_per_lock}",
            )
        waiter = Waiter(
            session=session.id,
            seq=command.seq,
            max_hold_ms=command.max_hold_ms,
            enqueued_at=self.clock,
            deadline=self.clock + command.wait_ms,
        )
        lock.waiters.append(waiter)
        session.waiting.add((lock.name, waiter.seq))
        self.waiter_count += 1
        self._push_timer((waiter.deadline, _WAIT, lock.name, session.id, waiter.seq))
        return Queued(position=len(lock.waiters), deadline=waiter.deadline)

    def _cancel_wait(self, command: CancelWait) -> Result:
        session = self.sessions.get(command.session)
        if session is None:
            return Err(Reason.SESSION_EXPIRED, f"session {command.session} is unknown or expired")
        bounds.check_name(self.limits, "lock name", command.name)
        return self._withdraw(
            session,
            command.name,
            command.acquire_seq,
            NotAcquired("wait cancelled"),
            CAUSE_WAIT_CANCELLED if command.release_grant else None,
        )

    def _abandon(self, session: Session, command: Abandon) -> Result:
        """The client gave up on ``acquire_seq``: a late copy of it is refused from now on,
        its waiter is dropped, or the hold it was granted is released."""
        bounds.check_name(self.limits, "lock name", command.name)
        if command.acquire_seq == command.seq or command.acquire_seq < 1:
            raise RefusedError(
                Reason.INVALID_ARGUMENT,
                f"acquire_seq must be another request of the session, got {command.acquire_seq}",
            )
        if command.acquire_seq <= session.acked:
            # The client acknowledged that acquire's answer: a grant it got is in use.
            return WaitCancelled(removed=False, released=False)
        session.results.pop(command.acquire_seq, None)
        session.forgotten.add(command.acquire_seq)
        return self._withdraw(
            session,
            command.name,
            command.acquire_seq,
            NotAcquired("abandoned by the client"),
            CAUSE_ABANDONED,
        )

    def _withdraw(
        self,
        session: Session,
        name: str,
        acquire_seq: int,
        outcome: NotAcquired,
        release_cause: str | None,
    ) -> WaitCancelled:
        """Drops the waiter of ``session``'s acquire ``acquire_seq``, or, with a
        ``release_cause``, frees the hold that acquire was granted (its retained result then
        says ``outcome``, as the dropped waiter's would)."""
        lock = self.locks.get(name)
        if lock is None:
            return WaitCancelled(removed=False, released=False)
        waiter = self._find_waiter(lock, session.id, acquire_seq)
        if waiter is not None:
            self._drop_waiter(lock, waiter, outcome)
            self._forget_if_idle(lock)
            return WaitCancelled(removed=True, released=False)
        holder = lock.holder
        if (
            release_cause is not None
            and holder
            and holder.session == session.id
            and holder.acquire_seq == acquire_seq
        ):
            if acquire_seq in session.results:
                session.results[acquire_seq] = outcome
            self._free(lock, release_cause)
            return WaitCancelled(removed=False, released=True)
        return WaitCancelled(removed=False, released=False)

    def _release(self, command: Release) -> Result:
        bounds.check_name(self.limits, "lock name", command.name)
        lock = self._held_by(command.name, command.token, command.session)
        self._free(lock, CAUSE_RELEASED)
        return Released(command.token)

    def _extend(self, command: Extend) -> Result:
        bounds.check_name(self.limits, "lock name", command.name)
        bounds.check_duration(self.limits, "max_hold_ms", command.max_hold_ms, zero_ok=True)
        lock = self._held_by(command.name, command.token, command.session)
        holder = lock.holder
        assert holder is not None  # _held_by checked it
        holder.expires_at = self.clock + command.max_hold_ms if command.max_hold_ms else 0
        if holder.expires_at:
            self._push_timer((holder.expires_at, _HOLD, lock.name, holder.token, 0))
        return Extended(holder.expires_at)

    def _force_release(self, command: ForceRelease) -> Result:
        bounds.check_name(self.limits, "lock name", command.name)
        bounds.check_text(
            self.limits, "reason", command.reason, self.limits.max_reason_bytes, "max_reason_bytes"
        )
        lock = self.locks.get(command.name)
        if lock is None or lock.holder is None:
            return Err(Reason.NOT_FOUND, f"lock {command.name!r} is not held")
        holder = lock.holder
        if command.token and holder.token != command.token:
            return Err(
                Reason.NOT_HOLDER,
                f"lock {command.name!r} is no longer held by token {command.token} "
                f"(now token {holder.token})",
            )
        self._free(lock, CAUSE_FORCE_RELEASED, detail=command.reason)
        return ForceReleased(holder.session, holder.token)

    def _held_by(self, name: str, token: int, session: int) -> LockState:
        """The lock, if ``token`` holds it for ``session``: tokens are guessable, sessions not."""
        lock = self.locks.get(name)
        if lock is None or lock.holder is None:
            raise RefusedError(Reason.NOT_HOLDER, f"lock {name!r} is not held")
        if lock.holder.token != token or lock.holder.session != session:
            raise RefusedError(
                Reason.NOT_HOLDER, f"token {token} of session {session} does not hold lock {name!r}"
            )
        return lock

    def _grant(self, lock: LockState, session_id: int, seq: int, max_hold_ms: int) -> Granted:
        self.last_token += 1
        expires_at = self.clock + max_hold_ms if max_hold_ms else 0
        lock.holder = Holder(session_id, self.last_token, seq, self.clock, expires_at)
        self.sessions[session_id].held.add(lock.name)
        if expires_at:
            self._push_timer((expires_at, _HOLD, lock.name, self.last_token, 0))
        return Granted(self.last_token, expires_at)

    def _free(self, lock: LockState, cause: str, detail: str = "") -> None:
        """Ends the current hold and grants the head waiter in the same step."""
        holder = lock.holder
        assert holder is not None
        lock.holder = None
        self.sessions[holder.session].held.discard(lock.name)
        self._events.append(LockFreed(lock.name, holder.session, holder.token, cause, detail))
        if lock.waiters:
            waiter = lock.waiters.pop(0)
            self.waiter_count -= 1
            session = self.sessions[waiter.session]
            session.waiting.discard((lock.name, waiter.seq))
            granted = self._grant(lock, waiter.session, waiter.seq, waiter.max_hold_ms)
            self._resolve(session, waiter.seq, lock.name, granted)
        else:
            self._forget_if_idle(lock)

    def _drop_waiter(self, lock: LockState, waiter: Waiter, outcome: Result) -> None:
        lock.waiters.remove(waiter)
        self.waiter_count -= 1
        session = self.sessions[waiter.session]
        session.waiting.discard((lock.name, waiter.seq))
        self._resolve(session, waiter.seq, lock.name, outcome)

    def _resolve(self, session: Session, seq: int, name: str, outcome: Result) -> None:
        """A queued acquire's final result: a retry of it now returns this."""
        if seq in session.results:
            session.results[seq] = outcome
        self._events.append(WaiterResolved(session.id, seq, name, outcome))

    @staticmethod
    def _find_waiter(lock: LockState, session_id: int, seq: int) -> Waiter | None:
        for waiter in lock.waiters:
            if waiter.session == session_id and waiter.seq == seq:
                return waiter
        return None

    def _forget_if_idle(self, lock: LockState) -> None:
        if lock.holder is None and not lock.waiters:
            self.locks.pop(lock.name, None)

    # ----------------------------------------------------------------------- lists

    def _set_up_list(self, command: SetUpList) -> Result:
        bounds.check_name(self.limits, "list name", command.name)
        bounds.check_duration(self.limits, "ttl_ms", command.ttl_ms, zero_ok=True)
        expires_at = self.clock + command.ttl_ms if command.ttl_ms else 0
        existing = self.lists.get(command.name)
        created = existing is None
        if existing is None:
            if len(self.lists) >= self.limits.max_lists:
                raise RefusedError(
                    Reason.LIMIT_EXCEEDED,
                    f"{len(self.lists)} lists exist, max_lists={self.limits.max_lists}",
                )
            existing = self.lists[command.name] = ListState(
                command.name, command.ttl_ms, self.clock, expires_at
            )
        existing.ttl_ms = command.ttl_ms
        existing.expires_at = expires_at
        if expires_at:
            self._push_timer((expires_at, _LIST, command.name, 0, 0))
        return ListSetUp(created, expires_at)

    def _insert(self, command: Insert) -> Result:
        bounds.check_name(self.limits, "list name", command.name)
        bounds.check_members(self.limits, command.members)
        target = self._existing_list(command.name)
        fresh = {m for m in command.members if m not in target.ids}
        if len(target.members) + len(fresh) > self.limits.max_members_per_list:
            raise RefusedError(
                Reason.LIMIT_EXCEEDED,
                f"list {command.name!r} would hold {len(target.members) + len(fresh)} members, "
                f"max_members_per_list={self.limits.max_members_per_list}",
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
        self.member_count += len(fresh)
        return Inserted(tuple(results))

    def _tear_down(self, name: str) -> Result:
        bounds.check_name(self.limits, "list name", name)
        existing = self.lists.get(name)
        if existing is None:
            return TornDown(removed=False)
        self._delete_list(existing)
        return TornDown(removed=True)

    def _delete_list(self, existing: ListState) -> None:
        del self.lists[existing.name]
        self.member_count -= len(existing.members)

    def _existing_list(self, name: str) -> ListState:
        existing = self.lists.get(name)
        if existing is None:
            raise RefusedError(Reason.NOT_FOUND, f"list {name!r} does not exist")
        return existing

    # ----------------------------------------------------------------------- reads

    def describe_lock(self, name: str, now: int) -> LockView | Err:
        """The holder and FIFO queue of ``name``; a free lock has no holder and no waiters."""
        try:
            bounds.check_name(self.limits, "lock name", name)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)
        lock = self.locks.get(name)
        return self._lock_view(lock, now) if lock else LockView(name, None, ())

    def list_locks(self, prefix: str, after: str, limit: int, now: int) -> list[LockView] | Err:
        """Locks in use whose name starts with ``prefix``, by name, after ``after``."""
        try:
            page = bounds.check_page(self.limits, limit)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)
        names = sorted(n for n in self.locks if n.startswith(prefix) and n > after)
        return [self._lock_view(self.locks[n], now) for n in names[:page]]

    def validate_token(self, name: str, token: int) -> tuple[bool, int] | Err:
        """(token holds ``name`` now, current holder's token or 0)."""
        try:
            bounds.check_name(self.limits, "lock name", name)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)
        lock = self.locks.get(name)
        current = lock.holder.token if lock and lock.holder else 0
        return (current != 0 and current == token, current)

    def session_view(self, session_id: int, now: int) -> SessionView | None:
        session = self.sessions.get(session_id)
        return self._session_view(session, now) if session else None

    def list_sessions(self, after: int, limit: int, now: int) -> list[SessionView] | Err:
        try:
            page = bounds.check_page(self.limits, limit)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)
        ids = sorted(i for i in self.sessions if i > after)[:page]
        return [self._session_view(self.sessions[i], now) for i in ids]

    def contains(self, name: str, members: tuple[bytes, ...]) -> list[int] | Err:
        """The id of each member, 0 where absent."""
        try:
            bounds.check_name(self.limits, "list name", name)
            bounds.check_members(self.limits, members)
            target = self._existing_list(name)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)
        return [target.ids.get(m, 0) for m in members]

    def members(self, name: str, after_id: int, limit: int) -> list[tuple[int, bytes]] | Err:
        """(id, member) pairs with id > after_id, in id order, at most one page."""
        if after_id < 0:
            return Err(Reason.INVALID_ARGUMENT, f"after_id must not be negative, got {after_id}")
        try:
            bounds.check_name(self.limits, "list name", name)
            page = bounds.check_page(self.limits, limit)
            target = self._existing_list(name)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)
        chunk = target.members[after_id : after_id + page]
        return [(after_id + i + 1, m) for i, m in enumerate(chunk)]

    def list_view(self, name: str, now: int) -> ListView | Err:
        try:
            bounds.check_name(self.limits, "list name", name)
            target = self._existing_list(name)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)
        return self._list_view(target, now)

    def list_lists(self, prefix: str, after: str, limit: int, now: int) -> list[ListView] | Err:
        try:
            page = bounds.check_page(self.limits, limit)
        except RefusedError as refused:
            return Err(refused.reason, refused.detail)
        names = sorted(n for n in self.lists if n.startswith(prefix) and n > after)[:page]
        return [self._list_view(self.lists[n], now) for n in names]

    def counts(self) -> Counts:
        held = sum(1 for lock in self.locks.values() if lock.holder)
        return Counts(
            sessions=len(self.sessions),
            locks_held=held,
            waiters=self.waiter_count,
            lists=len(self.lists),
            members=self.member_count,
        )

    def _lock_view(self, lock: LockState, now: int) -> LockView:
        holder = None
        if lock.holder:
            h = lock.holder
            owner = self.sessions[h.session]
            holder = HolderView(
                session=h.session,
                token=h.token,
                held_for_ms=max(0, now - h.granted_at),
                expires_in_ms=max(1, h.expires_at - now) if h.expires_at else 0,
                client_name=owner.client_name,
                client_host=owner.client_host,
                client_pid=owner.client_pid,
            )
        waiters = []
        for w in lock.waiters:
            owner = self.sessions[w.session]
            waiters.append(
                WaiterView(
                    session=w.session,
                    seq=w.seq,
                    waited_for_ms=max(0, now - w.enqueued_at),
                    wait_remaining_ms=max(0, w.deadline - now),
                    client_name=owner.client_name,
                    client_host=owner.client_host,
                    client_pid=owner.client_pid,
                )
            )
        return LockView(lock.name, holder, tuple(waiters))

    @staticmethod
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
        )

    @staticmethod
    def _list_view(target: ListState, now: int) -> ListView:
        remaining = max(1, target.expires_at - now) if target.expires_at else 0
        return ListView(target.name, len(target.members), target.ttl_ms, remaining)
