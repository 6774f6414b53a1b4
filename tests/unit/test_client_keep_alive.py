"""The keep-alive loops of ``Session`` (a thread) and ``AsyncSession`` (a task) retrying the
Abandons of acquires given up on, with a fake client on real, short time (TTL 0.3 s: a
keep-alive every 0.1 s). No cluster and no sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from turnstile.client.aio import AsyncSession
from turnstile.client.errors import SessionExpiredError, TurnstileError, UnavailableError
from turnstile.client.session import Session, SessionCore, SessionState
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit

DONE = pb.AbandonResponse(released=True)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Script:
    """Answers keep-alives with ``keep_alive`` and Abandon writes with ``abandons`` in turn,
    the last one for good (an exception is raised); records each Abandon sent."""

    def __init__(self, abandons: list[Any], keep_alive: Any = None) -> None:
        self._abandons = abandons
        self._keep_alive = keep_alive or pb.KeepAliveResponse()
        self.abandons: list[pb.AbandonRequest] = []

    def invoked(self, method: str) -> Any:
        if method == "KeepAlive" and isinstance(self._keep_alive, TurnstileError):
            raise self._keep_alive
        return self._keep_alive

    def written(self, service: str, method: str, build: Any, request: pb.RequestId) -> Any:
        assert (service, method) == ("locks", "Abandon")
        self.abandons.append(build(request))
        outcome = self._abandons.pop(0) if len(self._abandons) > 1 else self._abandons[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class FakeClient(Script):
    def invoke(self, service: str, method: str, request: Any, **_: Any) -> Any:
        return self.invoked(method)

    def write(self, service: str, method: str, build: Any, *, request: Any, **_: Any) -> Any:
        return self.written(service, method, build, request)


class FakeAsyncClient(Script):
    async def invoke(self, service: str, method: str, request: Any, **_: Any) -> Any:
        return self.invoked(method)

    async def write(self, service: str, method: str, build: Any, *, request: Any, **_: Any) -> Any:
        return self.written(service, method, build, request)


def new_core(ttl: float) -> SessionCore:
    return SessionCore(42, ttl, time.monotonic())


def test_an_abandon_left_to_the_keep_alive_thread_is_sent_at_once() -> None:
    core = new_core(ttl=30.0)  # the next keep-alive is 10 s away
    client = FakeClient([DONE])
    session = Session(client, core)  # type: ignore[arg-type]
    try:
        acquire = core.requests.new()
        session.abandon_later("unit", acquire)
        wait_for(lambda: not core.pending_abandons(), timeout=2.0)
        (sent,) = client.abandons
        assert (sent.name, sent.acquire_seq, sent.request.session_id) == ("unit", acquire.seq, 42)
        assert core.requests.outstanding == 0
    finally:
        session.close()


def test_the_keep_alive_thread_retries_a_failed_abandon_under_its_request_id() -> None:
    core = new_core(ttl=0.3)
    client = FakeClient([UnavailableError("down"), UnavailableError("down"), DONE])
    session = Session(client, core)  # type: ignore[arg-type]
    try:
        session.abandon_later("unit", core.requests.new())
        wait_for(lambda: not core.pending_abandons())
        assert len(client.abandons) == 3
        assert len({a.request.seq for a in client.abandons}) == 1
        assert core.requests.outstanding == 0
        assert core.state is SessionState.CONNECTED
    finally:
        session.close()


def test_a_pending_abandon_ends_with_the_session() -> None:
    """A session that ends frees everything: the loop stops and nothing is pending."""
    core = new_core(ttl=0.3)
    client = FakeClient([UnavailableError("down")], keep_alive=SessionExpiredError("gone"))
    session = Session(client, core)  # type: ignore[arg-type]
    session.abandon_later("unit", core.requests.new())
    wait_for(session.lost.is_set)
    wait_for(lambda: not session._thread.is_alive())
    assert core.pending_abandons() == []


def test_the_keep_alive_task_sends_and_retries_an_abandon_under_its_request_id() -> None:
    async def scenario() -> None:
        core = new_core(ttl=0.3)
        client = FakeAsyncClient([UnavailableError("down"), DONE])
        session = AsyncSession(client, core)  # type: ignore[arg-type]
        acquire = core.requests.new()
        session.abandon_later("unit", acquire)
        for _ in range(500):
            if not core.pending_abandons():
                break
            await asyncio.sleep(0.01)
        assert [a.acquire_seq for a in client.abandons] == [acquire.seq, acquire.seq]
        assert len({a.request.seq for a in client.abandons}) == 1
        assert core.requests.outstanding == 0
        await session.close()

    asyncio.run(scenario())


def test_closing_a_session_wakes_its_keep_alive_thread_at_once() -> None:
    core = new_core(ttl=30.0)
    session = Session(FakeClient([DONE]), core)  # type: ignore[arg-type]
    started = time.monotonic()
    session.close()
    assert not session._thread.is_alive()
    assert time.monotonic() - started < 2.0
