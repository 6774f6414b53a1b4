"""SessionTracker: keep-alive deadlines on the leader, with injected time."""

from __future__ import annotations

import pytest

from turnstile.cluster.sessions import SessionTracker

pytestmark = pytest.mark.unit


def test_a_session_is_due_at_its_deadline_not_before() -> None:
    tracker = SessionTracker()
    tracker.add(1, 1000, now=0.0)
    assert tracker.next_deadline() == 1.0
    assert tracker.take_due(0.999) == []
    assert tracker.take_due(1.0) == [1]
    assert not tracker.is_live(1)
    assert tracker.next_deadline() is None


def test_a_renewal_moves_the_deadline_and_the_old_one_no_longer_fires() -> None:
    tracker = SessionTracker()
    tracker.add(1, 1000, now=0.0)
    assert tracker.renew(1, arrived_at=0.5)
    assert tracker.next_deadline() == 1.5
    assert tracker.take_due(1.2) == []
    assert tracker.take_due(1.5) == [1]


def test_an_older_keep_alive_never_shortens_the_deadline() -> None:
    tracker = SessionTracker()
    tracker.add(1, 1000, now=0.0)
    tracker.renew(1, arrived_at=0.8)
    tracker.renew(1, arrived_at=0.3)
    assert tracker.next_deadline() == 1.8


def test_due_sessions_come_in_id_order_and_each_once() -> None:
    tracker = SessionTracker()
    for sid, now in ((3, 0.0), (1, 0.1), (2, 0.2)):
        tracker.add(sid, 1000, now)
    tracker.renew(2, arrived_at=0.9)
    assert tracker.take_due(1.5) == [1, 3]
    assert tracker.take_due(1.5) == []
    assert tracker.take_due(2.0) == [2]


def test_an_expiring_or_removed_session_is_not_renewed_nor_due() -> None:
    tracker = SessionTracker()
    tracker.add(1, 1000, now=0.0)
    tracker.add(2, 1000, now=0.0)
    assert tracker.take_due(1.0) == [1, 2]
    assert not tracker.renew(1, arrived_at=1.0)
    tracker.remove(2)
    assert not tracker.renew(2, arrived_at=1.0)
    assert tracker.next_deadline() is None


def test_a_failed_expiry_is_proposed_again() -> None:
    tracker = SessionTracker()
    tracker.add(1, 1000, now=0.0)
    assert tracker.take_due(1.0) == [1]
    tracker.retry_later(1, now=1.2)
    assert tracker.is_live(1)
    assert tracker.take_due(1.2) == [1]


def test_reset_gives_every_session_a_fresh_ttl_and_clear_forgets_them() -> None:
    tracker = SessionTracker()
    tracker.add(9, 1000, now=0.0)
    tracker.reset([(1, 1000), (2, 3000)], now=10.0)
    assert len(tracker) == 2
    assert tracker.take_due(10.5) == []
    assert tracker.take_due(11.0) == [1]
    assert tracker.next_deadline() == 13.0
    tracker.clear()
    assert len(tracker) == 0
    assert tracker.next_deadline() is None


def test_many_renewals_keep_finding_the_earliest_live_deadline() -> None:
    tracker = SessionTracker()
    for sid in range(1, 101):
        tracker.add(sid, 10_000, now=0.0)
    for round_ in range(1, 4):
        for sid in range(1, 101):
            tracker.renew(sid, arrived_at=round_ + sid / 1000)
    assert tracker.next_deadline() == pytest.approx(13.001)
    assert tracker.take_due(13.0505) == list(range(1, 51))
