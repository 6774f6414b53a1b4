"""``Semaphore``, ``Held`` and ``lock_many`` against the scripted fake cluster of
``test_client_calls``: each call goes to its service (a permit's Release and Abandon to
Semaphores, with the permit request types), an acquire given up on is abandoned there,
a late grant is given back, and a lost permit raises ``LockLostError`` as a lost lock does."""

from __future__ import annotations

import pytest
from test_client_calls import FakeClock, refused
from test_client_lock import GRANTED, after, by_method, calls_of, lock_client

from turnstile.client.errors import LockLostError, UnknownOutcomeError
from turnstile.client.routes import SEMAPHORES
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

BOTH = pb.AcquireManyResponse(
    acquired=True, grants=[pb.LockGrant(name="b", token=11), pb.LockGrant(name="a", token=12)]
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


def test_a_permit_is_acquired_and_released_on_the_semaphores_service(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = by_method(Acquire=GRANTED, Release=pb.ReleaseResponse())
    client, cluster, _ = lock_client(monkeypatch, clock, outcomes)
    semaphore = client.semaphore("pool", limit=3, max_hold=5.0)
    with semaphore as permit:
        assert permit.token == 7 and permit.locked() and permit.name == "pool"
        assert permit.expires_at == pytest.approx(105.0)
    (acquire,) = calls_of(cluster, "Acquire")
    assert acquire.service == SEMAPHORES
    assert isinstance(acquire.request, pb.AcquirePermitRequest)
    assert (acquire.request.limit, acquire.request.max_hold_ms) == (3, 5000)
    (release,) = calls_of(cluster, "Release")
    assert release.service == SEMAPHORES and release.request.token == 7
    assert isinstance(release.request, pb.ReleasePermitRequest)
    assert permit.released and not permit.locked()
    with pytest.raises(RuntimeError):
        permit.release()


def test_an_unanswered_permit_acquire_is_abandoned_on_the_semaphores_service(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = by_method(
        Acquire=refused(Reason.UNKNOWN_OUTCOME), Abandon=pb.AbandonResponse(released=True)
    )
    client, cluster, session = lock_client(monkeypatch, clock, outcomes)
    with pytest.raises(UnknownOutcomeError):
        client.semaphore("pool", limit=2).acquire(timeout=1.0, description="job=1")
    acquire = calls_of(cluster, "Acquire")[0]
    assert acquire.request.description == "job=1"
    (abandon,) = calls_of(cluster, "Abandon")
    assert abandon.service == SEMAPHORES
    assert isinstance(abandon.request, pb.AbandonPermitRequest)
    assert (abandon.request.name, abandon.request.acquire_seq) == (
        "pool",
        acquire.request.request.seq,
    )
    assert session.core.pending_writes() == []


def test_a_permit_the_cluster_no_longer_holds_is_lost_on_release(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = by_method(Acquire=GRANTED, Release=refused(Reason.NOT_HOLDER))
    client, _, _ = lock_client(monkeypatch, clock, outcomes)
    semaphore = client.semaphore("pool", limit=1)
    permit = semaphore.acquire()
    assert permit is not None
    with pytest.raises(LockLostError, match="semaphore 'pool' was lost: NOT_HOLDER"):
        semaphore.release(permit)
    assert permit.released


def test_a_permit_not_free_is_none_without_waiting(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, cluster, _ = lock_client(monkeypatch, clock, by_method(Acquire=pb.AcquireResponse()))
    assert client.semaphore("pool", limit=1).acquire(blocking=False) is None
    assert [c.request.wait_ms for c in calls_of(cluster, "Acquire")] == [0]


def test_lock_many_holds_each_lock_with_its_token_and_releases_each(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = by_method(AcquireMany=BOTH, Release=pb.ReleaseResponse())
    client, cluster, _ = lock_client(monkeypatch, clock, outcomes)
    holds = client.lock_many(["b", "a"], max_hold=2.0, timeout=3.0, description={"k": "v"})
    assert holds is not None
    assert list(holds) == ["b", "a"] and holds.tokens == {"b": 11, "a": 12}
    assert holds["a"].token == 12 and holds.locked()
    (acquire,) = calls_of(cluster, "AcquireMany")
    assert acquire.service == "locks" and list(acquire.request.names) == ["b", "a"]
    assert (acquire.request.max_hold_ms, acquire.request.wait_ms) == (2000, 3000)
    assert acquire.request.description == "k=v"
    holds["b"].release()  # one alone; the rest with the block
    with holds:
        pass
    released = [(c.service, c.request.name, c.request.token) for c in calls_of(cluster, "Release")]
    assert released == [("locks", "b", 11), ("locks", "a", 12)]
    assert not holds.locked()


def test_a_late_grant_of_several_locks_gives_every_one_back(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = by_method(AcquireMany=after(clock, 1.5, BOTH), Release=pb.ReleaseResponse())
    client, cluster, _ = lock_client(monkeypatch, clock, outcomes)
    with pytest.raises(LockLostError, match=r"locks \['b', 'a'\]: granted"):
        client.lock_many(["b", "a"], max_hold=1.0)
    assert sorted(c.request.token for c in calls_of(cluster, "Release")) == [11, 12]


def test_an_unanswered_lock_many_is_abandoned_by_its_first_name(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = by_method(
        AcquireMany=refused(Reason.UNKNOWN_OUTCOME), Abandon=pb.AbandonResponse(removed=True)
    )
    client, cluster, _ = lock_client(monkeypatch, clock, outcomes)
    with pytest.raises(UnknownOutcomeError):
        client.lock_many(["b", "a"], timeout=1.0)
    (abandon,) = calls_of(cluster, "Abandon")
    assert abandon.service == "locks" and abandon.request.name == "b"
    seq = calls_of(cluster, "AcquireMany")[0].request.request.seq
    assert abandon.request.acquire_seq == seq


def test_a_lock_acquire_sends_its_description(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, cluster, _ = lock_client(monkeypatch, clock, by_method(Acquire=GRANTED))
    lock = client.lock("unit")
    assert lock.acquire(description={"job": "42", "step": "copy files"})
    assert calls_of(cluster, "Acquire")[0].request.description == "job=42 step='copy files'"
    with pytest.raises(ValueError, match="control character"):
        client.lock("other").acquire(description="a\nb")
