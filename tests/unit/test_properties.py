"""Property-based tests of the replicated state machine (cluster/state.py, cluster/snapshot.py).

Hypothesis draws a *plan*: a list of abstract steps (an op and a few small integers). A driver
turns each step into a concrete command against a small universe (3-4 client slots whose
sessions are opened, closed, expired and reopened mid-run; 3 lock names; 2 list names; a
5-member alphabet), stamps it with a log time (zero steps, small steps, jumps past expiries,
landing exactly on / just before / just after the next expiry, stale stamps behind the clock),
applies it and checks the outcome. Plans also retry earlier requests (with every way of
acknowledging them: ``acked``, ``answered``, stale acks), propose CancelWait again, and switch
the bounds (``SetLimits``) to tight ones, back to the defaults, or to invalid ones.

The checks use an independent model built only from what the machine *reported*: results
(``Granted``, ``Queued``, ``Inserted`` ...) and events (``WaiterResolved``, ``LockFreed``,
``SessionEnded``, ``ListExpired``). Expectations are never computed by calling the machine's
internals; its structures and read methods are only *compared* against the model. After every
step: one holder per lock, the one the events say; FIFO hand-off; fencing tokens strictly
increasing per lock; holders and waiters of live sessions only; nothing overdue and nothing
expired early; dense, stable list ids; counters, reads and the exactly-once table agree.

Properties: those invariants; restore-then-replay equals replay (``snapshot``); a retry
returns the first (or final) result and changes nothing. ``TURNSTILE_PROPERTY_EXAMPLES``
overrides the 200 examples each that CI runs (e.g. 5000 for a long local soak).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turnstile.cluster import snapshot, views
from turnstile.cluster.commands import (
    CAUSE_FORCE_RELEASED,
    CAUSE_MAX_HOLD,
    CAUSE_RELEASED,
    CAUSE_SESSION_CLOSED,
    CAUSE_SESSION_EXPIRED,
    CAUSE_WAIT_CANCELLED,
    LIST_CREATED,
    LIST_INSERTED,
    LIST_TORN_DOWN,
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
    ListChanged,
    ListExpired,
    ListSetUp,
    LockFreed,
    LockGranted,
    NotAcquired,
    OpenSession,
    Queued,
    Release,
    Released,
    Result,
    SessionCommand,
    SessionEnded,
    SessionOpened,
    SetLimits,
    SetUpList,
    TearDownList,
    Tick,
    TornDown,
    WaitCancelled,
    WaiterResolved,
)
from turnstile.cluster.limits import Limits
from turnstile.cluster.state import Applied, StateMachine
from turnstile.cluster.views import Counts
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

# --------------------------------------------------------------------------- universe

SLOTS = 4
LOCKS = ("lock-a", "lock-b", "lock-c")
LISTS = ("list-x", "list-y")
ALPHABET = (b"a", b"b", b"c", b"d", b"e")
HOLDS = (0, 0, 1, 5, 20, 100, 1000)
WAITS = (0, 0, 1, 10, 300, 2000, 5000)
TTLS = (0, 0, 10, 100, 1000)
SESSION_TTL_MS = 1000
#: A session id no OpenSession in a run can reach: commands to it are refused.
UNKNOWN_SESSION = 1_000_000
#: A fencing token no run can reach.
UNKNOWN_TOKEN = 10**9

#: 120 in CI: these are the suite's costliest examples (about 0.1 s each, three properties);
#: the other property files run 200. ``TURNSTILE_PROPERTY_EXAMPLES`` sets both.
EXAMPLES = int(os.environ.get("TURNSTILE_PROPERTY_EXAMPLES", "120"))
#: A passing property takes ~10 s; a failing one then shrinks for up to 300 s (Hypothesis's own
#: cap), more than the suite's 300 s pytest timeout, which would lose the minimal example.
SHRINK_TIMEOUT = pytest.mark.timeout(600)
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Op(IntEnum):
    ACQUIRE = 0
    RELEASE = 1
    EXTEND = 2
    CANCEL_WAIT = 3
    FORCE_RELEASE = 4
    SET_UP_LIST = 5
    INSERT = 6
    TEAR_DOWN = 7
    EXPIRE_SESSION = 8
    CLOSE_SESSION = 9
    OPEN_SESSION = 10
    TICK = 11
    RETRY = 12
    SET_LIMITS = 13


#: Relative frequency of each op in a plan (sampled_from a list with repeats).
OP_MIX: tuple[Op, ...] = (
    *[Op.ACQUIRE] * 6,
    *[Op.RELEASE] * 3,
    *[Op.EXTEND] * 2,
    *[Op.CANCEL_WAIT] * 2,
    Op.FORCE_RELEASE,
    *[Op.SET_UP_LIST] * 2,
    *[Op.INSERT] * 3,
    Op.TEAR_DOWN,
    Op.EXPIRE_SESSION,
    Op.CLOSE_SESSION,
    *[Op.OPEN_SESSION] * 2,
    *[Op.TICK] * 2,
    *[Op.RETRY] * 3,
    Op.SET_LIMITS,
)

#: (op, time kind, time magnitude, a, b, c, d): meaning of a..d depends on the op; ``a`` picks
#: the client slot (low 3 bits) and how the request acknowledges earlier ones (the rest).
Step = tuple[Op, int, int, int, int, int, int]

_byte = st.integers(0, 255)
steps_strategy = st.tuples(
    st.sampled_from(OP_MIX), st.integers(0, 16), _byte, _byte, _byte, _byte, _byte
)


@st.composite
def plans(draw: st.DrawFn) -> tuple[int, list[Step]]:
    """(number of sessions opened first, 3 or 4; 20 to 150 random steps)."""
    sessions = draw(st.integers(3, SLOTS))
    length = draw(st.integers(20, 150))
    return sessions, draw(st.lists(steps_strategy, min_size=length, max_size=length))


# --------------------------------------------------------------------------- model


@dataclass
class Hold:
    session: int
    token: int
    acquire_seq: int
    granted_at: int
    expires_at: int


@dataclass
class Wait:
    session: int
    seq: int
    max_hold_ms: int
    enqueued_at: int
    deadline: int


@dataclass
class ListModel:
    expires_at: int
    order: list[bytes] = field(default_factory=list)
    ids: dict[bytes, int] = field(default_factory=dict)


#: What a retry should return: an exact result, only the reason of an Err, or only the type.
Expect = Result | Reason | type[NotAcquired]


@dataclass
class Request:
    command: SessionCommand
    #: The first result, replaced by a queued acquire's resolution and by a racing cancel.
    expected: Expect
    #: Its result is kept for retries (it was not refused before being applied: session
    #: expired, over max_results_per_session ...). A retry of one not stored applies afresh.
    stored: bool = True
    #: Listed in a later request's ``answered``: its result is gone and the client promised
    #: never to send it again, so it is not retried.
    forgotten: bool = False


@dataclass
class Client:
    """The client side of one session id: request ids, acks and what each request returned."""

    session: int
    next_seq: int = 1
    #: Highest ``acked`` applied for this session (results at or below it are forgotten).
    acked: int = 0
    requests: dict[int, Request] = field(default_factory=dict)

    def final_prefix(self) -> int:
        """Highest seq such that every request up to it has its final answer."""
        done = 0
        for seq in range(1, self.next_seq):
            if not self.is_final(seq):
                break
            done = seq
        return done

    def kept(self) -> dict[int, Request]:
        """The requests whose results the machine must still hold."""
        return {
            seq: r
            for seq, r in self.requests.items()
            if seq > self.acked and r.stored and not r.forgotten
        }

    def is_final(self, seq: int) -> bool:
        request = self.requests.get(seq)
        return request is None or not isinstance(request.expected, Queued)


@dataclass
class Model:
    clock: int = 0
    limits: Limits = field(default_factory=Limits)
    live: set[int] = field(default_factory=set)
    #: session -> (opened_at, client_pid) as reported when it was opened.
    born: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Every session id opened so far, in order.
    opened: list[int] = field(default_factory=list)
    slots: list[int | None] = field(default_factory=lambda: [None] * SLOTS)
    clients: dict[int, Client] = field(default_factory=dict)
    holders: dict[str, Hold | None] = field(default_factory=lambda: dict.fromkeys(LOCKS))
    queues: dict[str, list[Wait]] = field(default_factory=lambda: {n: [] for n in LOCKS})
    #: Highest fencing token ever granted per lock.
    last_token: dict[str, int] = field(default_factory=dict)
    tokens_seen: list[int] = field(default_factory=list)
    #: Last token granted to (session, lock), possibly long released.
    own_tokens: dict[tuple[int, str], int] = field(default_factory=dict)
    lists: dict[str, ListModel] = field(default_factory=dict)
    #: CancelWait commands applied so far (they carry no request id of their own).
    cancels: list[CancelWait] = field(default_factory=list)

    def client(self, session: int) -> Client:
        if session not in self.clients:
            self.clients[session] = Client(session)
        return self.clients[session]

    def next_due(self) -> int | None:
        dues = [h.expires_at for h in self.holders.values() if h and h.expires_at]
        dues += [w.deadline for q in self.queues.values() for w in q]
        dues += [item.expires_at for item in self.lists.values() if item.expires_at]
        return min(dues, default=None)

    def all_requests(self) -> list[Request]:
        """Every request a client may still send again."""
        return [
            r
            for sid in sorted(self.clients)
            for r in self.clients[sid].requests.values()
            if not r.forgotten
        ]


@dataclass
class StepContext:
    """What one applied command is allowed to do, and what its events did to the model."""

    command: Command
    clock: int
    #: Log time at which each lock was freed in this step (a max-hold expiry: its due time).
    freed_at: dict[str, int] = field(default_factory=dict)
    #: Due time of the last expiry event; expiries come first and in due order.
    last_due: int = -1
    command_phase: bool = False
    freed: list[LockFreed] = field(default_factory=list)
    cancelled_waiter: bool = False
    ended: list[int] = field(default_factory=list)
    #: (lock, session, token) of each grant the model saw, and of each LockGranted event.
    granted: list[tuple[str, int, int]] = field(default_factory=list)
    announced: list[tuple[str, int, int]] = field(default_factory=list)
    list_changes: list[ListChanged] = field(default_factory=list)
    expired_lists: set[str] = field(default_factory=set)


def _limits(b: int, c: int, d: int) -> Limits:
    """Tight bounds (often below what is already stored), the defaults, or invalid ones."""
    if c % 2 == 0:
        return Limits()
    if c % 8 == 7:
        return Limits(max_batch=0)  # refused: every bound must be positive
    return Limits(
        max_name_bytes=16,
        max_batch=1 + (c >> 1) % 5,
        max_waiters_per_lock=1 + d % 4,
        max_results_per_session=2 + (d >> 2) % 8,
        max_sessions=1 + b % 5,
        max_locks=1 + (b >> 3) % 3,
        max_lists=1 + (d >> 5) % 2,
        max_members_per_list=2 + (b >> 5) % 7,
    )


def _lock(pick: int) -> str:
    """A lock name; half of the picks go to the first, so waiters pile up behind it."""
    return LOCKS[max(0, pick % 4 - 1)]


def _hold_end(now: int, max_hold_ms: int) -> int:
    return now + max_hold_ms if max_hold_ms else 0


def _ends(command: Command, session: int) -> bool:
    """Whether ``command`` ends ``session``."""
    return isinstance(command, CloseSession | ExpireSession) and command.session == session


def _holds(hold: Hold | None, command: Release | Extend) -> bool:
    """Whether ``command`` names the current hold: its token, asked by its own session."""
    return hold is not None and (hold.session, hold.token) == (command.session, command.token)


# --------------------------------------------------------------------------- driver


class Run:
    """Applies a plan to a state machine, checking every step against the model."""

    def __init__(self) -> None:
        self.machine = StateMachine()
        #: Restored from a snapshot of ``machine``; from then on fed the same commands.
        self.shadow: StateMachine | None = None
        self.model = Model()

    # ----------------------------------------------------------------------- time

    def _now(self, kind: int, magnitude: int) -> int:
        clock = self.model.clock
        if kind <= 4:
            return clock  # several commands in one instant
        if kind <= 8:
            return clock + 1 + magnitude % 10
        if kind <= 10:
            return clock + 10 + magnitude % 200
        if kind == 11:
            return clock + 500 + magnitude * 20  # past most pending expiries at once
        if kind <= 14:
            due = self.model.next_due()
            if due is None:
                return clock + magnitude % 50
            return due + kind - 13  # just before, exactly at, just after the next expiry
        return max(0, clock - magnitude % 100)  # a stamp behind the log clock

    # ----------------------------------------------------------------------- commands

    def _slot(self, pick: int) -> int:
        """Mostly a slot whose session is live; sometimes any slot (maybe a dead session)."""
        live = [i for i, s in enumerate(self.model.slots) if s in self.model.live]
        return live[pick % len(live)] if live and pick % 8 != 7 else pick % SLOTS

    def _session_command_base(
        self, slot: int, ack_mode: int
    ) -> tuple[int, int, int, tuple[int, ...]]:
        """(session, seq, acked, answered) for a new request from ``slot``."""
        session = self.model.slots[slot]
        client = self.model.client(UNKNOWN_SESSION if session is None else session)
        seq = client.next_seq
        client.next_seq += 1
        answered: tuple[int, ...] = ()
        match ack_mode % 6:
            case 0:
                acked = client.acked
            case 1:  # ack everything answered for good
                acked = max(client.acked, client.final_prefix())
            case 2:  # ack every request sent, even an acquire still queued
                acked = seq - 1
            case 3:  # a stale ack, lower than one already applied
                acked = 0
            case _:  # the answered prefix, and every later answer past a blocked acquire
                acked = max(client.acked, client.final_prefix())
                answered = tuple(
                    s
                    for s in range(acked + 1, seq)
                    if client.is_final(s) and not client.requests[s].forgotten
                )
        return client.session, seq, min(acked, seq - 1), answered

    def _token(self, session: int, name: str, choice: int, pick: int) -> int:
        holder = self.model.holders[name]
        if choice % 6 <= 2 and holder is not None:
            return holder.token
        if choice % 6 <= 3 and (session, name) in self.model.own_tokens:
            return self.model.own_tokens[(session, name)]
        if choice % 6 <= 4 and self.model.tokens_seen:
            return self.model.tokens_seen[pick % len(self.model.tokens_seen)]
        return UNKNOWN_TOKEN if pick % 2 else 0

    def _command(self, step: Step, now: int) -> tuple[Command, Request | None]:
        """The concrete command for ``step`` and, for a retry, the request retried."""
        op, _, _, a, b, c, d = step
        model = self.model
        if op == Op.RETRY:
            requests = model.all_requests()
            if model.cancels and (not requests or b % 4 == 0):
                # CancelWait has no request id: the leader may propose it again
                return replace(model.cancels[c % len(model.cancels)], now=now), None
            if requests:
                request = requests[c % len(requests)]
                return replace(request.command, now=now), request
            return Tick(now), None
        if op == Op.OPEN_SESSION:
            return OpenSession(now, SESSION_TTL_MS, "worker", "host", a), None
        if op in (Op.EXPIRE_SESSION, Op.CLOSE_SESSION):
            targets = [*model.opened, UNKNOWN_SESSION]
            live = [s for s in targets if s in model.live]
            # mostly a live session, often the most involved one (holding a lock and queued,
            # perhaps behind itself); sometimes a dead or unknown one
            involved = {s: self._involvement(s) for s in live}
            busiest = [s for s in live if involved[s] == max(involved.values(), default=0) > 0]
            pool = busiest if busiest and b % 2 else live if live and b % 4 else targets
            target = pool[c % len(pool)]
            cls = ExpireSession if op == Op.EXPIRE_SESSION else CloseSession
            return cls(now, target), None
        if op == Op.FORCE_RELEASE:
            return ForceRelease(now, _lock(b), "operator" if c % 2 else ""), None
        if op == Op.TICK:
            return Tick(now), None
        if op == Op.SET_LIMITS:
            return SetLimits(now, _limits(b, c, d)), None
        if op == Op.CANCEL_WAIT:
            return self._cancel_wait(now, a, b, c), None
        lock = _lock(b)
        slot = self._slot(a)
        holder = model.holders[lock]
        if op in (Op.RELEASE, Op.EXTEND) and c % 6 <= 1 and holder is not None:
            # mostly the holder itself lets go (or extends); else whichever slot was picked
            slot = next((i for i, s in enumerate(model.slots) if s == holder.session), slot)
        session, seq, acked, answered = self._session_command_base(slot, a >> 3)
        dlist = LISTS[b % 2]
        command: Command
        match op:
            case Op.ACQUIRE:
                hold = HOLDS[c % len(HOLDS)]
                wait = WAITS[(c // len(HOLDS)) % len(WAITS)]
                command = Acquire(now, session, seq, acked, lock, hold, wait)
            case Op.RELEASE:
                token = self._token(session, lock, c, d)
                command = Release(now, session, seq, acked, lock, token)
            case Op.EXTEND:
                token = self._token(session, lock, c, d)
                hold = HOLDS[(c // 4) % len(HOLDS)]
                command = Extend(now, session, seq, acked, lock, token, hold)
            case Op.SET_UP_LIST:
                command = SetUpList(now, session, seq, acked, dlist, TTLS[c % len(TTLS)])
            case Op.INSERT:
                size = 1 + (c // 3) % 5
                members = tuple(ALPHABET[(d + i * (c % 3)) % len(ALPHABET)] for i in range(size))
                command = Insert(now, session, seq, acked, dlist, members)
            case _:
                command = TearDownList(now, session, seq, acked, dlist)
        if answered:
            command = replace(command, answered=answered)
        return command, None

    def _involvement(self, session: int) -> int:
        """How much ending ``session`` has to undo: 2 per lock held, 1 per acquire queued."""
        held = sum(2 for h in self.model.holders.values() if h and h.session == session)
        return held + sum(w.session == session for q in self.model.queues.values() for w in q)

    def _cancel_wait(self, now: int, a: int, b: int, c: int) -> CancelWait:
        """The leader gives up an acquire of the slot's session: mostly a recent one."""
        slot_session = self.model.slots[self._slot(a)]
        session = UNKNOWN_SESSION if slot_session is None else slot_session
        acquires = [
            r.command
            for r in self.model.client(session).requests.values()
            if isinstance(r.command, Acquire)
        ]
        if not acquires:
            return CancelWait(now, session, _lock(b), 1 + c % 5, release_grant=True)
        target = acquires[-1 - c % len(acquires)]
        name = target.name if b % 5 else LOCKS[(LOCKS.index(target.name) + 1) % 3]
        return CancelWait(now, session, name, target.seq, release_grant=True)

    # ----------------------------------------------------------------------- stepping

    def open_initial(self, sessions: int) -> None:
        for slot in range(sessions):
            self.apply(OpenSession(0, SESSION_TTL_MS, "worker", "host", slot), slot=slot)

    def step(self, step: Step) -> Command:
        now = self._now(step[1], step[2])
        command, retried = self._command(step, now)
        # OpenSession reopens mostly a slot whose session has ended; else orphans a live one.
        dead = [i for i, s in enumerate(self.model.slots) if s not in self.model.live]
        slot = dead[step[3] % len(dead)] if dead and step[3] % 4 else step[3] % SLOTS
        self.apply(command, retried, slot=slot)
        return command

    def apply(self, command: Command, retried: Request | None = None, slot: int = 0) -> Applied:
        applied = self.machine.apply(command)
        if self.shadow is not None:
            assert self.shadow.apply(command) == applied, "restored machine diverged"
        ctx = StepContext(command, max(self.model.clock, command.now))
        live_before = set(self.model.live)
        sizes_before = {name: len(item.order) for name, item in self.model.lists.items()}
        for event in applied.events:
            self._event(ctx, event)
        self._result(ctx, applied.result, retried, live_before, slot)
        assert sorted(ctx.announced) == sorted(ctx.granted), f"LockGranted events of {command}"
        self._check_list_changes(ctx, sizes_before)
        self.model.clock = ctx.clock
        self._check_model()
        self.check_state(self.machine)
        if self.shadow is not None:
            self.check_state(self.shadow)
        return applied

    # ----------------------------------------------------------------------- events

    def _grant(self, ctx: StepContext, name: str, hold: Hold) -> None:
        model = self.model
        assert model.holders[name] is None, f"{name} granted while held: {model.holders[name]}"
        assert hold.session in model.live, f"{name} granted to dead session {hold.session}"
        # An expiry before the command may grant a session the command then ends; the ending
        # itself must not hand a lock to the very session it ends.
        ending = ctx.command_phase and _ends(ctx.command, hold.session)
        assert not ending, f"{name} granted to ending session {hold.session}"
        assert hold.token > model.last_token.get(name, 0), f"{name}: token {hold.token} not fresh"
        model.last_token[name] = hold.token
        ctx.granted.append((name, hold.session, hold.token))
        model.holders[name] = hold
        model.tokens_seen.append(hold.token)
        model.own_tokens[(hold.session, name)] = hold.token

    def _expiry(self, ctx: StepContext, due: int) -> None:
        assert not ctx.command_phase, "an expiry came after the command's own effects"
        assert 0 < due <= ctx.clock, f"expiry due at {due} applied at clock {ctx.clock}"
        assert due >= ctx.last_due, f"expiries out of order: {due} after {ctx.last_due}"
        ctx.last_due = due

    def _event(self, ctx: StepContext, event: Event) -> None:
        model = self.model
        command = ctx.command
        match event:
            case LockFreed(name=name, session=sid, token=token, cause=cause, detail=detail):
                hold = model.holders.get(name)
                assert hold is not None, f"{event}: model has {name} free"
                assert (hold.session, hold.token) == (sid, token), f"{event} but model has {hold}"
                if cause == CAUSE_MAX_HOLD:
                    self._expiry(ctx, hold.expires_at)
                    ctx.freed_at[name] = hold.expires_at
                else:
                    ctx.command_phase = True
                    ctx.freed_at[name] = ctx.clock
                    if cause == CAUSE_RELEASED:
                        assert isinstance(command, Release), event
                        assert (command.session, command.name, command.token) == (sid, name, token)
                    elif cause == CAUSE_SESSION_CLOSED:
                        assert command == CloseSession(command.now, sid), event
                    elif cause == CAUSE_SESSION_EXPIRED:
                        assert command == ExpireSession(command.now, sid), event
                    elif cause == CAUSE_FORCE_RELEASED:
                        assert isinstance(command, ForceRelease), event
                        assert (command.name, command.reason) == (name, detail), event
                    elif cause == CAUSE_WAIT_CANCELLED:
                        assert isinstance(command, CancelWait), event
                        assert (command.session, command.name) == (sid, name), event
                        assert command.acquire_seq == hold.acquire_seq, event
                    else:
                        pytest.fail(f"unknown cause in {event}")
                model.holders[name] = None
                ctx.freed.append(event)
            case WaiterResolved(session=sid, seq=seq, name=name, result=outcome):
                queue = model.queues[name]
                index = next(
                    (i for i, w in enumerate(queue) if (w.session, w.seq) == (sid, seq)), None
                )
                assert index is not None, f"{event}: no such waiter in model {queue}"
                waiter = queue.pop(index)
                if isinstance(outcome, Granted):
                    assert index == 0, f"{event}: granted out of FIFO order"
                    assert name in ctx.freed_at, f"{event}: lock was not freed in this step"
                    assert waiter.deadline >= ctx.freed_at[name], f"{event}: wait had ended"
                    assert outcome.expires_at == _hold_end(ctx.clock, waiter.max_hold_ms), event
                    hold = Hold(sid, outcome.token, seq, ctx.clock, outcome.expires_at)
                    self._grant(ctx, name, hold)
                elif isinstance(outcome, NotAcquired):
                    if waiter.deadline <= ctx.clock:
                        self._expiry(ctx, waiter.deadline)
                    else:
                        assert isinstance(command, CancelWait), f"{event} from {command}"
                        assert (command.session, command.name) == (sid, name), event
                        assert command.acquire_seq == seq, event
                        ctx.command_phase = True
                        ctx.cancelled_waiter = True
                elif isinstance(outcome, Err):
                    assert outcome.reason == Reason.SESSION_EXPIRED, event
                    assert _ends(command, sid), f"{event} from {command}"
                    ctx.command_phase = True
                else:
                    pytest.fail(f"unexpected outcome in {event}")
                request = model.client(sid).requests.get(seq)
                assert request is not None and isinstance(request.command, Acquire), event
                request.expected = outcome
            case SessionEnded(session=sid, cause=cause):
                assert sid in model.live, f"{event}: not live in model"
                assert isinstance(command, CloseSession | ExpireSession), event
                assert command.session == sid, event
                want = CAUSE_SESSION_CLOSED if isinstance(command, CloseSession) else None
                assert cause == (want or CAUSE_SESSION_EXPIRED), event
                model.live.discard(sid)
                ctx.command_phase = True
                ctx.ended.append(sid)
            case ListExpired(name=name):
                item = model.lists.get(name)
                assert item is not None and item.expires_at, f"{event}: model list {item}"
                self._expiry(ctx, item.expires_at)
                del model.lists[name]
                ctx.expired_lists.add(name)
            case LockGranted(name=name, session=sid, token=token):
                ctx.announced.append((name, sid, token))
            case ListChanged():
                ctx.list_changes.append(event)
            case _:
                pytest.fail(f"unknown event {event!r}")

    def _check_list_changes(self, ctx: StepContext, sizes_before: dict[str, int]) -> None:
        """ListChanged events say what the model saw happen to the lists in this step (after
        the expiries that came before the command)."""
        expected: list[ListChanged] = []
        command = ctx.command
        after = self.model.lists
        before = {n: size for n, size in sizes_before.items() if n not in ctx.expired_lists}
        name = getattr(command, "name", "")
        if isinstance(command, SetUpList) and name not in before and name in after:
            expected.append(ListChanged(name, LIST_CREATED))
        if isinstance(command, Insert) and name in after:
            size, old = len(after[name].order), before.get(name, 0)
            if size > old:
                expected.append(ListChanged(name, LIST_INSERTED, old + 1, size))
        if isinstance(command, TearDownList) and name in before and name not in after:
            expected.append(ListChanged(name, LIST_TORN_DOWN))
        assert ctx.list_changes == expected, f"{command}: {ctx.list_changes} vs {expected}"

    # ----------------------------------------------------------------------- results

    def retry_is_pure(self, request: Request) -> bool:
        """Whether sending ``request`` again just answers (else it is applied afresh)."""
        session = request.command.session
        if session not in self.model.live or request.stored:
            return True
        return request.command.seq <= self.model.client(session).acked

    def expected_retry(self, request: Request) -> Expect:
        session = request.command.session
        if session not in self.model.live:
            return Reason.SESSION_EXPIRED
        if request.command.seq <= self.model.client(session).acked:
            return Reason.INVALID_ARGUMENT
        return request.expected

    @staticmethod
    def matches(result: Result, expected: Expect) -> bool:
        if isinstance(expected, Reason):
            return isinstance(result, Err) and result.reason == expected
        if isinstance(expected, type):
            return isinstance(result, expected)
        return result == expected

    def _result(
        self,
        ctx: StepContext,
        result: Result,
        retried: Request | None,
        live_before: set[int],
        slot: int,
    ) -> None:
        model = self.model
        command = ctx.command
        if retried is not None:
            if not self.retry_is_pure(retried):
                # its first attempt was refused before it was applied: this one is applied
                self._session_result(ctx, replace(retried.command, now=command.now), result)
                return
            assert not ctx.command_phase, f"retry of {command} did something: {ctx}"
            expected = self.expected_retry(retried)
            assert self.matches(result, expected), f"retry {command}: {result}, want {expected}"
            return
        if ctx.ended:
            assert len(ctx.ended) == 1 and _ends(command, ctx.ended[0]), f"{command}: {ctx.ended}"
        match command:
            case OpenSession():
                if len(model.live) >= model.limits.max_sessions:
                    assert self.matches(result, Reason.LIMIT_EXCEEDED), f"{command}: {result}"
                    return
                assert isinstance(result, SessionOpened), result
                assert result.ttl_ms == command.ttl_ms
                assert result.session > max(model.opened, default=0), f"{result} reused an id"
                model.opened.append(result.session)
                model.live.add(result.session)
                model.born[result.session] = (ctx.clock, command.client_pid)
                model.slots[slot] = result.session
                model.client(result.session)
            case CloseSession() | ExpireSession():
                if command.session in live_before:
                    assert result == Done(), result
                    assert ctx.ended == [command.session], f"{command}: no SessionEnded"
                    stale = [n for n, h in model.holders.items() if h and h.session in ctx.ended]
                    stale += [
                        n for n, q in model.queues.items() for w in q if w.session in ctx.ended
                    ]
                    assert not stale, f"{command} left holds or waiters on {stale}"
                else:
                    assert self.matches(result, Reason.SESSION_EXPIRED), result
            case Tick():
                assert result == Done(), result
            case SetLimits(limits=limits):
                if limits.problems():
                    assert self.matches(result, Reason.INVALID_ARGUMENT), result
                else:
                    assert result == Done(), result
                    model.limits = limits
            case CancelWait():
                model.cancels.append(command)
                if command.session in model.live:
                    self._cancel_result(ctx, command, result)
                else:
                    assert self.matches(result, Reason.SESSION_EXPIRED), result
                    assert not ctx.command_phase, f"{command} of a dead session did something"
            case ForceRelease(name=name):
                if isinstance(result, ForceReleased):
                    forced = [e for e in ctx.freed if e.cause == CAUSE_FORCE_RELEASED]
                    assert [(e.session, e.token) for e in forced] == [
                        (result.session, result.token)
                    ], f"{result} with events {ctx.freed}"
                else:
                    assert self.matches(result, Reason.NOT_FOUND), result
                    assert model.holders[name] is None, f"{result} but model holds {name}"
            case _:
                self._session_result(ctx, command, result)  # type: ignore[arg-type]

    def _cancel_result(self, ctx: StepContext, command: CancelWait, result: Result) -> None:
        model = self.model
        name, acquire_seq = command.name, command.acquire_seq
        assert isinstance(result, WaitCancelled), f"{command}: {result}"
        cancelled = [e for e in ctx.freed if e.cause == CAUSE_WAIT_CANCELLED]
        assert result.removed == ctx.cancelled_waiter, f"{command}: {result} vs events"
        assert result.released == bool(cancelled), f"{command}: {result} vs {ctx.freed}"
        assert not (result.removed and result.released), result
        if result.released:
            acquire = model.client(command.session).requests.get(acquire_seq)
            if acquire is not None:
                acquire.expected = NotAcquired  # the caller was told no
        elif not result.removed:
            assert not ctx.command_phase, f"{command}: {result} but events {ctx}"
            waiting = [(w.session, w.seq) for w in model.queues[name]]
            assert (command.session, acquire_seq) not in waiting, f"{command}: {result}"
            hold = model.holders[name]
            assert hold is None or (hold.session, hold.acquire_seq) != (
                command.session,
                acquire_seq,
            ), f"{command}: {result} but {hold}"

    def _session_result(self, ctx: StepContext, command: SessionCommand, result: Result) -> None:
        """Checks a request applied for the first time (or again, if never stored)."""
        model = self.model
        limits = model.limits
        client = model.client(command.session)
        answered = command.answered
        refused: Reason | None = None
        if command.session not in model.live:
            refused = Reason.SESSION_EXPIRED
        elif len(answered) > limits.max_results_per_session:
            refused = Reason.INVALID_ARGUMENT
        else:
            # acknowledged and answered results are forgotten before the bound is checked
            client.acked = max(client.acked, command.acked)
            for seq in answered:
                if seq != command.seq and seq in client.requests:
                    client.requests[seq].forgotten = True
            if len(client.kept()) >= limits.max_results_per_session:
                refused = Reason.LIMIT_EXCEEDED
        client.requests[command.seq] = Request(command, result, stored=refused is None)
        if refused is not None:
            assert self.matches(result, refused), f"{command}: {result}, want {refused}"
            assert not ctx.command_phase, f"refused {command} did something"
            return
        self._apply_expected(ctx, command, result)
        if not isinstance(command, Release):
            assert not ctx.command_phase, f"{command} had command-phase events: {ctx}"

    def _apply_expected(self, ctx: StepContext, command: SessionCommand, result: Result) -> None:
        model = self.model
        limits = model.limits
        match command:
            case Acquire(name=name):
                busy = model.holders[name] is not None or bool(model.queues[name])
                in_use = sum(1 for n in LOCKS if model.holders[n] or model.queues[n])
                if not busy and in_use >= limits.max_locks:
                    assert self.matches(result, Reason.LIMIT_EXCEEDED), f"{command}: {result}"
                elif not busy:
                    assert isinstance(result, Granted), f"{command}: {result}"
                    assert result.expires_at == _hold_end(ctx.clock, command.max_hold_ms)
                    hold = Hold(
                        command.session, result.token, command.seq, ctx.clock, result.expires_at
                    )
                    self._grant(ctx, name, hold)
                elif command.wait_ms == 0:
                    assert isinstance(result, NotAcquired), f"{command}: {result}"
                elif len(model.queues[name]) >= limits.max_waiters_per_lock:
                    assert self.matches(result, Reason.LIMIT_EXCEEDED), f"{command}: {result}"
                else:
                    assert isinstance(result, Queued), f"{command}: {result}"
                    assert result.position == len(model.queues[name]) + 1, result
                    assert result.deadline == ctx.clock + command.wait_ms, result
                    model.queues[name].append(
                        Wait(
                            command.session,
                            command.seq,
                            command.max_hold_ms,
                            ctx.clock,
                            result.deadline,
                        )
                    )
            case Release(name=name, token=token):
                released = [e for e in ctx.freed if e.cause == CAUSE_RELEASED]
                if isinstance(result, Released):
                    assert result.token == token
                    assert [(e.name, e.token) for e in released] == [(name, token)], ctx.freed
                else:
                    assert self.matches(result, Reason.NOT_HOLDER), f"{command}: {result}"
                    assert not released, f"{result} yet {released}"
                    hold = model.holders[name]
                    assert not _holds(hold, command), f"{command} refused: {result}"
            case Extend(name=name):
                hold = model.holders[name]
                if isinstance(result, Extended):
                    assert hold is not None and _holds(hold, command), f"{command}: {hold}"
                    assert result.expires_at == _hold_end(ctx.clock, command.max_hold_ms)
                    hold.expires_at = result.expires_at
                else:
                    assert self.matches(result, Reason.NOT_HOLDER), f"{command}: {result}"
                    assert not _holds(hold, command), f"{command} refused: {result}"
            case SetUpList(name=name, ttl_ms=ttl):
                if name not in model.lists and len(model.lists) >= limits.max_lists:
                    assert self.matches(result, Reason.LIMIT_EXCEEDED), f"{command}: {result}"
                    return
                assert isinstance(result, ListSetUp), result
                assert result.created == (name not in model.lists), f"{command}: {result}"
                assert result.expires_at == _hold_end(ctx.clock, ttl), result
                model.lists.setdefault(name, ListModel(0)).expires_at = result.expires_at
            case Insert(name=name, members=members):
                item = model.lists.get(name)
                if len(members) > limits.max_batch:
                    assert self.matches(result, Reason.LIMIT_EXCEEDED), f"{command}: {result}"
                    return
                if item is None:
                    assert self.matches(result, Reason.NOT_FOUND), f"{command}: {result}"
                    return
                fresh = set(members) - set(item.ids)
                if len(item.order) + len(fresh) > limits.max_members_per_list:
                    assert self.matches(result, Reason.LIMIT_EXCEEDED), f"{command}: {result}"
                    return
                want: list[tuple[bool, int]] = []
                for member in members:
                    if member in item.ids:
                        want.append((False, item.ids[member]))
                    else:
                        item.order.append(member)
                        item.ids[member] = len(item.order)
                        want.append((True, len(item.order)))
                assert result == Inserted(tuple(want)), f"{command}: {result}, want {want}"
            case TearDownList(name=name):
                assert result == TornDown(removed=name in model.lists), f"{command}: {result}"
                model.lists.pop(name, None)
            case _:
                pytest.fail(f"unexpected command {command!r}")

    # ----------------------------------------------------------------------- invariants

    def _check_model(self) -> None:
        """The model's own timing invariants: nothing is overdue after a step."""
        clock = self.model.clock
        for name, hold in self.model.holders.items():
            assert hold is None or hold.expires_at == 0 or hold.expires_at > clock, (name, hold)
            assert hold is None or hold.session in self.model.live, (name, hold)
            if self.model.queues[name]:
                assert hold is not None, f"{name} has waiters but no holder"
        for queue in self.model.queues.values():
            for waiter in queue:
                assert waiter.deadline > clock and waiter.session in self.model.live, waiter
        for item in self.model.lists.values():
            assert item.expires_at == 0 or item.expires_at > clock, item

    def check_state(self, machine: StateMachine) -> None:
        """Compares the machine's structures and read views with the model."""
        model = self.model
        clock = model.clock
        assert machine.clock == clock
        assert set(machine.sessions) == model.live
        # Locks: one holder, the one the events say; FIFO waiters; all of live sessions.
        in_use = [n for n in LOCKS if model.holders[n] or model.queues[n]]
        assert sorted(machine.locks) == in_use
        listed = views.list_locks(machine, "", "", 0, clock)
        assert not isinstance(listed, Err)
        assert [view.name for view in listed] == in_use
        for name in LOCKS:
            view = views.describe_lock(machine, name, clock)
            assert not isinstance(view, Err)
            hold = model.holders[name]
            if hold is None:
                assert view.holder is None, (name, view.holder)
            else:
                assert view.holder is not None, (name, hold)
                got = (
                    view.holder.session,
                    view.holder.token,
                    view.holder.held_for_ms,
                    view.holder.expires_in_ms,
                    view.holder.client_pid,
                )
                want = (
                    hold.session,
                    hold.token,
                    clock - hold.granted_at,
                    hold.expires_at and hold.expires_at - clock,
                    model.born[hold.session][1],
                )
                assert got == want, name
            got_waiters = [
                (w.session, w.seq, w.waited_for_ms, w.wait_remaining_ms, w.client_pid)
                for w in view.waiters
            ]
            want_waiters = [
                (
                    w.session,
                    w.seq,
                    clock - w.enqueued_at,
                    w.deadline - clock,
                    model.born[w.session][1],
                )
                for w in model.queues[name]
            ]
            assert got_waiters == want_waiters, name
            validated = views.validate_token(machine, name, hold.token if hold else 0)
            assert validated == ((True, hold.token) if hold else (False, 0)), name
        holders_of: Counter[str] = Counter()
        for sid in sorted(machine.sessions):
            session_view = views.session_view(machine, sid, clock)
            assert session_view is not None
            opened_at, pid = model.born[sid]
            assert (session_view.age_ms, session_view.client_pid) == (clock - opened_at, pid)
            holders_of.update(session_view.held)
            assert list(session_view.held) == sorted(
                n for n, h in model.holders.items() if h and h.session == sid
            ), sid
            assert list(session_view.waiting) == sorted(
                {n for n, q in model.queues.items() for w in q if w.session == sid}
            ), sid
        assert all(count == 1 for count in holders_of.values()), holders_of
        # Exactly-once table: the unacknowledged, not-yet-answered results, each as a retry
        # would return it.
        for sid, session in machine.sessions.items():
            kept = model.client(sid).kept()
            assert sorted(session.results) == sorted(kept), sid
            for seq, request in kept.items():
                assert self.matches(session.results[seq], request.expected), (sid, seq)
        assert machine.limits == model.limits
        for lock in machine.locks.values():
            assert lock.holder is not None or not lock.waiters, lock
            assert lock.holder is None or lock.holder.session in machine.sessions, lock
            assert all(w.session in machine.sessions for w in lock.waiters), lock
        # Lists: dense unique ids 1..N that never change while the list lives.
        assert sorted(machine.lists) == sorted(model.lists)
        for name in LISTS:
            item = model.lists.get(name)
            if item is None:
                gone = views.list_view(machine, name, clock)
                assert isinstance(gone, Err) and gone.reason == Reason.NOT_FOUND, name
                continue
            stored = machine.lists[name]
            assert stored.members == item.order, name
            assert stored.ids == {m: i + 1 for i, m in enumerate(stored.members)}, name
            pages = views.members(machine, name, 0, 0)
            assert pages == [(i + 1, m) for i, m in enumerate(item.order)], name
            for member in ALPHABET:  # one at a time: max_batch may be 1
                assert views.contains(machine, name, (member,)) == [item.ids.get(member, 0)], name
            # Every id maps back to the member that got it; no member has an id past the end.
            for id_ in range(len(item.order) + 2):
                want = item.order[id_ - 1] if 0 < id_ <= len(item.order) else b""
                assert views.lookup(machine, name, (id_,)) == [want], (name, id_)
            list_view = views.list_view(machine, name, clock)
            assert not isinstance(list_view, Err)
            assert list_view.size == len(item.order)
            assert list_view.expires_in_ms == (item.expires_at and item.expires_at - clock)
        # Counters agree with the structures and with the model.
        structures = Counts(
            sessions=len(machine.sessions),
            locks_held=sum(1 for lock in machine.locks.values() if lock.holder is not None),
            waiters=sum(len(lock.waiters) for lock in machine.locks.values()),
            lists=len(machine.lists),
            members=sum(len(item.members) for item in machine.lists.values()),
            groups=0,
            group_members=0,
            elections=0,
            semaphores=0,
            permits_held=0,
        )
        expected = Counts(
            sessions=len(model.live),
            locks_held=sum(1 for h in model.holders.values() if h),
            waiters=sum(len(q) for q in model.queues.values()),
            lists=len(model.lists),
            members=sum(len(item.order) for item in model.lists.values()),
            groups=0,
            group_members=0,
            elections=0,
            semaphores=0,
            permits_held=0,
        )
        assert views.counts(machine) == structures == expected
        assert machine.next_due() == model.next_due()

    # ----------------------------------------------------------------------- retries

    def retry_in_place(self, request: Request) -> None:
        """Re-applies ``request`` at the current log time: its first answer, nothing changed."""
        before = snapshot.dump(self.machine)
        applied = self.machine.apply(replace(request.command, now=self.model.clock))
        expected = self.expected_retry(request)
        assert self.matches(applied.result, expected), (
            f"retry of {request.command}: {applied.result}, want {expected}"
        )
        assert applied.events == (), applied.events
        assert snapshot.dump(self.machine) == before, f"retry of {request.command} changed state"

    def cancel_again_in_place(self, command: CancelWait) -> None:
        """A CancelWait applied twice changes nothing more than once (it has no request id)."""
        before = snapshot.dump(self.machine)
        applied = self.machine.apply(replace(command, now=self.model.clock))
        if command.session in self.model.live:
            assert applied.result == WaitCancelled(removed=False, released=False), applied
        else:
            assert self.matches(applied.result, Reason.SESSION_EXPIRED), applied
        assert applied.events == (), applied.events
        assert snapshot.dump(self.machine) == before, f"{command} again changed state"

    def take_snapshot(self) -> None:
        """From now on a machine restored from a snapshot gets every command too."""
        self.shadow = self.restore_and_check()

    def restore_and_check(self) -> StateMachine:
        """A snapshot restores to the same state: same bytes again, same reads, same model."""
        blob = snapshot.dump(self.machine)
        restored = snapshot.load(blob)
        assert snapshot.dump(restored) == blob
        self.check_state(restored)
        return restored


def _run(sessions: int, steps: Sequence[Step]) -> Run:
    run = Run()
    run.open_initial(sessions)
    for step in steps:
        run.step(step)
    return run


# --------------------------------------------------------------------------- properties


@SHRINK_TIMEOUT
@PROPERTY_SETTINGS
@given(plans())
def test_invariants_hold_after_every_step(plan: tuple[int, list[Step]]) -> None:
    _run(*plan)


@SHRINK_TIMEOUT
@PROPERTY_SETTINGS
@given(plans(), st.integers(0, 150))
def test_restore_then_replay_equals_replay(plan: tuple[int, list[Step]], at: int) -> None:
    sessions, steps = plan
    at = min(at, len(steps))
    run = Run()
    run.open_initial(sessions)
    for step in steps[:at]:
        run.step(step)
        run.restore_and_check()
    run.take_snapshot()
    for step in steps[at:]:
        run.step(step)  # asserts every Applied of both machines is equal
        run.restore_and_check()
    assert run.shadow is not None
    assert snapshot.dump(run.shadow) == snapshot.dump(run.machine)


@SHRINK_TIMEOUT
@PROPERTY_SETTINGS
@given(plans())
def test_retry_returns_first_result_and_changes_nothing(plan: tuple[int, list[Step]]) -> None:
    sessions, steps = plan
    run = Run()
    run.open_initial(sessions)
    for step in steps:
        command = run.step(step)
        if isinstance(command, CancelWait):
            run.cancel_again_in_place(command)
        requests = run.model.all_requests()
        if requests:
            pick = step[6]
            pure = [r for r in requests if run.retry_is_pure(r)]
            retained = [r for r in pure if isinstance(run.expected_retry(r), Result)]
            pool = retained if retained and pick % 4 else pure
            if pool:
                run.retry_in_place(pool[pick % len(pool)])
    for request in run.model.all_requests():
        if run.retry_is_pure(request):
            run.retry_in_place(request)
