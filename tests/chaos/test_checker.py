"""The checker catches every invariant it names; a checker that never fails proves nothing."""

from __future__ import annotations

import pytest

from tests.chaos.checker import Op, check

pytestmark = pytest.mark.unit


def acquire(session: int, token: int, invoke: float, complete: float, outcome: str = "ok") -> Op:
    return Op(f"p{session}", session, "acquire", "L", invoke, complete, outcome, token)  # type: ignore[arg-type]


def release(session: int, token: int, invoke: float, complete: float) -> Op:
    return Op(f"p{session}", session, "release", "L", invoke, complete, "ok", token)


def insert(member: bytes, id_: int, invoke: float, outcome: str = "ok") -> Op:
    return Op("p9", 9, "insert", ("R", member), invoke, invoke + 0.1, outcome, id_)  # type: ignore[arg-type]


def read(member: bytes, id_: int, invoke: float) -> Op:
    return Op("p8", 8, "read", ("R", member), invoke, invoke + 0.1, "ok", id_)


GOOD = [
    acquire(1, 1, 0.0, 0.1),
    release(1, 1, 1.0, 1.1),
    acquire(2, 2, 0.5, 1.2),  # waited, granted by the release
    release(2, 2, 2.0, 2.1),
    insert(b"a", 1, 0.0),
    insert(b"b", 2, 0.2),
    insert(b"a", 1, 0.4),
    insert(b"c", 3, 0.6, outcome="info"),
    read(b"a", 1, 0.2),
    read(b"b", 0, 0.1),  # overlaps the insert of b: may see it or not
]
FINAL = {"R": [(1, b"a"), (2, b"b"), (3, b"c")]}


def test_a_consistent_history_passes() -> None:
    assert check(GOOD, FINAL) == []


@pytest.mark.parametrize(
    ("history", "final", "invariant"),
    [
        ([acquire(1, 5, 0, 0.1), acquire(2, 5, 1, 1.1)], None, "unique tokens"),
        ([acquire(1, 7, 0, 0.1), acquire(2, 6, 1, 1.1)], None, "tokens follow real time"),
        (
            [acquire(1, 1, 0, 0.1), acquire(2, 2, 0.2, 0.3), release(1, 1, 0.5, 0.6)],
            None,
            "mutual exclusion",
        ),
        ([insert(b"a", 1, 0), insert(b"a", 2, 1)], None, "stable ids"),
        ([insert(b"a", 1, 0), insert(b"b", 1, 1)], None, "unique ids"),
        ([insert(b"a", 1, 0)], {"R": []}, "no lost insert"),
        ([insert(b"a", 1, 0)], {"R": [(2, b"a")]}, "no lost insert"),
        ([], {"R": [(1, b"a"), (3, b"b")]}, "dense ids"),
        ([insert(b"a", 1, 0, "info")], {"R": [(1, b"a"), (2, b"a")]}, "at most once"),
        ([insert(b"z", 0, 0, "fail")], {"R": [(1, b"z")]}, "refused means not applied"),
        ([insert(b"a", 1, 0), read(b"a", 0, 0.5)], None, "linearizable reads"),
        ([insert(b"a", 1, 0), read(b"a", 2, 0.5)], None, "stable ids"),
        ([insert(b"a", 1, 0), read(b"b", 1, 0.5)], None, "unique ids"),
    ],
)
def test_each_violation_is_caught(
    history: list[Op], final: dict[str, list[tuple[int, bytes]]] | None, invariant: str
) -> None:
    assert invariant in {v.invariant for v in check(history, final)}


def test_an_indeterminate_insert_may_be_absent_or_present_once() -> None:
    history = [insert(b"x", 0, 0, "info")]
    assert check(history, {"R": []}) == []
    assert check(history, {"R": [(1, b"x")]}) == []


def test_overlap_is_only_claimed_when_certain() -> None:
    """If B's grant may have come after A's release was sent, it is no violation."""
    history = [acquire(1, 1, 0, 0.1), release(1, 1, 0.5, 0.6), acquire(2, 2, 0.2, 0.55)]
    assert check(history) == []
