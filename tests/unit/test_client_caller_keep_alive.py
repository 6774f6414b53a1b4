"""Sessions of a ``Client(keep_alive=False)``: no keep-alive thread or task; the caller's
``keep_alive()`` renews the session and sends the writes handed to the loop. Fake clients on
real, short time, as in ``test_client_keep_alive``."""

from __future__ import annotations

import asyncio
import threading

import pytest
from test_client_keep_alive import DONE, FakeAsyncClient, FakeClient, new_core, wait_for

from turnstile.client.aio import AsyncSession
from turnstile.client.errors import SessionExpiredError
from turnstile.client.session import Session
from turnstile.client.session_state import SessionState

pytestmark = pytest.mark.unit


def test_without_the_thread_only_the_callers_keep_alives_keep_the_session() -> None:
    core = new_core(ttl=0.3)
    client = FakeClient([DONE])
    threads = threading.active_count()
    session = Session(client, core, background=False)  # type: ignore[arg-type]
    assert threading.active_count() == threads  # no keep-alive thread
    before = core.alive_until
    session.abandon_later("unit", core.requests.new())
    assert client.abandons == []  # nobody sends it until the caller keeps the session alive
    session.keep_alive()
    assert core.alive_until > before
    assert len(client.abandons) == 1 and not core.pending_writes()
    wait_for(lambda: core.state is SessionState.LOST)  # nobody calls keep_alive() again
    session.close()


def test_a_keep_alive_refused_as_expired_raises_and_loses_the_session() -> None:
    core = new_core(ttl=30.0)
    client = FakeClient([DONE], keep_alive=SessionExpiredError("gone"))
    session = Session(client, core, background=False)  # type: ignore[arg-type]
    with pytest.raises(SessionExpiredError):
        session.keep_alive()
    assert core.state is SessionState.LOST


def test_the_asyncio_twin_has_no_task_and_renews_on_the_callers_keep_alive() -> None:
    async def scenario() -> None:
        core = new_core(ttl=0.3)
        client = FakeAsyncClient([DONE])
        tasks = len(asyncio.all_tasks())
        session = AsyncSession(client, core, background=False)  # type: ignore[arg-type]
        assert len(asyncio.all_tasks()) == tasks
        before = core.alive_until
        session.abandon_later("unit", core.requests.new())
        await session.keep_alive()
        assert core.alive_until > before
        assert len(client.abandons) == 1
        await session.close()

    asyncio.run(scenario())
