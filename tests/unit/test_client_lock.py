"""Lock against a scripted fake cluster: what ``acquire`` and ``release`` do when the answer is
late, lost or never comes. The client's view of a hold must never outlast the cluster's, a
release that landed must not be reported lost, and an acquire given up on is abandoned.

The fakes are those of ``test_client_calls`` (scripted stub, fake clock); the session is opened
by a scripted Open, with its keep-alive thread off (``test_client_session`` covers that loop).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
import pytest
from test_client_calls import (
    Call,
    FakeClock,
    FakeCluster,
    Outcome,
    always,
    make_client,
    refused,
    transport,
)

from turnstile.client.client import Client
from turnstile.client.errors import (
    DeadlineExceededError,
    InternalError,
    LimitExceededError,
    LockLostError,
    UnavailableError,
    UnknownOutcomeError,
)
from turnstile.client.session import Session
from turnstile.client.session_state import CLEANUP_DEADLINE, SessionState
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

OPENED = pb.OpenSessionResponse(session_id=42, ttl_ms=10_000)
GRANTED = pb.AcquireResponse(acquired=True, token=7)


@pytest.fixture(autouse=True)
def no_keep_alive_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Session, "_keep_alive", lambda _self: None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


def lock_client(
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
    outcomes: Iterable[Outcome],
    **retry: Any,
) -> tuple[Client, FakeCluster, Session]:
    """A client whose session (id 42, TTL 10 s) is open; later calls play ``outcomes``."""
    client, cluster = make_client(monkeypatch, clock, itertools.chain([OPENED], outcomes), **retry)
    return client, cluster, client.session()


def by_method(**outcomes: Outcome) -> Iterator[Outcome]:
    """An endless script answering each method with its outcome (or outcome of the call)."""

    def answer(call: Call) -> Outcome:
        outcome = outcomes[call.method]
        return outcome(call) if callable(outcome) else outcome

    return always(answer)


def calls_of(cluster: FakeCluster, method: str) -> list[Call]:
    return [c for c in cluster.calls if c.method == method]


def after(clock: FakeClock, seconds: float, outcome: Outcome) -> Outcome:
    """An outcome that arrives ``seconds`` after its call was sent."""

    def late(_call: Call) -> Outcome:
        clock.advance(seconds)
        return outcome

    return late


def hang(clock: FakeClock, outcome: Outcome) -> Outcome:
    """An outcome that arrives when its call has timed out (a node that does not answer)."""

    def timed_out(call: Call) -> Outcome:
        clock.advance(call.timeout)
        return outcome

    return timed_out


# ---------------------------------------------------------------------- a late grant


def test_a_grant_after_the_max_hold_passed_raises_lock_lost_and_is_given_back(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """A wait longer than max_hold: the cluster counts the hold from the grant, this client
    from the send, so by its clock the hold is over before it starts."""
    outcomes = [after(clock, 1.5, GRANTED), pb.ReleaseResponse(), GRANTED]
    client, cluster, _ = lock_client(monkeypatch, clock, outcomes)
    lock = client.lock("unit", max_hold=1.0)
    with pytest.raises(LockLostError, match=r"token 7\) 1\.500s after .* max_hold of 1\.0s"):
        lock.acquire()
    (give_back,) = calls_of(cluster, "Release")
    assert (give_back.request.name, give_back.request.token) == ("unit", 7)
    assert not lock.locked()
    assert lock.token is None
    assert lock.acquire(blocking=False)  # the object is free again: its local lock too


def test_a_grant_to_a_session_lost_meanwhile_raises_lock_lost_naming_the_session(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = [after(clock, 10.5, GRANTED), refused(Reason.SESSION_EXPIRED, "gone")]
    client, cluster, session = lock_client(monkeypatch, clock, outcomes)
    lock = client.lock("unit")
    with pytest.raises(LockLostError, match=r"token 7.* session 42 was lost"):
        lock.acquire()
    assert session.state is SessionState.LOST
    assert (
        len(calls_of(cluster, "Release")) == 1
    )  # given back even so: the cluster's view is longer
    assert not lock.locked()


def test_giving_back_a_late_grant_is_bounded_and_its_failure_only_logged(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = by_method(
        Acquire=after(clock, 2.0, GRANTED),
        Release=hang(clock, transport(grpc.StatusCode.DEADLINE_EXCEEDED)),
    )
    client, cluster, _ = lock_client(monkeypatch, clock, outcomes, deadline=30.0)
    lock = client.lock("unit", max_hold=1.0)
    with pytest.raises(LockLostError):
        lock.acquire()
    assert calls_of(cluster, "Release")
    assert clock.now <= 100.0 + 2.0 + CLEANUP_DEADLINE


def test_a_grant_in_time_is_held_from_the_first_send_of_its_request_id(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """Retries of one Acquire id (here after an unknown outcome) never move the hold's start:
    a later start would make this client's view outlast the cluster's."""
    outcomes = [
        after(clock, 0.5, refused(Reason.UNKNOWN_OUTCOME, "leader lost mid-commit")),
        after(clock, 0.25, GRANTED),
    ]
    client, cluster, _ = lock_client(monkeypatch, clock, outcomes, deadline=10.0)
    lock = client.lock("unit", max_hold=30.0)
    assert lock.acquire()
    acquires = calls_of(cluster, "Acquire")
    assert len({c.request.request.seq for c in acquires}) == 1
    assert lock.expires_at == 100.0 + 30.0
    assert lock.locked()


# ---------------------------------------------------------------------- release


def test_a_release_whose_outcome_was_unknown_is_resent_and_a_landed_one_is_not_lost(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """The first Release lands but its answer is lost and the cluster stays out of reach
    until the deadline; the cluster answers a resend of that id with its first outcome, and
    any other Release of the token with NOT_HOLDER."""
    landed: list[int] = []
    reachable = [False]

    def release(call: Call) -> Outcome:
        seq = call.request.request.seq
        if not landed:
            landed.append(seq)
            return refused(Reason.UNKNOWN_OUTCOME, "leader lost mid-commit")
        if not reachable[0]:
            return transport(grpc.StatusCode.UNAVAILABLE)
        return pb.ReleaseResponse() if seq == landed[0] else refused(Reason.NOT_HOLDER, "token 7")

    client, cluster, _ = lock_client(
        monkeypatch, clock, by_method(Acquire=GRANTED, Release=release)
    )
    lock = client.lock("unit")
    assert lock.acquire()
    with pytest.raises(UnavailableError):
        lock.release()
    assert lock.locked()  # not known to be released: still ours
    reachable[0] = True
    lock.release()
    assert not lock.locked()
    sent = {
        (c.request.request.session_id, c.request.request.seq) for c in calls_of(cluster, "Release")
    }
    assert sent == {(42, landed[0])}


def test_a_with_block_whose_release_outcome_is_unknown_leaves_it_to_the_keep_alive(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """After a ``with`` block nobody calls ``release()`` again: the Release whose outcome is
    unknown goes to the keep-alive thread (same id), the object is free, the error raised."""
    outcomes = by_method(Acquire=GRANTED, Release=transport(grpc.StatusCode.UNAVAILABLE))
    client, cluster, session = lock_client(monkeypatch, clock, outcomes)
    lock = client.lock("unit")
    with pytest.raises(UnavailableError), lock:
        pass
    release = calls_of(cluster, "Release")[0].request
    (pending,) = session.core.pending_writes()
    assert (pending.request, pending.token) == (release.request, 7)
    assert not reported(session, release.request.seq)
    assert not lock.locked()
    assert session._wake.is_set()


def test_a_release_whose_outcome_is_unknown_is_not_reported_answered_until_it_is_known(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """The cluster refuses an id reported answered: reporting the pending release would make
    its resend fail."""
    releases = iter([transport(grpc.StatusCode.UNAVAILABLE)] * 4 + [pb.ReleaseResponse()])
    outcomes = by_method(Acquire=GRANTED, Release=lambda _call: next(releases))
    client, cluster, session = lock_client(monkeypatch, clock, outcomes)
    lock = client.lock("unit")
    assert lock.acquire()
    with pytest.raises(UnavailableError):
        lock.release()
    seq = calls_of(cluster, "Release")[0].request.request.seq
    probe = session.core.requests.new()
    assert probe.acked < seq
    assert seq not in probe.answered
    session.core.requests.answered(probe)
    lock.release()
    later = session.core.requests.new()
    assert later.acked >= seq or seq in later.answered


def reported(session: Session, seq: int) -> bool:
    """Whether the session's next request reports ``seq`` answered (through acked or
    answered); the probe itself is then given up."""
    probe = session.core.requests.new()
    session.core.requests.answered(probe)
    return probe.acked >= seq or seq in probe.answered


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN], ids=lambda c: c.name
)
def test_a_release_failing_with_an_internal_status_is_still_held_and_resent(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, code: grpc.StatusCode
) -> None:
    """The server (or what is between) failed mid-call: the Release may have landed or not,
    so it is pending like one that timed out, not reported answered and dropped."""
    releases = iter([transport(code, "stream reset"), pb.ReleaseResponse()])
    outcomes = by_method(Acquire=GRANTED, Release=lambda _call: next(releases))
    client, cluster, session = lock_client(monkeypatch, clock, outcomes)
    lock = client.lock("unit")
    assert lock.acquire()
    with pytest.raises(InternalError):
        lock.release()
    seq = calls_of(cluster, "Release")[0].request.request.seq
    assert lock.locked()
    assert not reported(session, seq)
    lock.release()
    assert {c.request.request.seq for c in calls_of(cluster, "Release")} == {seq}
    assert not lock.locked()
    assert reported(session, seq)


def test_an_interrupted_release_is_left_to_the_keep_alive_thread_to_resend(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """Ctrl-C during the Release: it may never have landed, and the keep-alives keep the
    session (so the hold) alive. The object is free at once; the Release id stays unanswered
    and the woken keep-alive thread resends it."""
    outcomes = [GRANTED, KeyboardInterrupt(), pb.AcquireResponse(acquired=True, token=8)]
    client, cluster, session = lock_client(monkeypatch, clock, outcomes)
    lock = client.lock("unit")
    assert lock.acquire()
    with pytest.raises(KeyboardInterrupt):
        lock.release()
    release = calls_of(cluster, "Release")[0].request
    assert not reported(session, release.request.seq)
    assert session._wake.is_set()
    (pending,) = session.core.pending_writes()
    assert (pending.request, pending.name, pending.token) == (release.request, "unit", 7)
    assert pending.message() == pb.ReleaseRequest(name="unit", token=7)
    assert not lock.locked()
    assert lock.acquire(blocking=False)  # the object's local lock is free too
    assert lock.token == 8


# ---------------------------------------------------------------------- abandon


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (refused(Reason.UNKNOWN_OUTCOME, "leader lost mid-commit"), UnknownOutcomeError),
        (transport(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), DeadlineExceededError),
        (transport(grpc.StatusCode.UNAVAILABLE), UnavailableError),
        (transport(grpc.StatusCode.CANCELLED, "Cancelled"), UnavailableError),
        (transport(grpc.StatusCode.INTERNAL, "RST_STREAM"), InternalError),
        (transport(grpc.StatusCode.UNKNOWN, "Exception calling application"), InternalError),
    ],
    ids=["unknown-outcome", "deadline-exceeded", "unavailable", "cancelled", "internal", "unknown"],
)
def test_an_acquire_that_ends_without_an_answer_is_abandoned_and_its_error_raised(
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
    error: grpc.RpcError,
    raised: type[Exception],
) -> None:
    outcomes = by_method(Acquire=error, Abandon=pb.AbandonResponse(released=True))
    client, cluster, session = lock_client(monkeypatch, clock, outcomes, deadline=1.0)
    lock = client.lock("unit", max_hold=30.0)
    with pytest.raises(raised):
        lock.acquire(timeout=1.0)
    acquire = calls_of(cluster, "Acquire")[0].request.request
    (abandon,) = calls_of(cluster, "Abandon")
    assert (abandon.request.name, abandon.request.acquire_seq) == ("unit", acquire.seq)
    assert abandon.request.request.session_id == 42
    assert abandon.request.request.seq != acquire.seq  # a write of its own
    assert session.core.pending_writes() == []
    assert session.core.requests.outstanding == 0
    assert not lock.locked()


def test_an_abandon_that_cannot_complete_now_is_left_pending_for_the_keep_alive_thread(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = by_method(
        Acquire=refused(Reason.UNKNOWN_OUTCOME, "lost"),
        Abandon=transport(grpc.StatusCode.UNAVAILABLE),
    )
    client, cluster, session = lock_client(monkeypatch, clock, outcomes, deadline=1.0)
    with pytest.raises(UnknownOutcomeError):
        client.lock("unit").acquire(blocking=False)
    acquire = calls_of(cluster, "Acquire")[0].request.request
    (pending,) = session.core.pending_writes()
    assert (pending.name, pending.acquire.seq) == ("unit", acquire.seq)
    assert {c.request.request.seq for c in calls_of(cluster, "Abandon")} == {pending.request.seq}
    # neither the acquire nor the abandon is reported answered: both outcomes are unknown
    assert session.core.requests.outstanding == 2
    assert clock.now <= 100.0 + 1.0 + CLEANUP_DEADLINE


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN], ids=lambda c: c.name
)
def test_an_abandon_failing_with_an_internal_status_is_left_pending(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, code: grpc.StatusCode
) -> None:
    """It may not have landed, so the acquire may still hold the lock: not an answer."""
    outcomes = by_method(
        Acquire=refused(Reason.UNKNOWN_OUTCOME, "lost"), Abandon=transport(code, "oops")
    )
    client, cluster, session = lock_client(monkeypatch, clock, outcomes, deadline=1.0)
    with pytest.raises(UnknownOutcomeError):
        client.lock("unit").acquire(blocking=False)
    assert session.core.requests.outstanding == 2
    (pending,) = session.core.pending_writes()
    assert pending.acquire.seq == calls_of(cluster, "Acquire")[0].request.request.seq


@pytest.mark.parametrize(
    "reason", [Reason.FAILED_PRECONDITION, Reason.SESSION_EXPIRED], ids=lambda r: r.name
)
def test_an_abandon_the_cluster_refuses_is_not_retried(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, reason: Reason
) -> None:
    outcomes = by_method(Acquire=refused(Reason.UNKNOWN_OUTCOME, "lost"), Abandon=refused(reason))
    client, cluster, session = lock_client(monkeypatch, clock, outcomes, deadline=1.0)
    with pytest.raises(UnknownOutcomeError):
        client.lock("unit").acquire(blocking=False)
    assert len(calls_of(cluster, "Abandon")) == 1
    assert session.core.pending_writes() == []
    assert session.core.requests.outstanding == 0


def test_an_interrupted_acquire_is_left_to_the_keep_alive_thread_to_abandon(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """Ctrl-C during a blocked acquire: the interrupt goes on at once, and the keep-alive
    thread (woken) abandons the acquire."""
    client, cluster, session = lock_client(monkeypatch, clock, [KeyboardInterrupt()])
    lock = client.lock("unit")
    with pytest.raises(KeyboardInterrupt):
        lock.acquire()
    acquire = calls_of(cluster, "Acquire")[0].request.request
    assert calls_of(cluster, "Abandon") == []
    (pending,) = session.core.pending_writes()
    assert pending.acquire.seq == acquire.seq
    assert session._wake.is_set()
    assert not lock.locked()


def test_a_refused_acquire_is_an_answer_and_is_not_abandoned(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = [refused(Reason.LIMIT_EXCEEDED, "max_waiters")]
    client, cluster, session = lock_client(monkeypatch, clock, outcomes)
    with pytest.raises(LimitExceededError):
        client.lock("unit").acquire()
    assert [c.method for c in cluster.calls] == ["Open", "Acquire"]
    assert session.core.pending_writes() == []
    assert session.core.requests.outstanding == 0
