"""Client.invoke / Client.write against a scripted fake stub, plus acquire_timing and
member_bytes.

``Stubs.method`` is replaced by a fake whose methods play a script of outcomes (a response, or
a grpc-like error built by the server's ``to_status``); the retry policy runs on a fake clock
whose ``sleep`` only advances it. No channel is opened and nothing waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from turnstile.client.client import Client
from turnstile.client.core import MAX_WAIT_MS, Stubs, acquire_timing, member_bytes
from turnstile.client.errors import (
    ClosedError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    NotHolderError,
    SessionExpiredError,
    TurnstileError,
    UnavailableError,
    UnknownOutcomeError,
)
from turnstile.client.retry import RetryPolicy
from turnstile.client.routes import Route, route_of
from turnstile.client.session_state import SessionCore, SessionState
from turnstile.cluster.errors import to_status
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.metadata import LEADER_METADATA_KEY
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

A, B, C, D = "a:7001", "b:7001", "c:7001", "d:7001"


class FakeClock:
    """A manual clock: ``clock()`` reads it, ``sleep(s)`` records the pause and advances it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeRpcError(grpc.RpcError):
    """What a failed sync call raises: a ``grpc.RpcError`` that is also a ``grpc.Call``."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self._metadata = tuple(metadata)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata


def refused(reason: Reason, detail: str = "refused", leader: str = "") -> FakeRpcError:
    """The error a client sees when the server refuses with ``reason``."""
    status = to_status(reason, detail, {LEADER_METADATA_KEY: leader} if leader else None)
    return FakeRpcError(status.code, status.details, status.trailing_metadata)


def transport(code: grpc.StatusCode, detail: str = "connection refused") -> FakeRpcError:
    """A failure without a Turnstile reason (no server reached, or a timeout)."""
    return FakeRpcError(code, detail)


@dataclass
class Call:
    endpoint: str
    service: str
    method: str
    request: Any
    timeout: float
    metadata: tuple[tuple[str, str], ...] = ()


#: A scripted outcome: a response, an exception to raise, or a function of the call giving one.
Outcome = Any


class FakeCluster:
    """Plays ``outcomes`` in order, one per call, whatever endpoint is called; records calls."""

    def __init__(self, outcomes: Sequence[Outcome] | Iterator[Outcome]) -> None:
        self._outcomes = iter(outcomes)
        self.calls: list[Call] = []

    def method(self, endpoint: str, route: Route) -> Any:
        return getattr(FakeStub(self, endpoint, route.service), route.method)

    def play(self, call: Call) -> Any:
        self.calls.append(call)
        outcome = next(self._outcomes, None)
        if outcome is None:
            raise AssertionError(f"unexpected call {call}")
        if callable(outcome) and not isinstance(outcome, BaseException):
            outcome = outcome(call)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @property
    def endpoints(self) -> list[str]:
        return [c.endpoint for c in self.calls]

    @property
    def timeouts(self) -> list[float]:
        return [c.timeout for c in self.calls]


class FakeStub:
    def __init__(self, cluster: FakeCluster, endpoint: str, service: str) -> None:
        self._cluster = cluster
        self._endpoint = endpoint
        self._service = service

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(request: Any, timeout: float, metadata: tuple[tuple[str, str], ...]) -> Any:
            return self._cluster.play(
                Call(self._endpoint, self._service, method, request, timeout, metadata)
            )

        return call


def always(outcome: Callable[[Call], Outcome]) -> Iterator[Outcome]:
    """An endless script: ``outcome(call)`` for every call."""
    while True:
        yield outcome


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
    outcomes: Sequence[Outcome] | Iterator[Outcome],
    **retry: Any,
) -> tuple[Client, FakeCluster]:
    """A client on endpoints A, B, C whose calls play ``outcomes``; no jitter, 1 s deadline."""
    settings: dict[str, Any] = {
        "deadline": 1.0,
        "initial_backoff": 0.125,
        "max_backoff": 1.0,
        "multiplier": 2.0,
        "jitter": 0.5,
        "attempt_timeout": 2.0,
        "clock": clock,
        "sleep": clock.sleep,
        "random": lambda: 0.0,
    }
    settings.update(retry)
    cluster = FakeCluster(outcomes)
    monkeypatch.setattr(
        Stubs,
        "method",
        lambda _self, endpoint, request: cluster.method(endpoint, route_of(request)),
    )
    client = Client([A, B, C], retry=RetryPolicy(**settings), name="unit-test")
    return client, cluster


def session_on(clock: FakeClock, session_id: int = 42) -> SimpleNamespace:
    """The minimal stand-in for a ``Session`` that ``write`` needs: its ``core``."""
    return SimpleNamespace(core=SessionCore(session_id, 10.0, clock(), clock))


REQUEST = pb.ValidateRequest(name="work-unit-42", token=7)
RESPONSE = pb.ValidateResponse(valid=True)
NON_RETRYABLE = {
    Reason.SESSION_EXPIRED: SessionExpiredError,
    Reason.NOT_HOLDER: NotHolderError,
    Reason.NOT_FOUND: NotFoundError,
    Reason.INVALID_ARGUMENT: InvalidArgumentError,
}


# ---------------------------------------------------------------------- invoke


def test_invoke_calls_the_first_endpoint_and_pins_it_as_leader(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, cluster = make_client(monkeypatch, clock, [RESPONSE])
    assert client.invoke(REQUEST) is RESPONSE
    (call,) = cluster.calls
    assert (call.endpoint, call.service, call.method) == (A, "locks", "Validate")
    assert call.request is REQUEST
    assert call.timeout == 1.0  # the policy's 2 s, capped by the 1 s deadline
    assert client.router.leader == A
    assert clock.sleeps == []


def test_invoke_follows_a_not_leader_hint_to_the_hinted_endpoint(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = [refused(Reason.NOT_LEADER, "ask c", leader=C), RESPONSE, RESPONSE]
    client, cluster = make_client(monkeypatch, clock, outcomes)
    assert client.invoke(REQUEST) is RESPONSE
    assert cluster.endpoints == [A, C]  # not B, the next in rotation
    assert [c.request for c in cluster.calls] == [REQUEST, REQUEST]
    assert client.router.leader == C
    client.invoke(REQUEST)
    assert cluster.endpoints == [A, C, C]  # the next call goes straight to the leader


def test_invoke_follows_a_hint_to_an_endpoint_it_was_not_given(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = [refused(Reason.NOT_LEADER, "ask d", leader=D), RESPONSE]
    client, cluster = make_client(monkeypatch, clock, outcomes)
    assert client.invoke(REQUEST) is RESPONSE
    assert cluster.endpoints == [A, D]
    assert D in client.router.endpoints


def test_invoke_retries_unavailable_on_the_next_endpoints_with_backoff(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    outcomes = [
        transport(grpc.StatusCode.UNAVAILABLE),
        refused(Reason.UNAVAILABLE, "no leader"),
        refused(Reason.NOT_LEADER, "no leader known"),  # no hint: rotate
        RESPONSE,
    ]
    client, cluster = make_client(monkeypatch, clock, outcomes, deadline=10.0)
    assert client.invoke(REQUEST) is RESPONSE
    assert cluster.endpoints == [A, B, C, A]  # A was unreachable, but 0.875 s ago (0.5 s avoided)
    assert clock.sleeps == [0.125, 0.25, 0.5]
    assert client.router.leader == A


def test_invoke_tells_the_caller_of_each_unreachable_or_stalled_node_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """What lets a keep-alive announce SUSPENDED at its first failed attempt, not at its
    deadline; a redirect or a refusal by a reachable node is no such failure."""
    outcomes = [
        transport(grpc.StatusCode.UNAVAILABLE),
        refused(Reason.NOT_LEADER, "ask c", leader=C),
        transport(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        refused(Reason.UNAVAILABLE, "no leader"),
        RESPONSE,
    ]
    client, _ = make_client(monkeypatch, clock, outcomes, deadline=10.0)
    told: list[float] = []
    assert client.invoke(REQUEST, unreachable=lambda: told.append(clock())) is RESPONSE
    assert len(told) == 2


@pytest.mark.parametrize(
    "error",
    [
        refused(Reason.UNKNOWN_OUTCOME, "leader lost mid-commit"),
        transport(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        transport(grpc.StatusCode.CANCELLED, "Cancelled"),
    ],
    ids=["unknown-outcome", "deadline-exceeded", "cancelled"],
)
def test_invoke_retries_every_retryable_error(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, error: FakeRpcError
) -> None:
    client, cluster = make_client(monkeypatch, clock, [error, RESPONSE])
    assert client.invoke(REQUEST) is RESPONSE
    assert cluster.endpoints == [A, B]


@pytest.mark.parametrize("reason", list(NON_RETRYABLE), ids=str)
def test_invoke_raises_a_non_retryable_error_at_once(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, reason: Reason
) -> None:
    client, cluster = make_client(monkeypatch, clock, [refused(reason, "no"), RESPONSE])
    with pytest.raises(NON_RETRYABLE[reason]) as raised:
        client.invoke(REQUEST)
    assert raised.value.reason is reason
    assert not isinstance(raised.value, grpc.RpcError)
    assert len(cluster.calls) == 1
    assert clock.sleeps == []
    assert client.router.target() == A  # a refusal is no reason to move on


def test_not_holder_is_one_call_and_a_not_holder_error(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, cluster = make_client(monkeypatch, clock, [refused(Reason.NOT_HOLDER, "token 7")])
    with pytest.raises(NotHolderError, match="NOT_HOLDER: token 7"):
        client.invoke(REQUEST)
    assert len(cluster.calls) == 1


def test_invoke_gives_up_with_the_last_error_when_the_deadline_passes(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    errors = [transport(grpc.StatusCode.UNAVAILABLE, f"attempt {n}") for n in range(1, 10)]
    client, cluster = make_client(monkeypatch, clock, errors, deadline=1.0)
    with pytest.raises(UnavailableError) as raised:
        client.invoke(REQUEST)
    assert str(raised.value) == "UNAVAILABLE: attempt 4"
    assert len(cluster.calls) == 4
    assert clock.sleeps == [0.125, 0.25, 0.5]  # 1.0 more would pass the deadline
    assert clock.now <= 1.0
    assert cluster.timeouts == [1.0, 0.875, 0.625, 0.125]  # each within what remains


def test_invoke_gives_up_on_paused_nodes_within_the_deadline(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """Every node hangs until the attempt times out: the call still ends by its deadline."""

    def hang(call: Call) -> FakeRpcError:
        clock.advance(call.timeout)
        return transport(grpc.StatusCode.DEADLINE_EXCEEDED, f"timed out after {call.timeout}")

    client, cluster = make_client(
        monkeypatch, clock, always(hang), deadline=5.0, attempt_timeout=2.0
    )
    with pytest.raises(DeadlineExceededError):
        client.invoke(REQUEST)
    assert cluster.timeouts == [2.0, 2.0, 0.625]  # the last one gets only what remains
    assert cluster.endpoints == [A, B, C]
    assert clock.now == 5.0


def test_invoke_honours_a_per_call_deadline(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, cluster = make_client(
        monkeypatch, clock, always(lambda _call: transport(grpc.StatusCode.UNAVAILABLE))
    )
    with pytest.raises(UnavailableError):
        client.invoke(REQUEST, deadline=0.5)
    assert len(cluster.calls) == 3
    assert clock.sleeps == [0.125, 0.25]
    assert cluster.timeouts[0] == 0.5


def test_invoke_passes_a_per_call_attempt_timeout(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, cluster = make_client(monkeypatch, clock, [RESPONSE, RESPONSE], deadline=30.0)
    client.invoke(REQUEST, attempt_timeout=0.25)
    client.invoke(REQUEST, attempt_timeout=20.0)
    assert cluster.timeouts == [0.25, 20.0]


def test_invoke_on_a_closed_client_raises_closed_error(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client = Client([A], retry=RetryPolicy(clock=clock, sleep=clock.sleep))
    client.close()
    with pytest.raises(ClosedError):
        client.invoke(REQUEST)
    assert clock.sleeps == []


def test_invoke_treats_a_corrupt_rich_status_as_its_code(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    corrupt = FakeRpcError(
        grpc.StatusCode.UNAVAILABLE, "bad proxy", [("grpc-status-details-bin", b"\xff\xff")]
    )
    client, cluster = make_client(monkeypatch, clock, [corrupt, RESPONSE])
    assert client.invoke(REQUEST) is RESPONSE
    assert cluster.endpoints == [A, B]


# ---------------------------------------------------------------------- write


def acquire() -> pb.AcquireRequest:
    return pb.AcquireRequest(name="work-unit-42", wait_ms=0)


def test_write_reuses_the_same_request_id_across_retries_and_marks_it_answered(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    granted = pb.AcquireResponse(acquired=True, token=9)
    outcomes = [
        transport(grpc.StatusCode.UNAVAILABLE),
        refused(Reason.NOT_LEADER, "ask c", leader=C),
        refused(Reason.UNKNOWN_OUTCOME, "leader lost mid-commit"),
        granted,
    ]
    client, cluster = make_client(monkeypatch, clock, outcomes, deadline=10.0)
    session = session_on(clock)
    request = acquire()
    assert client.write(request, session=session) is granted
    assert all(c.request is request for c in cluster.calls)  # built once, numbered once
    sent = [c.request.request for c in cluster.calls]
    assert len(sent) == 4
    assert {(r.session_id, r.seq) for r in sent} == {(42, 1)}
    # B's hint leads to C; C's unknown outcome (it lost office mid-commit) moves on to A
    assert cluster.endpoints == [A, B, C, A]
    assert session.core.requests.outstanding == 0
    following = session.core.requests.new()
    assert (following.seq, following.acked) == (2, 1)


def test_write_numbers_successive_writes_and_acks_the_answered_ones(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    ok = pb.ReleaseResponse()
    client, cluster = make_client(monkeypatch, clock, [ok, ok, ok])
    session = session_on(clock)
    for _ in range(3):
        client.write(pb.ReleaseRequest(name="x"), session=session)
    ids = [c.request.request for c in cluster.calls]
    assert [(r.seq, r.acked) for r in ids] == [(1, 0), (2, 1), (3, 2)]


def test_write_marks_the_request_answered_after_a_non_retryable_error(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, cluster = make_client(monkeypatch, clock, [refused(Reason.NOT_HOLDER, "token 9")])
    session = session_on(clock)
    with pytest.raises(NotHolderError):
        client.write(acquire(), session=session)
    assert len(cluster.calls) == 1
    assert session.core.requests.outstanding == 0
    assert session.core.requests.new().acked == 1
    assert session.core.state is SessionState.CONNECTED


def test_write_given_up_at_the_deadline_is_marked_answered_too(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, cluster = make_client(
        monkeypatch, clock, always(lambda _call: refused(Reason.UNKNOWN_OUTCOME, "lost"))
    )
    session = session_on(clock)
    with pytest.raises(UnknownOutcomeError):
        client.write(acquire(), session=session)
    assert len(cluster.calls) == 4
    assert {c.request.request.seq for c in cluster.calls} == {1}
    assert session.core.requests.new().acked == 1


def test_write_under_the_callers_request_id_leaves_it_open_when_the_outcome_is_unknown(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """The caller sends it again later: reported answered, the cluster would refuse it."""
    lost = refused(Reason.UNKNOWN_OUTCOME, "lost")
    client, cluster = make_client(monkeypatch, clock, [lost] * 4 + [pb.AcquireResponse()])
    session = session_on(clock)
    request = session.core.requests.new()
    with pytest.raises(UnknownOutcomeError):
        client.write(acquire(), session=session, request_id=request)
    assert {c.request.request.seq for c in cluster.calls} == {request.seq}
    assert session.core.requests.outstanding == 1
    client.write(acquire(), session=session, request_id=request)
    assert cluster.calls[-1].request.request.seq == request.seq
    assert session.core.requests.outstanding == 0


def test_write_refused_with_session_expired_loses_the_session(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, _ = make_client(monkeypatch, clock, [refused(Reason.SESSION_EXPIRED, "gone")])
    session = session_on(clock)
    with pytest.raises(SessionExpiredError):
        client.write(acquire(), session=session)
    assert session.core.state is SessionState.LOST
    assert session.core.requests.outstanding == 0


# ---------------------------------------------------------------------- acquire_timing


@pytest.mark.parametrize(
    ("blocking", "timeout", "wait_ms"),
    [
        (False, -1, 0),
        (True, -1, MAX_WAIT_MS),
        (True, 2.5, 2500),
        (True, 0, 0),
        (True, 0.25, 250),
        (True, 10 * 24 * 3600.0, MAX_WAIT_MS),  # longer than one Acquire asks for: capped
    ],
)
def test_acquire_timing_matches_threading_lock_arguments(
    blocking: bool, timeout: float, wait_ms: int
) -> None:
    assert acquire_timing(blocking, timeout) == wait_ms


def test_max_wait_is_one_day() -> None:
    assert MAX_WAIT_MS == 86_400_000


@pytest.mark.parametrize(
    ("blocking", "timeout"),
    [(False, 1), (False, 0), (True, -3), (True, -0.5)],
)
def test_acquire_timing_refuses_what_threading_lock_refuses(blocking: bool, timeout: float) -> None:
    with pytest.raises(ValueError):
        acquire_timing(blocking, timeout)


# ---------------------------------------------------------------------- member_bytes


def test_member_bytes_encodes_str_as_utf8() -> None:
    assert member_bytes("key_foo") == b"key_foo"
    assert member_bytes("é€") == "é€".encode()
    assert member_bytes("é€") == b"\xc3\xa9\xe2\x82\xac"


def test_member_bytes_passes_bytes_unchanged() -> None:
    raw = b"\x00\xffbinary"
    assert member_bytes(raw) is raw


@pytest.mark.parametrize("member", [42, 1.5, None, bytearray(b"x"), ["a"]], ids=repr)
def test_member_bytes_refuses_other_types(member: object) -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        member_bytes(member)  # type: ignore[arg-type]


def test_errors_raised_by_invoke_are_turnstile_errors(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    client, _ = make_client(monkeypatch, clock, [transport(grpc.StatusCode.DATA_LOSS, "odd")])
    with pytest.raises(TurnstileError) as raised:
        client.invoke(REQUEST)
    assert not raised.value.retryable
    assert raised.value.__cause__ is None


def test_a_node_that_stalls_or_cannot_be_reached_has_its_channel_dropped(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """Closing the channel fails every other call still waiting on that node at once (they
    retry elsewhere, same request id); a refusal with a reason is an answer, not a stall."""
    outcomes = [
        transport(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        refused(Reason.NOT_LEADER, "no leader known"),
        transport(grpc.StatusCode.UNAVAILABLE),
        RESPONSE,
    ]
    client, cluster = make_client(
        monkeypatch, clock, outcomes, deadline=10.0, initial_backoff=0.01, max_backoff=0.04
    )
    dropped: list[str] = []
    monkeypatch.setattr(Stubs, "drop", lambda _self, endpoint: dropped.append(endpoint))
    assert client.invoke(REQUEST) is RESPONSE
    assert cluster.endpoints == [A, B, C, B]  # A timed out (2 s avoided), C refused (0.5 s)
    assert dropped == [A, C]
    assert client.router.stalled(A) and client.router.stalled(C)


def test_dropping_forgets_the_channel_and_its_stubs() -> None:
    opened: list[str] = []

    def open_channel(endpoint: str) -> Any:
        opened.append(endpoint)
        return grpc.insecure_channel(endpoint)  # lazy: nothing connects until a call

    stubs: Stubs[Any] = Stubs(open_channel)
    stubs.method(A, REQUEST)
    channel = stubs.drop(A)
    assert channel is not None
    channel.close()
    assert stubs.drop(A) is None
    stubs.method(A, REQUEST)
    assert opened == [A, A]
    for left in stubs.close():
        left.close()
