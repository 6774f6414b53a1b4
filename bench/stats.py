"""Pure arithmetic over what the bench clients recorded: percentiles and correctness checks.

Times are ``time.monotonic()`` seconds, one clock for every process on the machine (Linux
CLOCK_MONOTONIC), so records from different client processes can be merged.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hold:
    """One lock pair as its client saw it.

    ``granted`` is when the acquire returned and ``releasing`` when the release was sent: the
    cluster's hold covers at least that span, so two such spans of one lock that overlap mean
    the cluster granted overlapping holds.
    """

    name: str
    client: int
    asked: float
    granted: float
    releasing: float
    released: float
    token: int


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


#: Where a row's latency CDF is sampled: every percent, and the 99.9th.
CDF_FRACTIONS = (*(i / 100 for i in range(1, 100)), 0.999, 1.0)


def cdf_ms(samples: Iterable[float]) -> list[float]:
    """Latencies in milliseconds at ``CDF_FRACTIONS`` of durations in seconds ([] if none)."""
    ordered = sorted(samples)
    if not ordered:
        return []
    return [round(percentile(ordered, fraction) * 1000, 3) for fraction in CDF_FRACTIONS]


def latency_ms(samples: Iterable[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds of durations in seconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3) if ordered else math.nan,
    }


@dataclass(frozen=True, slots=True)
class HoldCheck:
    overlaps: int
    token_regressions: int
    #: Release-to-grant times (s) of holds whose acquire was waiting when the release was sent.
    handoffs: list[float]


def check_holds(holds: Iterable[Hold]) -> HoldCheck:
    """Counts overlapping holds and non-increasing tokens per lock, in grant order."""
    by_name: dict[str, list[Hold]] = defaultdict(list)
    for hold in holds:
        by_name[hold.name].append(hold)
    overlaps = regressions = 0
    handoffs = []
    for series in by_name.values():
        series.sort(key=lambda h: h.granted)
        for before, after in itertools.pairwise(series):
            if after.granted < before.releasing:
                overlaps += 1
            if after.token <= before.token:
                regressions += 1
            if after.asked < before.releasing <= after.granted:
                handoffs.append(after.granted - before.releasing)
    return HoldCheck(overlaps, regressions, handoffs)


@dataclass(frozen=True, slots=True)
class IdCheck:
    keys: int
    inserts: int
    duplicates: int
    #: One key answered with two different ids.
    unstable_ids: int
    #: One id answered for two different keys.
    shared_ids: int
    #: A key reported as newly added more than once.
    double_adds: int


def check_ids(answers: Iterable[tuple[str, bool, int]]) -> IdCheck:
    """Checks (key, added, id) answers: one id per key, one key per id, one add per key."""
    ids_of: dict[str, set[int]] = defaultdict(set)
    adds: dict[str, int] = defaultdict(int)
    inserts = duplicates = 0
    for key, added, id_ in answers:
        inserts += 1
        ids_of[key].add(id_)
        if added:
            adds[key] += 1
        else:
            duplicates += 1
    keys_of: dict[int, set[str]] = defaultdict(set)
    for key, ids in ids_of.items():
        for id_ in ids:
            keys_of[id_].add(key)
    return IdCheck(
        keys=len(ids_of),
        inserts=inserts,
        duplicates=duplicates,
        unstable_ids=sum(1 for ids in ids_of.values() if len(ids) > 1),
        shared_ids=sum(1 for keys in keys_of.values() if len(keys) > 1),
        double_adds=sum(1 for count in adds.values() if count > 1),
    )


def longest_gap(successes: Iterable[float], start: float, end: float) -> float:
    """Longest time within [start, end] with no success in it (seconds)."""
    times = [start, *sorted(t for t in successes if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(times))
