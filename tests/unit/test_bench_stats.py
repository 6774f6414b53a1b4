"""The bench's pure pieces: percentiles, the hold and id checkers, the insert key plan, the
table."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from turnstile.bench import report
from turnstile.bench.stats import (
    Hold,
    check_holds,
    check_ids,
    latency_ms,
    longest_gap,
    percentile,
)
from turnstile.bench.workers import insert_keys

pytestmark = pytest.mark.unit


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    assert math.isnan(percentile([], 0.5))


def test_latency_is_reported_in_milliseconds() -> None:
    assert latency_ms([0.001, 0.002, 0.003]) == {"p50_ms": 2.0, "p99_ms": 3.0, "max_ms": 3.0}


def hold(name: str, asked: float, granted: float, releasing: float, token: int) -> Hold:
    return Hold(name, 0, asked, granted, releasing, releasing + 0.001, token)


def test_back_to_back_holds_with_rising_tokens_pass() -> None:
    check = check_holds([hold("a", 0, 0, 1, 1), hold("a", 1, 1, 2, 2), hold("b", 0, 0.5, 3, 1)])
    assert (check.overlaps, check.token_regressions) == (0, 0)


def test_overlapping_holds_of_one_lock_are_counted() -> None:
    check = check_holds([hold("a", 0, 0, 2, 1), hold("a", 0.5, 1, 3, 2)])
    assert check.overlaps == 1


def test_holds_of_different_locks_may_overlap() -> None:
    assert check_holds([hold("a", 0, 0, 2, 1), hold("b", 0, 1, 3, 1)]).overlaps == 0


def test_a_token_that_does_not_rise_is_counted() -> None:
    check = check_holds([hold("a", 0, 0, 1, 5), hold("a", 1, 1, 2, 5), hold("a", 2, 2, 3, 4)])
    assert check.token_regressions == 2


def test_handoff_is_release_to_grant_of_a_waiter_that_asked_before_the_release() -> None:
    check = check_holds(
        [
            hold("a", 0.0, 0.0, 1.0, 1),
            hold("a", 0.5, 1.002, 2.0, 2),  # waited: hand-off of 2 ms
            hold("a", 3.0, 3.0, 4.0, 3),  # asked after the release: not a hand-off
        ]
    )
    assert check.handoffs == [pytest.approx(0.002)]


def test_ids_one_per_key_and_one_key_per_id_pass() -> None:
    check = check_ids([("x", True, 1), ("y", True, 2), ("x", False, 1)])
    assert check.inserts == 3
    assert check.duplicates == 1
    assert (check.unstable_ids, check.shared_ids, check.double_adds) == (0, 0, 0)


def test_id_conflicts_are_counted() -> None:
    check = check_ids(
        [("x", True, 1), ("x", False, 2), ("y", True, 1), ("z", True, 3), ("z", True, 3)]
    )
    assert check.unstable_ids == 1  # x answered 1 and 2
    assert check.shared_ids == 1  # 1 answered for x and y
    assert check.double_adds == 1  # z added twice


def test_longest_gap_counts_the_edges_of_the_window() -> None:
    assert longest_gap([1.0, 1.5, 4.0], start=0.0, end=5.0) == 2.5
    assert longest_gap([], start=0.0, end=5.0) == 5.0
    assert longest_gap([0.5, 9.0], start=0.0, end=5.0) == 4.5


@pytest.mark.parametrize("batch", [1, 100])
def test_every_key_is_inserted_by_exactly_two_clients(batch: int) -> None:
    clients, ops = 4, 10
    made = Counter(
        key
        for client in range(clients)
        for op in range(ops)
        for key in insert_keys(client, clients, op, batch)
    )
    assert set(made.values()) <= {1, 2}
    twice = sum(1 for n in made.values() if n == 2)
    # All but the newest keys of the last op are inserted twice: about half are duplicates.
    assert twice >= len(made) - clients * max(1, batch // 2)
    assert all(len(insert_keys(c, clients, 0, batch)) == batch for c in range(clients))


def test_the_table_shows_each_cell_with_its_verdict_and_the_ratio() -> None:
    row = {"ops_per_s": 3000.0, "p50_ms": 4.0, "p99_ms": 9.5, "violations": 0}
    results = {
        "violations": 1,
        "systems": {
            "turnstile": {
                "durability": "fsync",
                "available": True,
                "rows": {"lock_uncontended@16": row},
            },
            "etcd": {
                "available": True,
                "rows": {"lock_uncontended@16": {**row, "ops_per_s": 1000.0, "violations": 1}},
            },
            "zookeeper": {"available": False, "reason": "no java"},
        },
    }
    text = report.table(results)
    assert "3,000/s p50 4 p99 9.5 ms; ok" in text
    assert "1,000/s p50 4 p99 9.5 ms; VIOLATIONS 1" in text
    assert "3.0x" in text
    assert "zookeeper: not run (no java)" in text
