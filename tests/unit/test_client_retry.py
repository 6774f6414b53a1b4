"""RetryPolicy / Attempts: deadline, exponential backoff, jitter, attempt timeouts.

Time is a fake clock advanced by hand (and by the injected ``sleep``): nothing waits.
Values are powers of two where a comparison is on a boundary, so float rounding cannot blur it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from turnstile.client.retry import Attempts, RetryPolicy

pytestmark = pytest.mark.unit


class FakeClock:
    """A manual clock: ``clock()`` reads it, ``sleep(s)`` records the pause and advances it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def randoms(values: Iterable[float]) -> Callable[[], float]:
    """A ``random`` that returns ``values`` in turn (and fails loudly if asked for more)."""
    it = iter(values)
    return lambda: next(it)


def policy(clock: FakeClock, **overrides: object) -> RetryPolicy:
    """A policy on ``clock`` with no jitter unless overridden."""
    settings: dict[str, object] = {
        "deadline": 100.0,
        "initial_backoff": 0.125,
        "max_backoff": 1.0,
        "multiplier": 2.0,
        "jitter": 0.0,
        "attempt_timeout": 4.0,
        "clock": clock,
        "sleep": clock.sleep,
        "random": lambda: 0.0,
    }
    settings.update(overrides)
    return RetryPolicy(**settings)  # type: ignore[arg-type]


def backoffs(attempts: Attempts, n: int) -> list[float | None]:
    return [attempts.next_backoff() for _ in range(n)]


# ---------------------------------------------------------------------- backoff


def test_backoff_grows_by_the_multiplier_up_to_max_backoff() -> None:
    clock = FakeClock()
    attempts = policy(clock).start()
    assert backoffs(attempts, 6) == [0.125, 0.25, 0.5, 1.0, 1.0, 1.0]


def test_backoff_growth_follows_a_non_default_multiplier_and_cap() -> None:
    clock = FakeClock()
    attempts = policy(clock, initial_backoff=0.5, multiplier=3.0, max_backoff=10.0).start()
    assert backoffs(attempts, 5) == pytest.approx([0.5, 1.5, 4.5, 10.0, 10.0])


def test_multiplier_one_keeps_the_backoff_constant() -> None:
    clock = FakeClock()
    attempts = policy(clock, initial_backoff=0.25, multiplier=1.0).start()
    assert backoffs(attempts, 4) == [0.25, 0.25, 0.25, 0.25]


def test_next_backoff_counts_the_retries() -> None:
    clock = FakeClock()
    attempts = policy(clock).start()
    assert attempts.count == 0
    backoffs(attempts, 3)
    assert attempts.count == 3


# ---------------------------------------------------------------------- jitter


@pytest.mark.parametrize(
    ("jitter", "draw", "expected"),
    [
        (0.5, 0.0, 0.125),  # no shortening at the bottom of the draw
        (0.5, 1.0, 0.0625),  # the most: by ``jitter`` of the base
        (0.5, 0.5, 0.09375),  # in between, linearly
        (1.0, 0.5, 0.0625),
        (0.0, 0.75, 0.125),  # jitter 0: the draw is ignored
    ],
)
def test_jitter_shortens_the_base_by_jitter_times_the_draw(
    jitter: float, draw: float, expected: float
) -> None:
    clock = FakeClock()
    attempts = policy(clock, jitter=jitter, random=lambda: draw).start()
    assert attempts.next_backoff() == pytest.approx(expected)


def test_jittered_pauses_stay_within_one_minus_jitter_and_one_of_the_base() -> None:
    clock = FakeClock()
    draws = [0.0, 0.999, 0.3, 0.61, 0.05, 0.87, 0.42, 1.0]
    attempts = policy(clock, jitter=0.4, random=randoms(draws)).start()
    bases = [0.125, 0.25, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    for base in bases:
        pause = attempts.next_backoff()
        assert pause is not None
        assert base * 0.6 - 1e-12 <= pause <= base + 1e-12


def test_jitter_does_not_slow_the_growth_of_the_base() -> None:
    """The next base grows from the un-jittered base, not from the shortened pause."""
    clock = FakeClock()
    attempts = policy(clock, jitter=0.5, random=randoms([1.0, 1.0, 0.0])).start()
    assert backoffs(attempts, 3) == [0.0625, 0.125, 0.5]


# ---------------------------------------------------------------------- deadline


def test_next_backoff_is_none_when_the_pause_does_not_fit_in_the_remaining_time() -> None:
    clock = FakeClock()
    attempts = policy(clock, deadline=1.0).start()
    assert attempts.next_backoff() == 0.125
    clock.advance(0.5)  # 0.5 left; the next pause would be 0.25
    assert attempts.next_backoff() == 0.25
    clock.advance(0.25)  # 0.25 left; the next pause would be 0.5
    assert attempts.next_backoff() is None


def test_a_pause_exactly_filling_the_remaining_time_is_refused() -> None:
    clock = FakeClock()
    assert policy(clock, deadline=0.5, initial_backoff=0.5).start().next_backoff() is None
    assert policy(clock, deadline=0.5, initial_backoff=0.25).start().next_backoff() == 0.25


def test_the_jittered_pause_not_the_base_is_what_must_fit() -> None:
    clock = FakeClock()
    attempts = policy(clock, deadline=0.5, initial_backoff=0.75, jitter=0.5, random=lambda: 1.0)
    # base 0.75 would not fit in 0.5, the jittered 0.375 does
    assert attempts.start().next_backoff() == 0.375


def test_retry_loop_with_injected_sleep_stops_before_the_deadline() -> None:
    clock = FakeClock(now=0.0)
    retry = policy(clock, deadline=1.0)
    attempts = retry.start()
    while (pause := attempts.next_backoff()) is not None:
        retry.sleep(pause)
    assert clock.sleeps == [0.125, 0.25, 0.5]  # the 1.0 pause would pass the deadline
    assert clock.now == 0.875
    assert attempts.remaining() == 0.125


def test_remaining_counts_down_and_never_goes_negative() -> None:
    clock = FakeClock()
    attempts = policy(clock, deadline=2.0).start()
    assert attempts.remaining() == 2.0
    clock.advance(1.5)
    assert attempts.remaining() == 0.5
    clock.advance(10.0)
    assert attempts.remaining() == 0.0
    assert attempts.next_backoff() is None


def test_start_counts_the_deadline_from_the_clock_at_start() -> None:
    clock = FakeClock(now=500.0)
    retry = policy(clock, deadline=30.0)
    clock.advance(7.0)
    attempts = retry.start()
    assert attempts.ends_at == 537.0
    assert attempts.policy is retry


def test_per_call_deadline_overrides_the_policys() -> None:
    clock = FakeClock(now=0.0)
    retry = policy(clock, deadline=30.0)
    short = retry.start(deadline=0.5)
    assert short.ends_at == 0.5
    assert short.remaining() == 0.5
    assert short.next_backoff() == 0.125
    clock.advance(0.25)
    assert short.next_backoff() is None  # 0.25 would reach 0.5
    longer = retry.start(deadline=60.0)
    assert longer.remaining() == 60.0
    assert retry.start().remaining() == 30.0


# ---------------------------------------------------------------------- attempt timeout


def test_attempt_timeout_is_the_policys_while_time_remains() -> None:
    clock = FakeClock()
    attempts = policy(clock, deadline=30.0, attempt_timeout=4.0).start()
    assert attempts.attempt_timeout() == 4.0


def test_attempt_timeout_given_per_call_replaces_the_policys() -> None:
    clock = FakeClock()
    attempts = policy(clock, deadline=30.0, attempt_timeout=4.0).start()
    assert attempts.attempt_timeout(1.5) == 1.5
    assert attempts.attempt_timeout(12.0) == 12.0  # longer than the policy's: still honoured


def test_attempt_timeout_is_capped_by_the_remaining_time() -> None:
    clock = FakeClock()
    attempts = policy(clock, deadline=5.0, attempt_timeout=4.0).start()
    clock.advance(3.0)
    assert attempts.attempt_timeout() == 2.0
    assert attempts.attempt_timeout(12.0) == 2.0
    assert attempts.attempt_timeout(0.5) == 0.5


def test_attempt_timeout_stays_positive_when_no_time_remains() -> None:
    clock = FakeClock()
    attempts = policy(clock, deadline=1.0).start()
    clock.advance(5.0)
    timeout = attempts.attempt_timeout()
    assert 0 < timeout <= 0.001


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "overrides",
    [
        {"deadline": 0.0},
        {"deadline": -1.0},
        {"deadline": float("nan")},
        {"initial_backoff": 0.0},
        {"initial_backoff": -0.1},
        {"max_backoff": 0.0},
        {"attempt_timeout": 0.0},
        {"attempt_timeout": -3.0},
        {"multiplier": 0.5},
        {"multiplier": 0.0},
        {"jitter": -0.01},
        {"jitter": 1.01},
        {"jitter": float("nan")},
        {"initial_backoff": 0.5, "max_backoff": 0.1},
    ],
    ids=repr,
)
def test_invalid_policies_raise_value_error(overrides: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [{"multiplier": 1.0}, {"jitter": 0.0}, {"jitter": 1.0}, {"deadline": 0.001}, {}],
    ids=repr,
)
def test_boundary_policies_are_valid(overrides: dict[str, float]) -> None:
    RetryPolicy(**overrides)  # type: ignore[arg-type]


def test_policy_equality_ignores_the_injected_time_sources() -> None:
    clock = FakeClock()
    assert policy(clock) == policy(FakeClock(now=5.0), random=lambda: 0.9)
    assert policy(clock) != policy(clock, deadline=99.0)
