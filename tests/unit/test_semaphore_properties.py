"""Property tests of semaphores and of acquires of several locks: random histories.

Semaphores are checked against an independent model, built only from the commands and their
results, after every step:

- the holders and the FIFO queue of every semaphore are the model's, and a waiter is granted
  only from the head, only while a permit is free: never more holders than the limit after a
  grant, never a waiter while a permit is free;
- max-holds and wait deadlines fall due in the model's order, and every grant gets the next
  token;
- a retried acquire returns its first result, or the one its wait resolved to, and takes no
  second permit;
- the events of a step say exactly who was granted and freed.

Acquires of several locks are checked against the invariants that make them safe and live:

- all or nothing: every grant of a step covers every lock of its acquire, all held by that
  session with that acquire's tokens after the step;
- one waiter for several locks is queued in the queue of each of them, and every queue is in
  the order the waiters arrived (so no two waiters wait for each other);
- no missed grant: no head waiter has all of its locks free and heads all their queues;
- no deadlock: releasing whatever is held, over and over, without time passing, empties every
  queue.

Restoring a snapshot taken at any step and applying the rest equals applying everything.
``TURNSTILE_PROPERTY_EXAMPLES`` overrides the examples CI runs (as in ``test_properties``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster import snapshot
from turnstile.cluster.commands import (
    Abandon,
    Acquire,
    CancelWait,
    CloseSession,
    Command,
    Err,
    ExpireSession,
    Granted,
    LockGranted,
    NotAcquired,
    OpenSession,
    Queued,
    Release,
    Released,
    Result,
    SessionOpened,
    SetClusterVersion,
    Tick,
    WaitCancelled,
    WaiterResolved,
)
from turnstile.cluster.state import Applied, StateMachine
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

EXAMPLES = int(os.environ.get("TURNSTILE_PROPERTY_EXAMPLES", "200"))
SEMAPHORES = ("s0", "s1")
LOCKS = ("a", "b", "c", "d")

Step = tuple[str, int, int, int, int, int]
SEMAPHORE_STEPS = st.tuples(
    st.sampled_from(
        [
            "open",
            "end",
            "acquire",
            "acquire",
            "acquire",
            "release",
            "retry",
            "abandon",
            "cancel",
            "tick",
        ]
    ),
    st.integers(0, 7),
    st.integers(0, 7),
    st.integers(0, 7),
    st.integers(0, 7),
    # The limit, apart from the wait: a waiting acquire must not always raise it.
    st.sampled_from([1, 1, 1, 2, 3]),
)
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class Log:
    """A machine at cluster version 6, the commands applied to it, and request ids."""

    def __init__(self) -> None:
        self.machine = StateMachine()
        self.now = 0
        self.seqs: dict[int, int] = {}
        self.commands: list[Command] = []
        self.apply(SetClusterVersion(0, sem.SEMAPHORES_SINCE))

    def apply(self, command: Command) -> Applied:
        self.commands.append(command)
        return self.machine.apply(command)

    def fields(self, session: int) -> dict[str, int]:
        self.seqs[session] = self.seqs.get(session, 0) + 1
        return {"now": self.now, "session": session, "seq": self.seqs[session], "acked": 0}

    def open(self) -> int:
        applied = self.apply(OpenSession(self.now, 60_000, "w", "h", 1))
        assert isinstance(applied.result, SessionOpened)
        return applied.result.session


def same_kind(got: Result, want: Result) -> bool:
    """Equal results, except that a refusal's wording is not compared."""
    if isinstance(want, NotAcquired):
        return isinstance(got, NotAcquired)
    if isinstance(want, Err):
        return isinstance(got, Err) and got.reason is want.reason
    return got == want


# --------------------------------------------------------------------------- semaphores


@dataclass
class Permit:
    session: int
    token: int
    seq: int
    expires_at: int


@dataclass
class Wait:
    session: int
    seq: int
    deadline: int
    max_hold_ms: int


@dataclass
class ModelSemaphore:
    limit: int
    holders: list[Permit] = field(default_factory=list)
    queue: list[Wait] = field(default_factory=list)


@dataclass
class SemaphoreModel:
    live: list[int] = field(default_factory=list)
    semaphores: dict[str, ModelSemaphore] = field(default_factory=dict)
    last_token: int = 0
    #: (session, seq) -> the acquire's current result, as a retry would return it.
    results: dict[tuple[int, int], Result] = field(default_factory=dict)
    #: Grants and frees of the current step: (name, session, token).
    granted: list[tuple[str, int, int]] = field(default_factory=list)
    freed: list[tuple[str, int, int, str]] = field(default_factory=list)

    def grant(self, name: str, session: int, seq: int, max_hold_ms: int, now: int) -> Granted:
        item = self.semaphores[name]
        assert len(item.holders) < item.limit, f"{name}: granted beyond its limit"
        self.last_token += 1
        expires_at = now + max_hold_ms if max_hold_ms else 0
        self.semaphores[name].holders.append(Permit(session, self.last_token, seq, expires_at))
        self.granted.append((name, session, self.last_token))
        return Granted(self.last_token, expires_at)

    def pump(self, name: str, now: int) -> None:
        item = self.semaphores[name]
        while item.queue and len(item.holders) < item.limit:
            head = item.queue.pop(0)
            self.results[head.session, head.seq] = self.grant(
                name, head.session, head.seq, head.max_hold_ms, now
            )
        self.forget_if_unused(name)

    def forget_if_unused(self, name: str) -> None:
        item = self.semaphores[name]
        if not item.holders and not item.queue:
            del self.semaphores[name]

    def free(self, name: str, permit: Permit, cause: str, now: int) -> None:
        self.semaphores[name].holders.remove(permit)
        self.freed.append((name, permit.session, permit.token, cause))
        self.pump(name, now)

    def expire_due(self, now: int) -> None:
        """Max-holds before waits at one instant, then by name and ids: the machine's order."""
        while True:
            due: list[tuple[tuple[int, int, str, int, int], str, Permit | Wait]] = []
            for name, item in self.semaphores.items():
                for p in item.holders:
                    if p.expires_at and p.expires_at <= now:
                        due.append(((p.expires_at, 0, name, p.token, 0), name, p))
                for w in item.queue:
                    if w.deadline <= now:
                        due.append(((w.deadline, 1, name, w.session, w.seq), name, w))
            if not due:
                return
            _, name, what = min(due, key=lambda d: d[0])
            if isinstance(what, Permit):
                self.free(name, what, "max_hold", now)
            else:
                self.semaphores[name].queue.remove(what)
                self.results[what.session, what.seq] = NotAcquired("wait timed out")
                self.forget_if_unused(name)


class SemaphoreRun:
    def __init__(self) -> None:
        self.log = Log()
        self.model = SemaphoreModel()
        #: The last acquire command of each session, to retry, abandon or cancel.
        self.last_acquire: dict[int, sem.AcquirePermit] = {}
        #: Acquire seqs that were abandoned: never retried (the machine refuses them).
        self.abandoned: set[tuple[int, int]] = set()
        #: This step's acquire lowered a limit below permits granted before it.
        self.lowered = False

    def step(self, step: Step) -> None:
        op, a, b, c, d, limit = step
        log, model = self.log, self.model
        log.now += 10 * (1 + d % 4)
        model.granted, model.freed = [], []
        self.lowered = False
        if op == "open" or not model.live:
            model.expire_due(log.now)
            model.live.append(log.open())
            self.check(model.granted, model.freed)
            return
        session = model.live[a % len(model.live)]
        name = SEMAPHORES[b // 6]  # mostly s0: queues build up
        model.expire_due(log.now)
        expired_granted, expired_freed = list(model.granted), list(model.freed)
        model.granted, model.freed = [], []
        if op == "end":
            applied = log.apply((CloseSession if c % 2 else ExpireSession)(log.now, session))
            self.end(session, "session_closed" if c % 2 else "session_expired")
        elif op == "acquire":
            command = sem.AcquirePermit(
                name=name,
                limit=limit,
                max_hold_ms=(0, 30, 80)[d % 3],
                wait_ms=(0, 300, 3_000)[c % 3],
                description=f"d{d}",
                **log.fields(session),
            )
            self.last_acquire[session] = command
            applied = log.apply(command)
            assert same_kind(applied.result, self.acquire(command)), applied
        elif op == "release":
            mine = [
                p
                for p in model.semaphores.get(name, ModelSemaphore(0)).holders
                if p.session == session
            ]
            token = mine[c % len(mine)].token if mine and c % 4 else model.last_token + 7
            applied = log.apply(sem.ReleasePermit(name=name, token=token, **log.fields(session)))
            permit = next((p for p in mine if p.token == token), None)
            if permit is None:
                assert isinstance(applied.result, Err)
                assert applied.result.reason is Reason.NOT_HOLDER
            else:
                assert applied.result == Released(token)
                model.free(name, permit, "released", log.now)
        elif op in ("retry", "abandon", "cancel") and session in self.last_acquire:
            applied = self.give_up_or_retry(op, session)
        else:
            applied = log.apply(Tick(log.now))
        self.check(expired_granted + model.granted, expired_freed + model.freed, applied)

    def acquire(self, command: sem.AcquirePermit) -> Result:
        model, now = self.model, self.log.now
        item = model.semaphores.get(command.name)
        if item is None:
            item = model.semaphores[command.name] = ModelSemaphore(command.limit)
        elif item.limit != command.limit:
            self.lowered = command.limit < item.limit
            item.limit = command.limit
            model.pump(command.name, now)
        if len(item.holders) < item.limit and not item.queue:
            result: Result = model.grant(
                command.name, command.session, command.seq, command.max_hold_ms, now
            )
        elif command.wait_ms == 0:
            result = NotAcquired("")
        else:
            item.queue.append(
                Wait(command.session, command.seq, now + command.wait_ms, command.max_hold_ms)
            )
            result = Queued(len(item.queue), now + command.wait_ms)
        model.results[command.session, command.seq] = result
        return result

    def give_up_or_retry(self, op: str, session: int) -> Applied:
        log, model = self.log, self.model
        first = self.last_acquire[session]
        key = (session, first.seq)
        found = model.semaphores.get(first.name, ModelSemaphore(0))
        waiting = next((w for w in found.queue if (w.session, w.seq) == key), None)
        holding = next((p for p in found.holders if (p.session, p.seq) == key), None)
        if op == "retry" and key not in self.abandoned:
            # A retry is stamped anew by the leader that proposes it.
            applied = log.apply(dataclasses.replace(first, now=log.now))
            assert same_kind(applied.result, model.results[key]), (applied, model.results[key])
            return applied
        if op == "cancel":
            applied = log.apply(sem.CancelPermitWait(log.now, session, first.name, first.seq))
            assert applied.result == WaitCancelled(removed=waiting is not None, released=False)
            if waiting is not None:
                found.queue.remove(waiting)
                model.results[key] = NotAcquired("wait cancelled")
                model.forget_if_unused(first.name)
            return applied
        applied = log.apply(
            sem.AbandonPermit(name=first.name, acquire_seq=first.seq, **log.fields(session))
        )
        self.abandoned.add(key)
        released = waiting is None and holding is not None
        assert applied.result == WaitCancelled(removed=waiting is not None, released=released)
        if waiting is not None:
            found.queue.remove(waiting)
            model.forget_if_unused(first.name)
        elif holding is not None:
            model.free(first.name, holding, "abandoned", log.now)
        return applied

    def end(self, session: int, cause: str) -> None:
        model = self.model
        model.live.remove(session)
        self.last_acquire.pop(session, None)
        for name in list(model.semaphores):
            item = model.semaphores[name]
            item.queue[:] = [w for w in item.queue if w.session != session]
            model.forget_if_unused(name)
        mine = sorted(
            (name, p.token)
            for name, item in model.semaphores.items()
            for p in item.holders
            if p.session == session
        )
        for name, token in mine:
            permit = next(p for p in model.semaphores[name].holders if p.token == token)
            model.free(name, permit, cause, self.log.now)

    def check(
        self,
        granted: list[tuple[str, int, int]],
        freed: list[tuple[str, int, int, str]],
        applied: Applied | None = None,
    ) -> None:
        machine, model = self.log.machine, self.model
        if applied is not None:
            assert [
                (e.name, e.session, e.token)
                for e in applied.events
                if isinstance(e, sem.PermitGranted)
            ] == granted
            assert [
                (e.name, e.session, e.token, e.cause)
                for e in applied.events
                if isinstance(e, sem.PermitFreed)
            ] == freed
        assert set(machine.sessions) == set(model.live)
        assert {
            name: (
                s.limit,
                [(h.session, h.token, h.expires_at) for h in s.holders],
                [(w.session, w.seq, w.deadline) for w in s.waiters],
            )
            for name, s in machine.semaphores.items()
        } == {
            name: (
                s.limit,
                [(p.session, p.token, p.expires_at) for p in s.holders],
                [(w.session, w.seq, w.deadline) for w in s.queue],
            )
            for name, s in model.semaphores.items()
        }
        for name, _, _ in [] if self.lowered else granted:
            if name in machine.semaphores:
                item = machine.semaphores[name]
                assert len(item.holders) <= item.limit, f"{name}: more holders than the limit"
        for item in machine.semaphores.values():
            assert not item.waiters or len(item.holders) >= item.limit, "a waiter and a free permit"
        assert machine.permit_count == sum(len(s.holders) for s in machine.semaphores.values())
        assert machine.permit_waiter_count == sum(
            len(s.waiters) for s in machine.semaphores.values()
        )
        for session in machine.sessions.values():
            assert session.permits == {
                (s.name, h.token)
                for s in machine.semaphores.values()
                for h in s.holders
                if h.session == session.id
            }
            assert session.permit_waits == {
                (s.name, w.seq)
                for s in machine.semaphores.values()
                for w in s.waiters
                if w.session == session.id
            }


@SETTINGS
@given(st.lists(SEMAPHORE_STEPS, max_size=80))
def test_semaphores_match_the_model_after_every_step(steps: list[Step]) -> None:
    run = SemaphoreRun()
    for step in steps:
        run.step(step)


# --------------------------------------------------------------------------- several locks

LOCK_STEPS = st.tuples(
    st.sampled_from(["open", "end", "many", "many", "one", "release", "abandon", "cancel", "tick"]),
    st.integers(0, 7),
    st.permutations(LOCKS),
    st.integers(1, 4),
    st.integers(0, 7),
)
LockStep = tuple[str, int, list[str], int, int]


class SeveralLocksRun:
    def __init__(self) -> None:
        self.log = Log()
        self.live: list[int] = []
        #: (session, seq) -> the locks the acquire takes, and the order waiters arrived in.
        self.names: dict[tuple[int, int], tuple[str, ...]] = {}
        self.arrival: dict[tuple[int, int], int] = {}
        self.last_acquire: dict[int, tuple[int, tuple[str, ...]]] = {}

    def step(self, step: LockStep) -> None:
        op, a, order, count, d = step
        log = self.log
        log.now += 10 * (1 + d % 3)
        if op == "open" or not self.live:
            self.live.append(log.open())
            return
        session = self.live[a % len(self.live)]
        names = tuple(order[:count])
        if op == "end":
            applied = log.apply((CloseSession if d % 2 else ExpireSession)(log.now, session))
            self.live.remove(session)
            self.last_acquire.pop(session, None)
        elif op in ("many", "one"):
            fields = log.fields(session)
            wait_ms, max_hold_ms = (0, 50, 400)[d % 3], (0, 0, 60)[count % 3]
            command: Command
            if op == "one":
                names = names[:1]
                command = Acquire(name=names[0], max_hold_ms=max_hold_ms, wait_ms=wait_ms, **fields)
            else:
                command = sem.AcquireLocks(
                    names=names,
                    max_hold_ms=max_hold_ms,
                    wait_ms=wait_ms,
                    description="",
                    **fields,
                )
            key = (session, fields["seq"])
            self.names[key] = names
            self.last_acquire[session] = (fields["seq"], names)
            applied = log.apply(command)
            if isinstance(applied.result, Queued):
                self.arrival[key] = len(self.arrival)
        elif op == "release":
            # Expiries due now first, so the release names a hold that is still there.
            self.check(log.apply(Tick(log.now)))
            held = sorted(n for n in LOCKS if self.holder(n) == session)
            if not held:
                return
            name = held[d % len(held)]
            lock = log.machine.locks[name]
            assert lock.holder is not None
            applied = log.apply(Release(name=name, token=lock.holder.token, **log.fields(session)))
            assert isinstance(applied.result, Released)
        elif op in ("abandon", "cancel") and session in self.last_acquire:
            seq, taken = self.last_acquire.pop(session)
            if op == "abandon":
                applied = log.apply(Abandon(name=taken[-1], acquire_seq=seq, **log.fields(session)))
            else:
                applied = log.apply(CancelWait(log.now, session, taken[-1], seq, False))
            assert isinstance(applied.result, WaitCancelled)
            assert not any(
                w.session == session and w.seq == seq
                for lock in log.machine.locks.values()
                for w in lock.waiters
            ), "a withdrawn acquire is still queued for one of its locks"
            if op == "abandon" and applied.result.released:
                assert all(self.holder(n) != session or self.held_seq(n) != seq for n in taken)
        else:
            applied = log.apply(Tick(log.now))
        self.check(applied)

    def holder(self, name: str) -> int | None:
        lock = self.log.machine.locks.get(name)
        return lock.holder.session if lock and lock.holder else None

    def held_seq(self, name: str) -> int | None:
        lock = self.log.machine.locks.get(name)
        return lock.holder.acquire_seq if lock and lock.holder else None

    def check(self, applied: Applied) -> None:
        machine = self.log.machine
        # All or nothing: the locks granted just before each resolved grant (or, at the end,
        # by the command itself) are exactly its acquire's, with its tokens. Checked on the
        # events, in order: a hold granted by an expiry may end later in the same step.
        granted: list[tuple[str, int, int]] = []
        for event in applied.events:
            if isinstance(event, LockGranted):
                granted.append((event.name, event.session, event.token))
            elif isinstance(event, WaiterResolved) and isinstance(
                event.result, Granted | sem.GrantedMany
            ):
                self.check_whole(event.session, event.seq, event.result, granted)
                granted = []
        command = self.log.commands[-1]
        if isinstance(applied.result, Granted | sem.GrantedMany):
            assert isinstance(command, Acquire | sem.AcquireLocks)
            self.check_whole(command.session, command.seq, applied.result, granted)
            granted = []
        assert not granted, f"locks granted outside a whole acquire: {granted}"
        entries = 0
        for lock in machine.locks.values():
            assert lock.holder is not None or lock.waiters, f"{lock.name}: idle record kept"
            arrivals = [self.arrival[w.session, w.seq] for w in lock.waiters]
            assert arrivals == sorted(arrivals), f"{lock.name}: queue out of arrival order"
            for waiter in lock.waiters:
                assert waiter.takes(lock.name) == self.names[waiter.session, waiter.seq]
                for other in waiter.takes(lock.name):
                    assert any(w.same(waiter) for w in machine.locks[other].waiters)
            entries += len(lock.waiters)
            if lock.waiters and lock.holder is None:
                head = lock.waiters[0]
                assert not all(
                    machine.locks[n].holder is None and machine.locks[n].waiters[0].same(head)
                    for n in head.takes(lock.name)
                ), f"{lock.name}: its head waiter could have been granted"
        assert machine.waiter_count == entries
        for session in machine.sessions.values():
            assert session.waiting == {
                (lock.name, w.seq)
                for lock in machine.locks.values()
                for w in lock.waiters
                if w.session == session.id
            }
            assert session.held == {
                lock.name
                for lock in machine.locks.values()
                if lock.holder and lock.holder.session == session.id
            }

    def check_whole(
        self,
        session: int,
        seq: int,
        result: Granted | sem.GrantedMany,
        granted: list[tuple[str, int, int]],
    ) -> None:
        names = self.names[session, seq]
        tokens = result.tokens if isinstance(result, sem.GrantedMany) else (result.token,)
        assert granted == [
            (name, session, token) for name, token in zip(names, tokens, strict=True)
        ], f"{session}/{seq} asked for {names}: granted {granted} with {tokens}"
        # FIFO: nobody who queued before it is still waiting for one of its locks (a grant at
        # once arrives now, after everyone queued).
        arrived = self.arrival.setdefault((session, seq), len(self.arrival))
        for name in names:
            lock = self.log.machine.locks.get(name)
            earlier = (
                [w for w in lock.waiters if self.arrival[w.session, w.seq] < arrived]
                if lock
                else []
            )
            assert not earlier, f"{session}/{seq} was granted {name} before {earlier[0]}"

    def drain(self) -> None:
        """Holders release, over and over, with no time passing: every queue empties."""
        machine = self.log.machine
        for _ in range(4 * len(self.arrival) + len(LOCKS) + 1):
            held = sorted(n for n, lock in machine.locks.items() if lock.holder)
            if not held:
                break
            for name in held:
                holder = machine.locks[name].holder
                if holder is not None:
                    applied = self.log.apply(
                        Release(name=name, token=holder.token, **self.log.fields(holder.session))
                    )
                    self.check(applied)
        assert not machine.locks, f"stuck: {sorted(machine.locks)} still waited for"


@SETTINGS
@given(st.lists(LOCK_STEPS, max_size=80))
def test_acquires_of_several_locks_are_all_or_nothing_in_order_and_never_stuck(
    steps: list[LockStep],
) -> None:
    run = SeveralLocksRun()
    for step in steps:
        run.step(step)
    run.drain()


# --------------------------------------------------------------------------- restore


@SETTINGS
@given(
    st.lists(SEMAPHORE_STEPS, max_size=40), st.lists(LOCK_STEPS, max_size=40), st.integers(0, 80)
)
def test_restore_then_replay_equals_replay(
    semaphore_steps: list[Step], lock_steps: list[LockStep], at: int
) -> None:
    commands = []
    for run in (SemaphoreRun(), SeveralLocksRun()):
        for step in semaphore_steps if isinstance(run, SemaphoreRun) else lock_steps:
            run.step(step)  # type: ignore[arg-type]
        commands.append(run.log.commands)
    for log in commands:
        whole = StateMachine()
        for command in log:
            whole.apply(command)
        split = min(at, len(log))
        head = StateMachine()
        for command in log[:split]:
            head.apply(command)
        restored = snapshot.load(snapshot.dump(head))
        for command in log[split:]:
            restored.apply(command)
        assert snapshot.dump(restored) == snapshot.dump(whole)
