"""The keep-alive loops of ``Session`` (a thread) and ``AsyncSession`` (a task) retrying the
Abandons of acquires given up on, with a fake client on real, short time (TTL 0.3 s: a
keep-alive every 0.1 s). No cluster and no sockets."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from turnstile.client.aio import AsyncSession
from turnstile.client.errors import (
    NotHolderError,
    SessionExpiredError,
    TurnstileError,
    UnavailableError,
)
from turnstile.client.routes import route_of
from turnstile.client.session import Session
from turnstile.client.session_state import SessionCore, SessionState
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit

DONE = pb.AbandonResponse(released=True)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Script:
    """Answers keep-alives with ``keep_alive``, and Abandon and Release writes with
    ``abandons`` and ``releases`` in turn, the last one for good (an exception is raised);
    records each write sent, and any two sends of one request id at once."""

    def __init__(
        self, abandons: list[Any], keep_alive: Any = None, releases: list[Any] | None = None
    ) -> None:
        self._outcomes = {"Abandon": abandons, "Release": releases or [pb.ReleaseResponse()]}
        self._keep_alive = keep_alive or pb.KeepAliveResponse()
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self.abandons: list[pb.AbandonRequest] = []
        self.releases: list[pb.ReleaseRequest] = []
        self.overlaps: list[int] = []

    def invoked(self, request: Any) -> Any:
        if isinstance(request, pb.KeepAliveRequest) and isinstance(
            self._keep_alive, TurnstileError
        ):
            raise self._keep_alive
        return self._keep_alive

    def sending(self, message: Any, request: pb.RequestId) -> Any:
        """Records the send, numbered as the client numbers it; the outcome to play (a
        response or an exception)."""
        method = route_of(message).method
        assert method in {"Abandon", "Release"}
        sent = type(message)()
        sent.CopyFrom(message)
        sent.request.CopyFrom(request)
        with self._lock:
            (self.abandons if method == "Abandon" else self.releases).append(sent)
            if request.seq in self._in_flight:
                self.overlaps.append(request.seq)
            self._in_flight.add(request.seq)
            outcomes = self._outcomes[method]
            return outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]

    def sent(self, request: pb.RequestId, outcome: Any) -> Any:
        with self._lock:
            self._in_flight.discard(request.seq)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class FakeClient(Script):
    #: How long the first write takes (a caller's try to a slow cluster).
    first_write_takes = 0.0

    def invoke(self, request: Any, **_: Any) -> Any:
        return self.invoked(request)

    def write(self, message: Any, *, request_id: Any, **_: Any) -> Any:
        outcome = self.sending(message, request_id)
        if len(self.abandons) + len(self.releases) == 1:
            time.sleep(self.first_write_takes)
        return self.sent(request_id, outcome)


class FakeAsyncClient(Script):
    first_write_takes = 0.0

    async def invoke(self, request: Any, **_: Any) -> Any:
        return self.invoked(request)

    async def write(self, message: Any, *, request_id: Any, **_: Any) -> Any:
        outcome = self.sending(message, request_id)
        if len(self.abandons) + len(self.releases) == 1:
            await asyncio.sleep(self.first_write_takes)
        return self.sent(request_id, outcome)


def new_core(ttl: float) -> SessionCore:
    return SessionCore(42, ttl, time.monotonic())


def test_an_abandon_left_to_the_keep_alive_thread_is_sent_at_once() -> None:
    core = new_core(ttl=30.0)  # the next keep-alive is 10 s away
    client = FakeClient([DONE])
    session = Session(client, core)  # type: ignore[arg-type]
    try:
        acquire = core.requests.new()
        session.abandon_later("unit", acquire)
        wait_for(lambda: not core.pending_writes(), timeout=2.0)
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
        wait_for(lambda: not core.pending_writes())
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
    assert core.pending_writes() == []


def test_the_keep_alive_task_sends_and_retries_an_abandon_under_its_request_id() -> None:
    async def scenario() -> None:
        core = new_core(ttl=0.3)
        client = FakeAsyncClient([UnavailableError("down"), DONE])
        session = AsyncSession(client, core)  # type: ignore[arg-type]
        acquire = core.requests.new()
        session.abandon_later("unit", acquire)
        for _ in range(500):
            if not core.pending_writes():
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


# ---------------------------------------------------------------------- one sender per id


def test_an_abandon_the_caller_is_sending_is_not_sent_by_the_keep_alive_thread_too() -> None:
    """The caller's try is slow and fails; meanwhile the keep-alive thread runs (every 0.1 s)
    but takes the Abandon over only once the caller's try has ended: were both to send it,
    the first to see its answer would report the id answered and the other's copy be
    refused."""
    core = new_core(ttl=0.3)
    client = FakeClient([UnavailableError("down"), DONE])
    client.first_write_takes = 0.35
    session = Session(client, core)  # type: ignore[arg-type]
    try:
        session.abandon("unit", core.requests.new())
        wait_for(lambda: core.requests.outstanding == 0)
        assert client.overlaps == []
        assert len(client.abandons) == 2
        assert len({a.request.seq for a in client.abandons}) == 1
        assert core.pending_writes() == []
    finally:
        session.close()


def test_an_abandon_the_caller_task_is_sending_is_not_sent_by_the_keep_alive_task_too() -> None:
    async def scenario() -> None:
        core = new_core(ttl=0.3)
        client = FakeAsyncClient([UnavailableError("down"), DONE])
        client.first_write_takes = 0.35
        session = AsyncSession(client, core)  # type: ignore[arg-type]
        await session.abandon("unit", core.requests.new())
        for _ in range(500):
            if core.requests.outstanding == 0:
                break
            await asyncio.sleep(0.01)
        assert client.overlaps == []
        assert len(client.abandons) == 2
        assert len({a.request.seq for a in client.abandons}) == 1
        assert core.pending_writes() == []
        await session.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- interrupted releases


def test_the_keep_alive_thread_resends_a_release_left_to_it_under_its_request_id() -> None:
    core = new_core(ttl=0.3)
    client = FakeClient([DONE], releases=[UnavailableError("down"), pb.ReleaseResponse()])
    session = Session(client, core)  # type: ignore[arg-type]
    try:
        request = core.requests.new()
        session.release_later("unit", 7, request)
        wait_for(lambda: not core.pending_writes())
        assert [(r.name, r.token) for r in client.releases] == [("unit", 7), ("unit", 7)]
        assert {r.request.seq for r in client.releases} == {request.seq}
        assert core.requests.outstanding == 0
    finally:
        session.close()


@pytest.mark.parametrize(
    "error",
    [NotHolderError("token 7"), SessionExpiredError("gone")],
    ids=lambda e: type(e).__name__,
)
def test_a_resent_release_refused_as_not_holding_ends_quietly(
    error: TurnstileError, caplog: pytest.LogCaptureFixture
) -> None:
    """The hold was over already (max-hold, the session's end): nothing is left to do."""
    core = new_core(ttl=30.0)
    client = FakeClient([DONE], releases=[error])
    session = Session(client, core)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.INFO, logger="turnstile.client"):
            session.release_later("unit", 7, core.requests.new())
            wait_for(lambda: len(client.releases) == 1 and core.requests.outstanding == 0)
        assert core.pending_writes() == []
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        session.close()


def test_the_keep_alive_task_resends_a_release_left_to_it_under_its_request_id() -> None:
    async def scenario() -> None:
        core = new_core(ttl=0.3)
        client = FakeAsyncClient([DONE], releases=[UnavailableError("down"), pb.ReleaseResponse()])
        session = AsyncSession(client, core)  # type: ignore[arg-type]
        request = core.requests.new()
        session.release_later("unit", 7, request)
        for _ in range(500):
            if not core.pending_writes():
                break
            await asyncio.sleep(0.01)
        assert [r.request.seq for r in client.releases] == [request.seq, request.seq]
        assert core.requests.outstanding == 0
        await session.close()

    asyncio.run(scenario())
