"""The one hand-over from the Raft thread to the loop (cluster/bridge.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from inmem_raft import run, until

from turnstile.cluster.bridge import LoopBridge

pytestmark = pytest.mark.unit


def test_callbacks_posted_from_another_thread_run_on_the_loop_in_order() -> None:
    async def body() -> None:
        bridge = LoopBridge(asyncio.get_running_loop())
        seen: list[tuple[int, int]] = []

        def record(n: int) -> None:
            seen.append((n, threading.get_ident()))

        def post_all() -> None:
            for n in range(1000):
                bridge.post(record, n)
                if n % 50 == 0:
                    time.sleep(0.001)  # let drains run between the posts

        # The loop keeps running (and draining) while the other thread posts.
        await asyncio.to_thread(post_all)
        await until(lambda: len(seen) == 1000)
        assert [n for n, _ in seen] == list(range(1000))
        assert {thread for _, thread in seen} == {threading.get_ident()}

    run(body)


def test_a_failing_callback_does_not_drop_the_ones_after_it() -> None:
    async def body() -> None:
        bridge = LoopBridge(asyncio.get_running_loop())
        seen: list[int] = []

        def fail() -> None:
            raise RuntimeError("boom")

        bridge.post(fail)
        bridge.post(seen.append, 1)
        await until(lambda: seen == [1])

    run(body)


def test_posting_after_the_loop_closed_is_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    bridge = LoopBridge(loop)
    loop.close()
    bridge.post(print, "never")
