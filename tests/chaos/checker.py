"""An independent checker of recorded client histories (it does not import the state machine:
a checker that reuses the implementation shares its bugs).

A history is what clients saw: each operation's invocation and completion time on one clock,
and its outcome - ``ok`` (with the token or id it returned), ``fail`` (refused: certainly not
applied) or ``info`` (timed out or connection broken: may or may not have been applied).
The invariants are DESIGN.md's "What must always hold", checked as safety properties over
what was acknowledged.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["ok", "fail", "info"]


@dataclass(frozen=True)
class Op:
    """One client operation. ``kind`` is acquire, release, insert or read (a member's id, read
    linearizably); ``key`` the lock or (list, member); ``value`` the token (acquire/release) or
    the id (insert; read, 0 when absent)."""

    process: str
    session: int
    kind: Literal["acquire", "release", "insert", "read"]
    key: str | tuple[str, bytes]
    invoke: float
    complete: float
    outcome: Outcome
    value: int = 0


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


def check(
    history: Iterable[Op], final_lists: Mapping[str, Sequence[tuple[int, bytes]]] | None = None
) -> list[Violation]:
    """Every violation found; an empty list means the history is consistent.

    ``final_lists`` is each list's (id, member) pairs as read after the run.
    """
    ops = sorted(history, key=lambda op: (op.invoke, op.complete))
    violations = _check_locks(ops)
    violations += _check_ids(ops)
    violations += _check_reads(ops)
    if final_lists is not None:
        violations += _check_lists(ops, final_lists)
    return violations


def _check_locks(ops: list[Op]) -> list[Violation]:
    found: list[Violation] = []
    grants: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind == "acquire" and op.outcome == "ok":
            grants[str(op.key)].append(op)
    releases = {
        (str(op.key), op.value): op for op in ops if op.kind == "release" and op.outcome == "ok"
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


def _check_ids(ops: list[Op]) -> list[Violation]:
    """One member, one id; one id, one member - in what clients were told."""
    found: list[Violation] = []
    id_of: dict[tuple[str, bytes], int] = {}
    member_of: dict[tuple[str, int], bytes] = {}
    for op in ops:
        if op.outcome != "ok" or not (op.kind == "insert" or (op.kind == "read" and op.value)):
            continue
        name, member = op.key  # type: ignore[misc]
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
