"""An independent checker of recorded client histories (it does not import the state machine:
a checker that reuses the implementation shares its bugs).

A history is what clients saw: each operation's invocation and completion time on one clock,
and its outcome - ``ok`` (with the token or id it returned), ``fail`` (refused: certainly not
applied) or ``info`` (timed out or connection broken: may or may not have been applied).
The invariants are docs/design.md's "What must always hold", checked as safety properties over
what was acknowledged. Mutual exclusion is judged twice: from the cluster's history (a grant
while another hold's release was still to be acknowledged) and from the holders' own view
(``ClientSession``: a grant while another client still counted its hold live). Semaphores are
judged the same way with their limit: never more than ``limit`` permits at once, from either
side. An acquire of several locks is one acquire op per lock, sharing a ``batch``: all or none
of them are granted, in one step (their tokens are consecutive), and each is a lock hold.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["ok", "fail", "info"]


@dataclass(frozen=True)
class Op:
    """One client operation. ``kind`` is acquire, release, insert or read (a member's id, read
    linearizably), lookup (the member an id was given: ``value`` the id, ``key`` the member
    the worker was told got it, ``found`` the answer), campaign or resign (an election's
    leadership, judged as a lock hold: a campaign ok is a grant, a resign ok its release), or
    join (a group), permit or unpermit (a semaphore's permit taken and given back: a hold of
    which ``limit`` may exist at once); ``key`` the lock, election or semaphore, (list, member)
    or (group, member); ``value`` the token (acquire, release, campaign, resign, permit,
    unpermit) or the id (insert, lookup; read, 0 when absent). ``max_hold_end`` is a granted
    acquire's max-hold end as its client counted it (send time + max-hold; None when
    uncapped). ``batch`` names the acquire of several locks an acquire op is part of (0: none).
    """

    process: str
    session: int
    kind: Literal[
        "acquire",
        "release",
        "insert",
        "read",
        "lookup",
        "campaign",
        "resign",
        "join",
        "permit",
        "unpermit",
    ]
    key: str | tuple[str, bytes]
    invoke: float
    complete: float
    outcome: Outcome
    value: int = 0
    max_hold_end: float | None = None
    #: A lookup's answer: the member that id was given (empty: none).
    found: bytes | None = None
    #: A permit's semaphore limit.
    limit: int = 0
    batch: int = 0


@dataclass(frozen=True)
class KeepAlive:
    """An acknowledged keep-alive: sent at ``sent``, its acknowledgement seen at ``arrived``."""

    sent: float
    arrived: float


@dataclass
class ClientSession:
    """One session as its own client saw it: the deadline it started from (the Open's send
    time + TTL, or the deadline when the worker first saw it), its acknowledged keep-alives,
    and when it announced LOST. The client counts its locks live only while this says alive."""

    ttl: float
    until: float
    keep_alives: list[KeepAlive] = field(default_factory=list)
    lost: float = math.inf

    def deadline(self) -> float:
        """When the keep-alives stopped vouching for the session: last acknowledged send + TTL,
        where an acknowledgement counts only if it arrived before the deadline so far (a late
        one finds the client LOST already)."""
        deadline = self.until
        for ack in sorted(self.keep_alives, key=lambda ack: ack.arrived):
            if ack.arrived >= deadline:
                break
            deadline = max(deadline, ack.sent + self.ttl)
        return deadline

    def alive_until(self) -> float:
        return min(self.deadline(), self.lost)


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


@dataclass(frozen=True)
class MembershipProbe:
    """One look at a group and an election during the run, three linearizable reads in this
    order: the live sessions (``before``), then the group's members (member id -> session) and
    the election's leader session (None: nobody leads), invoked at ``described_at``, then the
    live sessions again (``after``)."""

    group: str
    before: frozenset[int]
    described_at: float
    members: Mapping[str, int]
    leader: int | None
    after: frozenset[int]


def check(
    history: Iterable[Op],
    final_lists: Mapping[str, Sequence[tuple[int, bytes]]] | None = None,
    sessions: Mapping[int, ClientSession] | None = None,
    probes: Sequence[MembershipProbe] = (),
) -> list[Violation]:
    """Every violation found; an empty list means the history is consistent.

    ``final_lists`` is each list's (id, member) pairs as read after the run; ``sessions`` each
    session as its client saw it, by id (without it, the holder's view is not checked);
    ``probes`` the group and election as read during the run.
    """
    ops = sorted(history, key=lambda op: (op.invoke, op.complete))
    violations = _check_locks(ops) + _check_permits(ops) + _check_batches(ops)
    if sessions is not None:
        violations += _check_holder_view(ops, sessions)
        violations += _check_permit_view(ops, sessions)
    violations += _check_membership(ops, probes)
    violations += _check_ids(ops)
    violations += _check_reads(ops)
    if final_lists is not None:
        violations += _check_lists(ops, final_lists)
    return violations


#: The operations that take a hold (a lock, or an election's leadership), and that end one.
GRANTS = ("acquire", "campaign")
RELEASES = ("release", "resign")
#: The same for semaphore permits, of which ``limit`` may be held at once.
PERMITS = ("permit",)
UNPERMITS = ("unpermit",)


def _hold_key(op: Op) -> str:
    """Locks, elections and semaphores are separate namespaces."""
    if op.kind in ("campaign", "resign"):
        return f"election {op.key}"
    return f"semaphore {op.key}" if op.kind in ("permit", "unpermit") else str(op.key)


def _check_locks(ops: list[Op]) -> list[Violation]:
    found: list[Violation] = []
    grants: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind in GRANTS and op.outcome == "ok":
            grants[_hold_key(op)].append(op)
    releases = {
        (_hold_key(op), op.value): op for op in ops if op.kind in RELEASES and op.outcome == "ok"
    }
    for name, granted in grants.items():
        by_token = sorted(granted, key=lambda op: op.value)
        for first, second in itertools.pairwise(by_token):
            if first.value == second.value:
                found.append(Violation("unique tokens", f"{name}: token {first.value} twice"))
        for a, b in itertools.permutations(granted, 2):
            if a.complete < b.invoke and not a.value < b.value:
                found.append(
                    Violation(
                        "tokens follow real time",
                        f"{name}: grant {a.value} completed before grant {b.value} was invoked",
                    )
                )
            release = releases.get((name, a.value))
            if (
                release is not None
                and a.session != b.session
                and a.complete < b.invoke
                and b.complete < release.invoke
            ):
                found.append(
                    Violation(
                        "mutual exclusion",
                        f"{name}: session {b.session} got token {b.value} while session "
                        f"{a.session} still held token {a.value} (released later, acknowledged)",
                    )
                )
    return found


def _check_holder_view(ops: list[Op], sessions: Mapping[int, ClientSession]) -> list[Violation]:
    """No grant to B while A's client still counted its own hold live, unless A released first.

    A's believed hold runs from its acquire's ok completion to the earliest of: its release's
    invocation, its max-hold end, its session's end in its own view. A grant to B (another
    session, same lock, a greater token) is a violation if it completed inside A's believed
    hold, or if B's believed hold overlaps A's. A grant whose session's view was not recorded
    counts as believed for no time at all, and an indeterminate acquire is no grant: only
    certain overlaps are claimed.
    """
    held = _beliefs(ops, sessions, GRANTS, RELEASES)
    found: list[Violation] = []
    for name, beliefs in held.items():
        beliefs.sort(key=lambda belief: belief.grant.complete)
        # Every violating pair overlaps at the later completion: scan forward only that far.
        for i, first in enumerate(beliefs):
            j = i + 1
            while j < len(beliefs) and (
                beliefs[j].grant.complete < first.end
                or beliefs[j].grant.complete == first.grant.complete
            ):
                for a, b in ((first, beliefs[j]), (beliefs[j], first)):
                    if a.violated_by(b):
                        found.append(
                            Violation("mutual exclusion (holder's view)", a.detail(name, b))
                        )
                j += 1
    return found


def _beliefs(
    ops: list[Op],
    sessions: Mapping[int, ClientSession],
    grants: tuple[str, ...],
    releases: tuple[str, ...],
) -> dict[str, list[Belief]]:
    """Each ok grant of ``grants`` as its holder counted it, by hold key."""
    released: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for op in ops:
        if op.kind in releases:
            released[(op.process, _hold_key(op), op.value)].append(op.invoke)
    lapsed = {sid: session.deadline() for sid, session in sessions.items()}
    held: dict[str, list[Belief]] = defaultdict(list)
    for op in ops:
        if op.kind not in grants or op.outcome != "ok":
            continue
        known = op.session in sessions
        ends = {
            "its release was sent": min(
                (t for t in released[(op.process, _hold_key(op), op.value)] if t >= op.complete),
                default=math.inf,
            ),
            "its max-hold ended": math.inf if op.max_hold_end is None else op.max_hold_end,
            "its keep-alives lapsed": lapsed[op.session] if known else op.complete,
            "it announced LOST": sessions[op.session].lost if known else op.complete,
        }
        why = min(ends, key=ends.__getitem__)
        held[_hold_key(op)].append(Belief(op, ends[why], why))
    return held


def _check_permits(ops: list[Op]) -> list[Violation]:
    """No permit granted while ``limit`` others were certainly held.

    A permit is certainly held from its grant's ok completion to its acknowledged give-back's
    invocation; a grant happened somewhere inside its own call. So a grant whose whole call
    lies inside the certain holds of ``limit`` other permits made one too many.
    """
    found: list[Violation] = []
    given_back = {
        (op.key, op.value): op.invoke for op in ops if op.kind in UNPERMITS and op.outcome == "ok"
    }
    granted: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind in PERMITS and op.outcome == "ok":
            granted[str(op.key)].append(op)
    for name, permits in granted.items():
        tokens = [op.value for op in permits]
        if len(set(tokens)) != len(tokens):
            found.append(Violation("unique tokens", f"semaphore {name}: a token given twice"))
        certain = [
            (op, given_back[(name, op.value)]) for op in permits if (name, op.value) in given_back
        ]
        for grant in permits:
            around = [
                other
                for other, until in certain
                if other.value != grant.value
                and other.complete < grant.invoke
                and grant.complete < until
            ]
            if len(around) >= grant.limit:
                holders = ", ".join(f"{o.value} (session {o.session})" for o in around)
                found.append(
                    Violation(
                        "at most limit permits",
                        f"semaphore {name}: token {grant.value} granted while {len(around)} of "
                        f"{grant.limit} permits were held: {holders}",
                    )
                )
    return found


def _check_permit_view(ops: list[Op], sessions: Mapping[int, ClientSession]) -> list[Violation]:
    """Never more than ``limit`` permits that their holders counted live at one instant (a
    holder counts a permit as ``_check_holder_view`` counts a lock hold)."""
    found: list[Violation] = []
    for name, beliefs in _beliefs(ops, sessions, PERMITS, UNPERMITS).items():
        for belief in beliefs:
            start = belief.grant.complete
            live = [b for b in beliefs if b.grant.complete <= start < b.end]
            if len(live) > belief.grant.limit:
                holders = ", ".join(
                    f"{b.grant.value} ({b.grant.process}, until {b.end:.3f}: {b.why})" for b in live
                )
                found.append(
                    Violation(
                        "at most limit permits (holder's view)",
                        f"{name}: at {start:.3f} {len(live)} of {belief.grant.limit} permits "
                        f"counted live: {holders}",
                    )
                )
    return found


def _check_batches(ops: list[Op]) -> list[Violation]:
    """An acquire of several locks is granted whole or not at all, in one step."""
    found: list[Violation] = []
    batches: dict[tuple[str, int], list[Op]] = defaultdict(list)
    for op in ops:
        # A part the worker never saw answered (it was killed) says nothing either way.
        if op.kind == "acquire" and op.batch and op.complete < math.inf:
            batches[(op.process, op.batch)].append(op)
    for (process, _), parts in sorted(batches.items()):
        outcomes = {op.outcome for op in parts}
        names = [str(op.key) for op in parts]
        if len(outcomes) > 1:
            found.append(
                Violation(
                    "no partial multi-lock",
                    f"{process}: an acquire of {names} answered {sorted(outcomes)} for its parts",
                )
            )
        tokens = sorted(op.value for op in parts)
        if outcomes == {"ok"} and tokens != list(range(tokens[0], tokens[0] + len(parts))):
            found.append(
                Violation(
                    "no partial multi-lock",
                    f"{process}: the locks {names} were granted tokens {tokens}, not in one step",
                )
            )
    return found


@dataclass(frozen=True)
class Belief:
    """A grant as its holder counted it: live from its ok completion until ``end``, ``why``."""

    grant: Op
    end: float
    why: str

    def violated_by(self, other: Belief) -> bool:
        """``other`` (another session, a greater token) was granted inside this belief, or
        believed at the same time."""
        a, b = self.grant, other.grant
        if b.session == a.session or b.value <= a.value:
            return False
        inside = a.complete <= b.complete < self.end
        return inside or max(a.complete, b.complete) < min(self.end, other.end)

    def detail(self, name: str, other: Belief) -> str:
        a, b = self.grant, other.grant
        return (
            f"{name}: {b.process} (session {b.session}) got token {b.value} at "
            f"{b.complete:.3f} while {a.process} (session {a.session}) counted token "
            f"{a.value} live from {a.complete:.3f} until {self.end:.3f}, when {self.why}"
        )


def _check_membership(ops: list[Op], probes: Sequence[MembershipProbe]) -> list[Violation]:
    """A group's members match the live sessions, and no session that has ended leads.

    Session ids only grow, so a session with an id at or below the highest live one ``before``
    that is not live then had ended before the describe: it must be neither a member nor the
    leader. And a session live ``after`` the describe was live during it: if its join was
    acknowledged before the describe was invoked, its member must be listed.
    """
    found: list[Violation] = []
    joins = [op for op in ops if op.kind == "join" and op.outcome == "ok"]
    for probe in probes:
        highest = max(probe.before, default=0)

        def ended(session: int, probe: MembershipProbe = probe, highest: int = highest) -> bool:
            return session <= highest and session not in probe.before

        for member, session in sorted(probe.members.items()):
            if ended(session):
                found.append(
                    Violation(
                        "members match live sessions",
                        f"{probe.group}: {member} listed at {probe.described_at:.3f} though its "
                        f"session {session} had ended",
                    )
                )
        if probe.leader is not None and ended(probe.leader):
            found.append(
                Violation(
                    "no leadership of an ended session",
                    f"election led at {probe.described_at:.3f} by session {probe.leader}, "
                    "which had ended",
                )
            )
        for join in joins:
            group, member = join.key  # type: ignore[misc]
            if (
                group == probe.group
                and join.complete < probe.described_at
                and join.session in probe.after
                and probe.members.get(member.decode()) != join.session
            ):
                found.append(
                    Violation(
                        "members match live sessions",
                        f"{group}: {member.decode()} (session {join.session}, live) missing at "
                        f"{probe.described_at:.3f}, its join acknowledged at {join.complete:.3f}",
                    )
                )
    return found


def _check_ids(ops: list[Op]) -> list[Violation]:
    """One member, one id; one id, one member - in what clients were told."""
    found: list[Violation] = []
    id_of: dict[tuple[str, bytes], int] = {}
    member_of: dict[tuple[str, int], bytes] = {}
    for op in ops:
        looked_up = op.kind == "lookup" and bool(op.found)
        if op.outcome != "ok" or not (
            op.kind == "insert" or (op.kind == "read" and op.value) or looked_up
        ):
            continue
        name, member = op.key  # type: ignore[misc]
        if looked_up:
            member = op.found  # what the cluster says got that id
        seen = id_of.setdefault((name, member), op.value)
        if seen != op.value:
            found.append(
                Violation("stable ids", f"{name}: {member!r} was given ids {seen} and {op.value}")
            )
        owner = member_of.setdefault((name, op.value), member)
        if owner != member:
            found.append(
                Violation("unique ids", f"{name}: id {op.value} given to {owner!r} and {member!r}")
            )
    return found


def _check_reads(ops: list[Op]) -> list[Violation]:
    """A read invoked after an insert of the same member was acknowledged must see it."""
    found: list[Violation] = []
    acknowledged: dict[str | tuple[str, bytes], float] = {}
    for op in ops:
        if op.kind == "insert" and op.outcome == "ok":
            acknowledged[op.key] = min(acknowledged.get(op.key, op.complete), op.complete)
    for op in ops:
        if op.kind == "lookup" and op.outcome == "ok" and not op.found:
            found.append(
                Violation(
                    "linearizable reads",
                    f"{op.key[0]}: id {op.value} (given to {op.key[1]!r}, acknowledged) "
                    "looked up as nobody's",
                )
            )
        if op.kind != "read" or op.outcome != "ok" or op.value:
            continue
        inserted = acknowledged.get(op.key)
        if inserted is not None and inserted < op.invoke:
            found.append(
                Violation(
                    "linearizable reads",
                    f"{op.key[0]}: {op.key[1]!r} read as absent after its insert was acknowledged",
                )
            )
    return found


def _check_lists(
    ops: list[Op], final: Mapping[str, Sequence[tuple[int, bytes]]]
) -> list[Violation]:
    found: list[Violation] = []
    for name, pairs in final.items():
        ids = sorted(i for i, _ in pairs)
        if ids != list(range(1, len(ids) + 1)):
            found.append(Violation("dense ids", f"{name}: ids {ids[:10]}... are not 1..{len(ids)}"))
        counts = defaultdict(int)
        for _, member in pairs:
            counts[member] += 1
        for member, count in counts.items():
            if count > 1:
                found.append(Violation("at most once", f"{name}: {member!r} appears {count} times"))
    present = {name: {m: i for i, m in pairs} for name, pairs in final.items()}
    attempts: dict[tuple[str, bytes], set[str]] = defaultdict(set)
    for op in ops:
        if op.kind != "insert":
            continue
        name, member = op.key  # type: ignore[misc]
        attempts[(name, member)].add(op.outcome)
        got = present.get(name, {}).get(member)
        if op.outcome == "ok" and got != op.value:
            found.append(
                Violation(
                    "no lost insert",
                    f"{name}: acknowledged {member!r} -> {op.value}, finally {got}",
                )
            )
    for (name, member), outcomes in attempts.items():
        if outcomes == {"fail"} and member in present.get(name, {}):
            found.append(
                Violation("refused means not applied", f"{name}: refused {member!r} is present")
            )
    return found
