"""The timeout budget (turnstile.v1.timeouts): each timeout outlasts the ones nested in it, so
the inner one answers first."""

from __future__ import annotations

import pytest

from turnstile.cluster import node
from turnstile.cluster.config import Timing
from turnstile.v1 import timeouts

pytestmark = pytest.mark.unit


def test_the_client_waits_for_the_servers_answer_to_a_blocked_acquire() -> None:
    # The server's grace covers the duties loop noticing the deadline, then a commit.
    assert timeouts.SERVER_WAIT_GRACE_S > node.DUTIES_IDLE_S
    # The client's covers the server's, plus round trips.
    assert timeouts.CLIENT_WAIT_GRACE_S >= timeouts.SERVER_WAIT_GRACE_S + 1


def test_one_attempt_outlasts_one_commit_and_one_call_outlasts_an_attempt() -> None:
    assert timeouts.ATTEMPT_TIMEOUT_S >= timeouts.COMMIT_TIMEOUT_MS / 1000
    assert timeouts.CALL_DEADLINE_S >= 3 * timeouts.ATTEMPT_TIMEOUT_S


def test_a_commit_waits_out_an_election() -> None:
    assert 2 * Timing().election_timeout_max_ms <= timeouts.COMMIT_TIMEOUT_MS
    assert Timing().commit_timeout_ms == timeouts.COMMIT_TIMEOUT_MS
