"""The metrics of semaphores and of acquires of several locks, on a cluster of its own (its
counters must move by this test's calls only)."""

from __future__ import annotations

import pytest

from tests.integration.cluster import Cluster, metric, wait_until
from tests.integration.test_semaphores_api import (
    ANSWER_WITHIN_S,
    acquire_many,
    clients,
    describe_semaphore,
    in_thread,
    permit,
)
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.integration


def test_permit_and_several_lock_waits_and_holds_are_measured(cluster: Cluster) -> None:
    a, b = clients(cluster, "metered-a", "metered-b")

    def scrape() -> str:
        return cluster.metrics(a.address)

    before = scrape()
    held = permit(a, "api-metered", 1)
    waiting, box = in_thread(lambda: permit(b, "api-metered", 1, wait_ms=60_000))
    wait_until(lambda: describe_semaphore(a, "api-metered").waiters, timeout=20)
    assert metric(scrape(), "turnstile_permits_held") >= 1
    a.call(
        "semaphores",
        "Release",
        pb.ReleasePermitRequest(request=a.request_id(), name="api-metered", token=held.token),
    )
    waiting.join(ANSWER_WITHIN_S)
    assert box["answer"].acquired
    blocker = a.acquire("api-metered/2")
    many, many_box = in_thread(lambda: acquire_many(b, ["api-metered/1", "api-metered/2"], 60_000))
    wait_until(lambda: cluster.lock_info("api-metered/1").waiters, timeout=20)
    a.release("api-metered/2", blocker.token)
    many.join(ANSWER_WITHIN_S)
    assert many_box["answer"].acquired
    released = 'cause="released"'

    def counted() -> str | None:
        text = scrape()
        moved = metric(text, "turnstile_permit_releases_total", released) > metric(
            before, "turnstile_permit_releases_total", released
        )
        return text if moved else None

    after = wait_until(counted)
    assert metric(after, "turnstile_permit_hold_seconds_count", released) > metric(
        before, "turnstile_permit_hold_seconds_count", released
    )
    assert metric(after, "turnstile_permit_wait_seconds_count") == (
        metric(before, "turnstile_permit_wait_seconds_count") + 1
    )
    # The several-lock acquire's wait counts as a lock wait, and not as a permit's.
    assert metric(after, "turnstile_lock_wait_seconds_count") == (
        metric(before, "turnstile_lock_wait_seconds_count") + 1
    )
    assert metric(after, "turnstile_rpc_requests_total", 'code="OK",method="Locks.AcquireMany"')
