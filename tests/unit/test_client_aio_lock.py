"""AsyncLock: its local queueing with a fake client, and late, lost or missing answers with
the real ``AsyncClient`` on a script (no cluster)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import grpc
import pytest
from test_client_calls import Call, FakeClock, FakeCluster, Outcome, refused, transport

from turnstile.client.aio import AsyncClient, AsyncLock, AsyncSession
from turnstile.client.errors import (
    InternalError,
    LockLostError,
    UnavailableError,
    UnknownOutcomeError,
    from_rpc_error,
)
from turnstile.client.retry import RetryPolicy
from turnstile.client.routes import route_of
from turnstile.client.session_state import SessionCore
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


class _Session:
    def __init__(self) -> None:
        self.core = SessionCore(1, 60.0, 0.0, clock=lambda: 1.0)
        self.id = 1

    def alive(self) -> bool:
        return True


class _Client:
    """Grants every Acquire at once and accepts every Release."""

    def __init__(self) -> None:
        self.retry = RetryPolicy(clock=lambda: 1.0)
        self._session = _Session()
        self._tokens = itertools.count(1)

    async def session(self) -> _Session:
        return self._session

    async def write(self, request: Any, **_: Any) -> Any:
        await asyncio.sleep(0)
        if isinstance(request, pb.AcquireRequest):
            return pb.AcquireResponse(acquired=True, token=next(self._tokens))
        return pb.ReleaseResponse()


def test_a_non_blocking_acquire_does_not_queue_behind_a_waiting_task() -> None:
    async def scenario() -> None:
        lock = AsyncLock(_Client(), "L")  # type: ignore[arg-type]
        assert await lock.acquire()
        waiting = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.01)
        await lock.release()
        started = asyncio.get_running_loop().time()
        assert not await lock.acquire(blocking=False)
        assert asyncio.get_running_loop().time() - started < 0.05
        assert await asyncio.wait_for(waiting, 1)
        assert lock.token == 2
        await lock.release()
        assert await lock.acquire(blocking=False)

    asyncio.run(scenario())


# ---------------------------------------------------------------------- the real AsyncClient
# Its ``invoke`` plays a script (one outcome per write, as if each were its last retry) and
# its session's keep-alive task is off; the sync twins of these tests are in test_client_lock.

OPENED = pb.OpenSessionResponse(session_id=42, ttl_ms=10_000)
GRANTED = pb.AcquireResponse(acquired=True, token=7)


def async_client(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, outcomes: list[Outcome]
) -> tuple[AsyncClient, FakeCluster]:
    cluster = FakeCluster([OPENED, *outcomes])

    async def invoke(_self: AsyncClient, request: Any, **_: Any) -> Any:
        await asyncio.sleep(0)
        route = route_of(request)
        try:
            return cluster.play(Call("", route.service, route.method, request, 0.0))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def no_keep_alive(_self: AsyncSession) -> None:
        return None

    monkeypatch.setattr(AsyncClient, "invoke", invoke)
    monkeypatch.setattr(AsyncSession, "_keep_alive", no_keep_alive)
    return AsyncClient(["a:7001"], retry=RetryPolicy(clock=clock, sleep=clock.sleep)), cluster


def calls_of(cluster: FakeCluster, method: str) -> list[Call]:
    return [c for c in cluster.calls if c.method == method]


def test_a_grant_after_the_max_hold_passed_raises_lock_lost_and_is_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(100.0)

    def late(_call: Call) -> pb.AcquireResponse:
        clock.advance(1.5)
        return GRANTED

    client, cluster = async_client(monkeypatch, clock, [late, pb.ReleaseResponse(), GRANTED])

    async def scenario() -> None:
        lock = client.lock("unit", max_hold=1.0)
        with pytest.raises(LockLostError, match=r"past its max_hold of 1\.0s"):
            await lock.acquire()
        (give_back,) = calls_of(cluster, "Release")
        assert give_back.request.token == 7
        assert not lock.locked()
        assert await lock.acquire(blocking=False)

    asyncio.run(scenario())


def test_a_release_whose_outcome_was_unknown_is_resent_with_its_request_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(100.0)
    lost_answer = refused(Reason.UNKNOWN_OUTCOME, "leader lost mid-commit")
    client, cluster = async_client(monkeypatch, clock, [GRANTED, lost_answer, pb.ReleaseResponse()])

    async def scenario() -> None:
        lock = client.lock("unit")
        assert await lock.acquire()
        with pytest.raises(UnavailableError):
            await lock.release()
        session = await client.session()
        seq = calls_of(cluster, "Release")[0].request.request.seq
        assert seq not in session.core.requests.new().answered
        await lock.release()  # the cluster answers the resent id with its first outcome
        assert {c.request.request.seq for c in calls_of(cluster, "Release")} == {seq}
        assert not lock.locked()

    asyncio.run(scenario())


def test_an_acquire_that_ends_without_an_answer_is_abandoned_and_its_error_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(100.0)
    outcomes = [refused(Reason.UNKNOWN_OUTCOME, "lost"), pb.AbandonResponse(removed=True)]
    client, cluster = async_client(monkeypatch, clock, outcomes)

    async def scenario() -> None:
        with pytest.raises(UnknownOutcomeError):
            await client.lock("unit").acquire(timeout=5)
        acquire = calls_of(cluster, "Acquire")[0].request.request
        (abandon,) = calls_of(cluster, "Abandon")
        assert (abandon.request.name, abandon.request.acquire_seq) == ("unit", acquire.seq)
        session = await client.session()
        assert session.core.pending_writes() == []
        assert session.core.requests.outstanding == 0

    asyncio.run(scenario())


def test_a_cancelled_acquire_is_left_to_the_keep_alive_task_to_abandon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task cancelled mid-wait (``asyncio.wait_for`` with a shorter timeout than the wait):
    the cancellation goes on at once, and the woken keep-alive task abandons the acquire."""
    clock = FakeClock(100.0)
    client, cluster = async_client(monkeypatch, clock, [])

    async def scenario() -> None:
        session = await client.session()
        never = asyncio.Event()

        async def blocked(*_: Any, **__: Any) -> Any:
            await never.wait()

        monkeypatch.setattr(client, "invoke", blocked)
        lock = client.lock("unit")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lock.acquire(), 0.05)
        (pending,) = session.core.pending_writes()
        assert pending.name == "unit"
        assert calls_of(cluster, "Abandon") == []
        assert session._wake.is_set()
        assert not lock.locked()

    asyncio.run(scenario())


def reported(session: AsyncSession, seq: int) -> bool:
    """Whether the session's next request reports ``seq`` answered; the probe is given up."""
    probe = session.core.requests.new()
    session.core.requests.answered(probe)
    return probe.acked >= seq or seq in probe.answered


def test_an_acquire_failing_with_an_internal_status_is_abandoned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """INTERNAL without a Turnstile reason: the server failed mid-call, the grant may have
    landed. Raised as before, but abandoned like an unknown outcome."""
    clock = FakeClock(100.0)
    outcomes = [transport(grpc.StatusCode.INTERNAL, "RST_STREAM"), pb.AbandonResponse()]
    client, cluster = async_client(monkeypatch, clock, outcomes)

    async def scenario() -> None:
        with pytest.raises(InternalError):
            await client.lock("unit").acquire(timeout=5)
        acquire = calls_of(cluster, "Acquire")[0].request.request
        (abandon,) = calls_of(cluster, "Abandon")
        assert abandon.request.acquire_seq == acquire.seq
        session = await client.session()
        assert session.core.requests.outstanding == 0

    asyncio.run(scenario())


def test_a_release_failing_with_an_unknown_status_is_still_held_and_resent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(100.0)
    crashed = transport(grpc.StatusCode.UNKNOWN, "Exception calling application")
    client, cluster = async_client(monkeypatch, clock, [GRANTED, crashed, pb.ReleaseResponse()])

    async def scenario() -> None:
        lock = client.lock("unit")
        assert await lock.acquire()
        with pytest.raises(InternalError):
            await lock.release()
        session = await client.session()
        seq = calls_of(cluster, "Release")[0].request.request.seq
        assert lock.locked()
        assert not reported(session, seq)
        await lock.release()
        assert {c.request.request.seq for c in calls_of(cluster, "Release")} == {seq}
        assert not lock.locked()

    asyncio.run(scenario())


def test_a_cancelled_release_is_left_to_the_keep_alive_task_to_resend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task cancelled inside ``release()`` (an ``async with`` block being cancelled): the
    object is free at once, and the Release id stays unanswered for the keep-alive task,
    woken to resend it."""
    clock = FakeClock(100.0)
    client, _ = async_client(monkeypatch, clock, [GRANTED])

    async def scenario() -> None:
        session = await client.session()
        lock = client.lock("unit")
        assert await lock.acquire()
        sent: list[pb.ReleaseRequest] = []
        never = asyncio.Event()

        async def blocked(request: Any, **_: Any) -> Any:
            sent.append(request)
            await never.wait()

        monkeypatch.setattr(client, "invoke", blocked)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lock.release(), 0.05)
        (release,) = sent
        assert not reported(session, release.request.seq)
        assert session._wake.is_set()
        (pending,) = session.core.pending_writes()
        assert pending.message() == pb.ReleaseRequest(name="unit", token=7)
        assert not lock.locked()
        assert not lock._local.locked()

    asyncio.run(scenario())


def test_extend_restarts_the_max_hold_from_its_send_and_a_lost_hold_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(100.0)
    outcomes = [GRANTED, pb.ExtendResponse(), refused(Reason.NOT_HOLDER, "token 7")]
    client, cluster = async_client(monkeypatch, clock, outcomes)

    async def scenario() -> None:
        lock = client.lock("unit", max_hold=1.0)
        assert await lock.acquire()
        assert lock.expires_at == 101.0
        clock.advance(0.5)
        await lock.extend(30.0)
        (extend,) = calls_of(cluster, "Extend")
        assert (extend.request.token, extend.request.max_hold_ms) == (7, 30_000)
        assert lock.expires_at == 130.5
        with pytest.raises(LockLostError, match="was lost"):
            await lock.extend(None)
        assert lock.expires_at == 130.5

    asyncio.run(scenario())


def test_extend_of_an_unlocked_lock_is_a_runtime_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = async_client(monkeypatch, FakeClock(100.0), [])

    async def scenario() -> None:
        with pytest.raises(RuntimeError):
            await client.lock("unit").extend(5.0)

    asyncio.run(scenario())
