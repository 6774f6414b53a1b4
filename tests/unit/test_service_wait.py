"""A blocked Acquire whose wait outlives its deadline (cluster/service.py), against a fake node:
the server never gives back a grant that a retry of the same request may already have."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from turnstile.cluster import service
from turnstile.cluster.commands import Acquire, CancelWait, Command, Queued, WaitCancelled
from turnstile.cluster.limits import Limits
from turnstile.cluster.waiters import WaiterRegistry
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit


class _Raft:
    term = 3
    applied_index = 10

    def read(self, reader: Any) -> Any:
        class _State:
            limits = Limits()

        return reader(_State())


class _Config:
    node_id = "n1"


class _Node:
    """What LocksService uses of a Node: the wait's resolution never arrives (the deadline
    tick was not committed, as under leadership trouble)."""

    def __init__(self) -> None:
        self.waiters = WaiterRegistry()
        self.raft = _Raft()
        self.config = _Config()
        self.stopping = False
        self.proposed: list[Command] = []

    def now_ms(self) -> int:
        return 1_000

    def leader_ids(self) -> tuple[str, str]:
        return ("n1", "127.0.0.1:1")

    def spawn(self, coroutine: Any) -> None:
        asyncio.get_running_loop().create_task(coroutine)

    async def execute(self, build: Any) -> Any:
        command = build(self.now_ms())
        self.proposed.append(command)
        if isinstance(command, Acquire):
            return Queued(position=1, deadline=self.now_ms() + 10)
        # A grant raced in; the old code's cancel would have given it back.
        return WaitCancelled(removed=False, released=True)


class _AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


class _Context:
    def set_trailing_metadata(self, _metadata: Any) -> None:
        pass

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _AbortedError(code, details)


def test_a_timed_out_wait_is_an_unknown_outcome_and_gives_no_grant_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "_WAIT_GRACE_S", 0.05)
    node = _Node()
    locks = service.LocksService(node)  # type: ignore[arg-type]
    request = pb.AcquireRequest(
        request=pb.RequestId(session_id=1, seq=2, acked=1), name="L", wait_ms=10
    )

    async def call() -> None:
        await locks.Acquire(request, _Context())

    with pytest.raises(_AbortedError) as aborted:
        asyncio.run(call())
    assert "UNKNOWN_OUTCOME" in str(aborted.value)
    cancels = [c for c in node.proposed if isinstance(c, CancelWait)]
    assert not [c for c in cancels if c.release_grant], f"a grant was given back: {cancels}"
