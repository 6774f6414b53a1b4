"""RequestIds (seq, acked, answered) and SessionCore (CONNECTED / SUSPENDED / LOST, a write's
request id, the pending Abandons and Releases) on a fake clock. No Session thread and no
client: the core is what the sync and asyncio clients share."""

from __future__ import annotations

import logging

import grpc
import pytest
from test_client_calls import transport

from turnstile.client.errors import (
    FailedPreconditionError,
    NotHolderError,
    SessionExpiredError,
    TurnstileError,
    UnavailableError,
    UnknownOutcomeError,
    from_rpc_error,
)
from turnstile.client.session_state import PendingRelease, RequestIds, SessionCore, SessionState
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit

CONNECTED, SUSPENDED, LOST = SessionState.CONNECTED, SessionState.SUSPENDED, SessionState.LOST


class FakeClock:
    """A manual clock: ``clock()`` reads it, ``advance`` moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A listener that records every state it is called with."""

    def __init__(self) -> None:
        self.states: list[SessionState] = []

    def __call__(self, state: SessionState) -> None:
        self.states.append(state)


def core_at(
    clock: FakeClock, ttl: float = 10.0, opened_sent_at: float | None = None
) -> SessionCore:
    sent = clock() if opened_sent_at is None else opened_sent_at
    return SessionCore(7, ttl, sent, clock)


# ---------------------------------------------------------------------- RequestIds


def test_seqs_count_up_from_one_under_the_session_id() -> None:
    ids = RequestIds(42)
    requests = [ids.new() for _ in range(3)]
    assert [r.seq for r in requests] == [1, 2, 3]
    assert {r.session_id for r in requests} == {42}
    assert isinstance(requests[0], pb.RequestId)
    assert ids.outstanding == 3


def test_acked_is_every_seq_below_the_lowest_unanswered() -> None:
    ids = RequestIds(1)
    r1, r2, r3 = ids.new(), ids.new(), ids.new()
    assert (r1.acked, r2.acked, r3.acked) == (0, 0, 0)
    ids.answered(r2)
    assert ids.new().acked == 0  # r1 is still open: nothing above it counts
    ids.answered(r1)
    assert ids.new().acked == 2  # r3 is the lowest unanswered
    ids.answered(r3)
    assert ids.new().acked == 3  # r4 (seq 4) still open


def test_acked_covers_everything_when_all_are_answered() -> None:
    ids = RequestIds(1)
    for _ in range(5):
        ids.answered(ids.new())
    nxt = ids.new()
    assert (nxt.seq, nxt.acked) == (6, 5)
    assert list(nxt.answered) == []  # all at or below acked: nothing to report
    assert ids.outstanding == 1


def test_answered_seqs_above_acked_are_reported_until_a_request_carrying_them_is_answered() -> None:
    ids = RequestIds(1)
    r1 = ids.new()  # stays open: pins acked at 0
    r2 = ids.new()
    ids.answered(r2)
    r3 = ids.new()
    assert (r3.acked, list(r3.answered)) == (0, [2])
    r4 = ids.new()
    assert list(r4.answered) == [2]  # r3 not answered yet: still reported
    ids.answered(r3)  # r3 carried 2: the cluster has heard of it
    r5 = ids.new()
    assert list(r5.answered) == [3]
    ids.answered(r4)  # carried 2, already dropped; 4 is newly answered
    r6 = ids.new()
    assert list(r6.answered) == [3, 4]
    ids.answered(r1)
    r7 = ids.new()
    # r5 (seq 5) is the lowest unanswered now: 3 and 4 are covered by acked
    assert (r7.acked, list(r7.answered)) == (4, [])
    assert r1.acked == 0


def test_answering_a_request_drops_only_the_seqs_it_carried() -> None:
    ids = RequestIds(1)
    ids.new()  # seq 1, open
    r2 = ids.new()
    ids.answered(r2)
    r3 = ids.new()  # carries [2]
    r4 = ids.new()  # carries [2]
    ids.answered(r4)  # drops 2, adds 4
    r5 = ids.new()
    assert list(r3.answered) == [2]
    assert list(r5.answered) == [4]
    ids.answered(r3)  # carried 2 (already gone): adds 3, keeps 4
    assert sorted(ids.new().answered) == [3, 4]


def test_at_most_256_answered_seqs_per_request_the_rest_go_later() -> None:
    ids = RequestIds(1)
    ids.new()  # seq 1 stays open
    batch = [ids.new() for _ in range(300)]  # seqs 2..301, none carries anything
    assert all(len(r.answered) == 0 for r in batch)
    for r in batch:
        ids.answered(r)
    first = ids.new()  # seq 302
    assert list(first.answered) == list(range(2, 258))
    second = ids.new()  # seq 303: first not answered, the same 256 again
    assert list(second.answered) == list(range(2, 258))
    ids.answered(first)
    third = ids.new()
    assert list(third.answered) == [*range(258, 302), 302]
    assert all(s > third.acked for s in third.answered)


def test_answering_a_request_twice_reports_it_once() -> None:
    ids = RequestIds(1)
    ids.new()  # seq 1 stays open
    r2 = ids.new()
    ids.answered(r2)
    ids.answered(r2)
    assert list(ids.new().answered) == [2]


def test_outstanding_counts_unanswered_requests() -> None:
    ids = RequestIds(1)
    a, b = ids.new(), ids.new()
    assert ids.outstanding == 2
    ids.answered(a)
    ids.answered(b)
    assert ids.outstanding == 0


# ---------------------------------------------------------------------- SessionCore


def test_a_new_session_is_connected_until_open_sent_plus_ttl() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0, opened_sent_at=99.0)
    assert (core.id, core.ttl) == (7, 10.0)
    assert core.state is CONNECTED
    assert core.alive()
    assert core.alive_until == 109.0


def test_acknowledged_extends_alive_until_from_the_send_time() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    clock.advance(4.0)
    core.acknowledged(103.0)  # acknowledged now, sent a second ago
    assert core.alive_until == 113.0
    clock.advance(8.5)  # 112.5: past the first deadline, within the new one
    assert core.state is CONNECTED


def test_alive_until_never_shrinks() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    core.acknowledged(105.0)
    core.acknowledged(101.0)  # a late answer to an older keep-alive
    assert core.alive_until == 115.0


def test_a_keep_alive_is_needless_within_an_interval_of_the_last_renewal() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=9.0, opened_sent_at=100.0)  # one keep-alive every 3 s
    assert core.next_keep_alive(100.0) == 103.0  # nothing renewed it since the open
    core.acknowledged(102.5)  # a write on the stream renewed it
    assert core.next_keep_alive(100.0) == 105.5
    assert core.next_keep_alive(105.5) == 108.5  # a keep-alive sent after the renewal
    core.acknowledged(101.0)  # an older renewal moves nothing
    assert core.next_keep_alive(100.0) == 105.5


def test_keep_alive_failed_suspends_before_alive_until() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    clock.advance(5.0)
    core.keep_alive_failed()
    assert core.state is SUSPENDED
    assert core.alive()  # suspended is not lost
    core.acknowledged(104.0)
    assert core.state is CONNECTED
    assert core.alive_until == 114.0


def test_state_becomes_lost_when_the_clock_passes_alive_until_with_no_call() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    clock.advance(9.999)
    assert core.state is CONNECTED
    clock.advance(0.002)
    assert core.state is LOST
    assert not core.alive()


def test_a_suspended_session_becomes_lost_at_alive_until() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    core.keep_alive_failed()
    clock.advance(11.0)
    assert not core.alive()
    assert core.state is LOST


def test_keep_alive_failed_after_alive_until_is_lost_not_suspended() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    seen = Recorder()
    core.add_listener(seen)
    clock.advance(12.0)
    core.keep_alive_failed()
    assert seen.states == [LOST]
    assert core.state is LOST


def test_expire_is_lost_and_final() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    core.expire()
    assert core.state is LOST
    clock.advance(2.0)
    core.acknowledged(clock())  # a late acknowledgement does not revive it
    assert core.state is LOST
    assert core.alive_until == 110.0  # nor extend it
    core.keep_alive_failed()
    assert core.state is LOST
    assert not core.alive()


def test_lost_by_deadline_is_final_too() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    clock.advance(10.5)
    assert core.state is LOST
    core.acknowledged(clock())
    assert core.state is LOST
    clock.now = 100.0  # even if the clock looked earlier again
    assert core.state is LOST


def test_closed_is_lost() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    seen = Recorder()
    core.add_listener(seen)
    core.closed()
    assert core.state is LOST
    assert not core.alive()
    core.acknowledged(clock())
    assert core.state is LOST
    assert seen.states == [LOST]


# ---------------------------------------------------------------------- listeners


def test_listeners_are_called_once_per_change_with_the_new_state() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    first, second = Recorder(), Recorder()
    core.add_listener(first)
    core.add_listener(second)
    core.acknowledged(100.0)  # CONNECTED -> CONNECTED: no change
    core.keep_alive_failed()
    core.keep_alive_failed()  # still SUSPENDED: no change
    core.acknowledged(101.0)
    core.acknowledged(102.0)  # still CONNECTED
    core.expire()
    core.expire()
    core.closed()
    assert first.states == [SUSPENDED, CONNECTED, LOST]
    assert second.states == first.states


def test_lost_by_deadline_is_reported_once_however_often_the_state_is_read() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    seen = Recorder()
    core.add_listener(seen)
    clock.advance(20.0)
    for _ in range(3):
        assert core.state is LOST
    assert not core.alive()
    core.expire()
    assert seen.states == [LOST]


def test_a_raising_listener_does_not_break_the_others(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    calls: list[SessionState] = []

    def broken(state: SessionState) -> None:
        calls.append(state)
        raise RuntimeError("listener bug")

    before, after = Recorder(), Recorder()
    core.add_listener(before)
    core.add_listener(broken)
    core.add_listener(after)
    with caplog.at_level(logging.ERROR, logger="turnstile.client.session_state"):
        core.keep_alive_failed()
        core.expire()
    assert calls == [SUSPENDED, LOST]
    assert before.states == after.states == [SUSPENDED, LOST]
    assert core.state is LOST
    assert "session listener failed" in caplog.text


def test_a_listener_added_later_sees_only_later_changes() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    core.keep_alive_failed()
    seen = Recorder()
    core.add_listener(seen)
    core.acknowledged(100.0)
    assert seen.states == [CONNECTED]


def test_a_late_acknowledgement_cannot_undo_an_unobserved_lost() -> None:
    """Past alive_until the session is LOST whether or not anyone looked in between."""
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    clock.advance(10.5)
    core.acknowledged(103.0)  # a reply to a keep-alive sent before the deadline, seen after it
    assert core.state is LOST


# ---------------------------------------------------------------------- a write's request id


def reported(core: SessionCore, seq: int) -> bool:
    """Whether the next request reports ``seq`` answered (through acked or answered)."""
    probe = core.requests.new()
    return probe.acked >= seq or seq in probe.answered


def end_write(
    core: SessionCore, request: pb.RequestId | None, outcome: BaseException | None
) -> pb.RequestId:
    """One write under ``core.writing(request)`` that ends with ``outcome`` (None: answered)."""
    try:
        with core.writing(request) as rid:
            if outcome is not None:
                raise outcome
    except BaseException as error:
        assert error is outcome
    return rid


@pytest.mark.parametrize(
    "outcome", [None, NotHolderError("token 7"), UnknownOutcomeError("lost"), KeyboardInterrupt()]
)
def test_a_fresh_write_id_is_reported_answered_however_the_write_ends(
    outcome: BaseException | None,
) -> None:
    """Nothing sends a fresh id again after its write, answered or given up."""
    core = core_at(FakeClock())
    rid = end_write(core, None, outcome)
    assert reported(core, rid.seq)


@pytest.mark.parametrize(
    ("outcome", "known"),
    [
        (None, True),
        (NotHolderError("token 7"), True),
        (UnknownOutcomeError("lost"), False),
        (UnavailableError("no leader"), False),
        (KeyboardInterrupt(), False),
        (from_rpc_error(transport(grpc.StatusCode.INTERNAL, "stream reset")), False),
        (from_rpc_error(transport(grpc.StatusCode.UNKNOWN, "Exception calling")), False),
        (from_rpc_error(transport(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")), True),
    ],
    ids=[
        "answered",
        "not-holder",
        "unknown-outcome",
        "unavailable",
        "interrupted",
        "internal-status",
        "unknown-status",
        "unimplemented",
    ],
)
def test_a_callers_write_id_stays_open_until_its_outcome_is_known(
    outcome: BaseException | None, known: bool
) -> None:
    """The caller sends it again later, and the cluster refuses an id reported answered."""
    core = core_at(FakeClock())
    request = core.requests.new()
    assert end_write(core, request, outcome) is request
    assert reported(core, request.seq) is known


def test_a_write_refused_with_session_expired_loses_the_session() -> None:
    core = core_at(FakeClock())
    with pytest.raises(SessionExpiredError), core.writing():
        raise SessionExpiredError("gone")
    assert core.state is LOST


# ---------------------------------------------------------------------- pending writes


def test_an_abandon_is_the_callers_to_send_until_a_send_leaves_its_outcome_unknown() -> None:
    """One sender at a time: the keep-alive loop sends only what was handed to it, and ends
    it when its outcome is known; then both ids are answered."""
    core = core_at(FakeClock())
    acquire = core.requests.new()
    abandon = core.abandoning("unit", acquire)
    assert abandon.message() == pb.AbandonRequest(name="unit", acquire_seq=acquire.seq)
    assert core.pending_writes() == []  # the caller sends it first
    core.pending_answered(abandon, UnavailableError("no leader"))
    assert core.pending_writes() == [abandon]
    assert core.requests.outstanding == 2
    core.pending_answered(abandon, UnavailableError("still no leader"))
    assert core.pending_writes() == [abandon]
    core.pending_answered(abandon, None)
    assert core.pending_writes() == []
    assert core.requests.outstanding == 0


@pytest.mark.parametrize(
    "error",
    [
        from_rpc_error(transport(grpc.StatusCode.INTERNAL, "RST_STREAM")),
        from_rpc_error(transport(grpc.StatusCode.UNKNOWN, "Exception calling application")),
        KeyboardInterrupt(),
    ],
    ids=["internal", "unknown", "interrupted"],
)
def test_an_abandon_whose_outcome_is_unknown_is_left_to_the_keep_alive_loop(
    error: BaseException,
) -> None:
    """It may not have landed, so the acquire may still hold its lock."""
    core = core_at(FakeClock())
    abandon = core.abandoning("unit", core.requests.new())
    core.pending_answered(abandon, error)
    assert core.pending_writes() == [abandon]
    assert core.requests.outstanding == 2


@pytest.mark.parametrize(
    "error",
    [
        FailedPreconditionError("upgrade first"),
        SessionExpiredError("gone"),
        from_rpc_error(transport(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_abandon_refused_by_the_cluster_ends_without_a_retry(
    error: TurnstileError, caplog: pytest.LogCaptureFixture
) -> None:
    core = core_at(FakeClock())
    abandon = core.abandoning("unit", core.requests.new())
    with caplog.at_level(logging.INFO, logger="turnstile.client.session_state"):
        core.pending_answered(abandon, error)
    assert core.pending_writes() == []
    assert core.requests.outstanding == 0
    if isinstance(error, FailedPreconditionError):
        assert "does not support it yet" in caplog.text


def test_a_pending_release_ends_with_its_answer_and_reports_its_id() -> None:
    core = core_at(FakeClock())
    release = PendingRelease("unit", 7, core.requests.new())
    assert release.message() == pb.ReleaseRequest(name="unit", token=7)
    core.resend_later(release)
    core.pending_answered(release, UnavailableError("no leader"))
    assert core.pending_writes() == [release]
    core.pending_answered(release, NotHolderError("token 7"))  # over already: nothing to do
    assert core.pending_writes() == []
    assert core.requests.outstanding == 0


def test_nothing_is_pending_once_the_session_is_over() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    abandon = core.abandoning("unit", core.requests.new())
    core.resend_later(abandon)
    clock.advance(11.0)
    assert core.pending_writes() == []
    core.pending_answered(abandon, UnavailableError("no leader"))  # a send that was in flight
    assert core.requests.outstanding == 0


def test_pending_writes_may_take_the_keep_alive_loop_until_its_next_send_only() -> None:
    clock = FakeClock(100.0)
    core = core_at(clock, ttl=10.0)
    assert core.resend_deadline(103.0) == 3.0
    assert core.resend_deadline(100.0) is None
    clock.advance(5.0)
    assert core.resend_deadline(104.0) is None
    assert core.resend_deadline(200.0) == 5.0  # never past the session's deadline either
