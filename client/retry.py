"""How long and how often to retry: a deadline, exponential backoff, jitter.

Time is injected (``clock``, ``sleep``, ``random``), so the policy is tested without waiting.
What is *safe* to retry is decided elsewhere: every write carries a request id, so the library
retries writes and reads alike, but only on ``retryable`` errors.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from turnstile.v1.timeouts import ATTEMPT_TIMEOUT_S, CALL_DEADLINE_S


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a call until ``deadline`` seconds after it started, backing off between tries."""

    #: Total time one call may take, retries included (see ``turnstile.v1.timeouts``).
    deadline: float = CALL_DEADLINE_S
    #: First backoff; each next one is ``multiplier`` times longer, up to ``max_backoff``.
    #: Short, because the usual reason to retry is an election: a client backing off for a
    #: second would find the new leader up to a second after it is serving.
    initial_backoff: float = 0.02
    max_backoff: float = 0.25
    multiplier: float = 2.0
    #: Each backoff is shortened by a random fraction up to this (0: no jitter).
    jitter: float = 0.5
    #: Longest single attempt (a paused node is given up on after this).
    attempt_timeout: float = ATTEMPT_TIMEOUT_S
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    random: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        problems = [
            name
            for name in ("deadline", "initial_backoff", "max_backoff", "attempt_timeout")
            if not getattr(self, name) > 0
        ]
        if (
            problems
            or self.multiplier < 1
            or not 0 <= self.jitter <= 1
            or self.max_backoff < self.initial_backoff
        ):
            raise ValueError(
                "RetryPolicy: deadline, backoffs and attempt_timeout must be positive, "
                "max_backoff >= initial_backoff, multiplier >= 1 and 0 <= jitter <= 1"
            )

    def start(self, deadline: float | None = None) -> Attempts:
        """Begins one call; ``deadline`` (seconds) overrides the policy's for this call."""
        return Attempts(self, self.clock() + (self.deadline if deadline is None else deadline))


class Attempts:
    """The retry state of one call."""

    def __init__(self, policy: RetryPolicy, ends_at: float) -> None:
        self.policy = policy
        self.ends_at = ends_at
        self.count = 0
        self._backoff = policy.initial_backoff

    def remaining(self) -> float:
        return max(0.0, self.ends_at - self.policy.clock())

    def attempt_timeout(self, longest: float | None = None) -> float:
        """Timeout for the next attempt: the policy's (or ``longest``), within the deadline."""
        cap = self.policy.attempt_timeout if longest is None else longest
        return max(0.001, min(cap, self.remaining()))

    def next_backoff(self) -> float | None:
        """The pause before the next attempt, or None when the deadline leaves no room."""
        self.count += 1
        pause = self._backoff * (1 - self.policy.jitter * self.policy.random())
        self._backoff = min(self.policy.max_backoff, self._backoff * self.policy.multiplier)
        if pause >= self.remaining():
            return None
        return pause
