"""The session stream (cluster/session_stream.py) on a node over the in-memory Raft: calls
answered as they resolve, refusals as answers, cancellation and timeouts withdrawing waits,
and the stream's end cancelling what is still open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from inmem_raft import leading_node, run, until

from turnstile.cluster import service, session_stream
from turnstile.cluster.node import Node
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit


class Stream:
    """One open stream on ``node``: calls are sent with ``send``, answers read by call id."""

    def __init__(self, node: Node) -> None:
        self.requests: asyncio.Queue[pb.StreamRequest | None] = asyncio.Queue()
        self.answers: dict[int, pb.StreamAnswer] = {}
        #: Call ids in the order their answers arrived, and every answer in that order.
        self.order: list[int] = []
        self.received: list[pb.StreamAnswer] = []
        self.messages = 0
        self._served = service.SessionsService(node).streams.serve(self._requests())
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def _requests(self) -> AsyncIterator[pb.StreamRequest]:
        while (request := await self.requests.get()) is not None:
            yield request

    async def _collect(self) -> None:
        async for response in self._served:
            self.messages += 1
            for answer in response.answers:
                self.answers[answer.call_id] = answer
                self.order.append(answer.call_id)
                self.received.append(answer)

    def send(self, *calls: pb.StreamCall) -> None:
        self.requests.put_nowait(pb.StreamRequest(calls=calls))

    async def answer(self, call_id: int) -> pb.StreamAnswer:
        await until(lambda: call_id in self.answers)
        return self.answers[call_id]


def served(node: Node, method: str, code: str) -> float | None:
    """Calls of ``method`` answered ``code``, from the node's metrics."""
    return node.metrics.registry.get_sample_value(
        "turnstile_rpc_requests_total", {"method": method, "code": code}
    )


def rid(session: int, seq: int) -> pb.RequestId:
    return pb.RequestId(session_id=session, seq=seq)


async def open_sessions(stream: Stream, count: int) -> list[int]:
    stream.send(
        *(
            pb.StreamCall(call_id=100 + i, open=pb.OpenSessionRequest(ttl_ms=30_000))
            for i in range(count)
        )
    )
    return [(await stream.answer(100 + i)).open.session_id for i in range(count)]


def test_calls_are_answered_as_they_resolve_not_in_order(tmp_path: Path) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        stream = Stream(node)
        a, b = await open_sessions(stream, 2)
        stream.send(
            pb.StreamCall(call_id=1, acquire=pb.AcquireRequest(request=rid(a, 1), name="L"))
        )
        assert (await stream.answer(1)).acquire.token == 1
        stream.send(
            pb.StreamCall(
                call_id=2, acquire=pb.AcquireRequest(request=rid(b, 1), name="L", wait_ms=30_000)
            ),
            pb.StreamCall(
                call_id=3, insert=pb.InsertRequest(request=rid(a, 2), name="set", members=[b"k"])
            ),
        )
        await until(lambda: node.acquires and 3 in stream.answers)
        assert 2 not in stream.answers  # blocked, and holding up nothing
        assert stream.answers[3].WhichOneof("response") == "error"  # no such list: refused
        stream.send(
            pb.StreamCall(
                call_id=4, release=pb.ReleaseRequest(request=rid(a, 3), name="L", token=1)
            )
        )
        handed = await stream.answer(2)
        assert handed.acquire.acquired and handed.acquire.token == 2
        assert stream.order.index(3) < stream.order.index(2)
        assert (await stream.answer(4)).HasField("release")
        assert served(node, "Locks.Acquire", "OK") == 2  # counted as the unary RPC would be
        assert served(node, "DistinctLists.Insert", "NOT_FOUND") == 1
        stream.requests.put_nowait(None)
        await asyncio.wait_for(stream.task, 5)  # half-closed, all answered: the stream ends
        await node.stop()

    run(body)


def test_a_refused_call_is_an_answer_and_the_stream_goes_on(tmp_path: Path) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        stream = Stream(node)
        (a,) = await open_sessions(stream, 1)
        stream.send(
            pb.StreamCall(
                call_id=1, release=pb.ReleaseRequest(request=rid(a, 1), name="L", token=9)
            ),
            pb.StreamCall(call_id=2),
            pb.StreamCall(call_id=3, acquire=pb.AcquireRequest(request=rid(a, 2), name="")),
            pb.StreamCall(call_id=4, keep_alive=pb.KeepAliveRequest(session_id=a)),
        )
        refused = (await stream.answer(1)).error
        assert refused.reason == "NOT_HOLDER"
        assert refused.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert refused.message.startswith("NOT_HOLDER: ")
        empty = (await stream.answer(2)).error
        assert empty.reason == "INVALID_ARGUMENT" and "names no request" in empty.message
        bad = (await stream.answer(3)).error
        assert bad.reason == "INVALID_ARGUMENT" and "name" in bad.message
        assert (await stream.answer(4)).keep_alive.ttl_ms == 30_000
        assert not stream.task.done()
        stream.task.cancel()
        await node.stop()

    run(body)


def test_a_follower_answers_not_leader_with_the_leaders_address(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        stream = Stream(node)
        (a,) = await open_sessions(stream, 1)
        raft.depose()
        await until(lambda: not node.leading)
        stream.send(pb.StreamCall(call_id=1, keep_alive=pb.KeepAliveRequest(session_id=a)))
        refused = (await stream.answer(1)).error
        assert refused.reason == "NOT_LEADER"
        assert refused.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert refused.leader_address == node.membership.leader_ids()[1]
        stream.task.cancel()
        await node.stop()

    run(body)


def test_cancel_timeout_and_the_streams_end_withdraw_blocked_acquires(tmp_path: Path) -> None:
    async def body() -> None:
        node, raft = await leading_node(tmp_path)
        stream = Stream(node)
        a, b, c, d = await open_sessions(stream, 4)
        stream.send(
            pb.StreamCall(call_id=1, acquire=pb.AcquireRequest(request=rid(a, 1), name="L"))
        )
        await stream.answer(1)

        def waiting() -> list[int]:
            return [w.session for w in raft.state.locks["L"].waiters]

        long_wait = {"name": "L", "wait_ms": 60_000}
        stream.send(
            pb.StreamCall(call_id=2, acquire=pb.AcquireRequest(request=rid(b, 1), **long_wait)),
            pb.StreamCall(
                call_id=3,
                timeout_ms=200,
                acquire=pb.AcquireRequest(request=rid(c, 1), **long_wait),
            ),
            pb.StreamCall(call_id=4, acquire=pb.AcquireRequest(request=rid(d, 1), **long_wait)),
        )
        await until(lambda: waiting() == [b, c, d])
        stream.send(pb.StreamCall(call_id=2, cancel=pb.CancelCall()))
        timed_out = (await stream.answer(3)).error
        assert timed_out.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        await until(lambda: waiting() == [d])
        assert 2 not in stream.answers  # a cancelled call is not answered
        stream.task.cancel()  # the client went away
        await until(lambda: waiting() == [])
        await node.stop()

    run(body)


def test_an_open_call_id_is_refused_and_so_are_calls_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        stream = Stream(node)
        a, b, c = await open_sessions(stream, 3)
        monkeypatch.setattr(session_stream, "MAX_OPEN_CALLS", 2)
        stream.send(
            pb.StreamCall(call_id=1, acquire=pb.AcquireRequest(request=rid(a, 1), name="L"))
        )
        await stream.answer(1)
        wait = {"name": "L", "wait_ms": 60_000}
        stream.send(
            pb.StreamCall(call_id=2, acquire=pb.AcquireRequest(request=rid(b, 1), **wait)),
            pb.StreamCall(call_id=2, keep_alive=pb.KeepAliveRequest(session_id=b)),
        )
        again = (await stream.answer(2)).error
        assert again.reason == "INVALID_ARGUMENT" and "still open" in again.message
        del stream.answers[2]
        stream.send(
            pb.StreamCall(call_id=3, acquire=pb.AcquireRequest(request=rid(c, 1), **wait)),
            pb.StreamCall(call_id=4, keep_alive=pb.KeepAliveRequest(session_id=a)),
        )
        over = (await stream.answer(4)).error
        assert over.reason == "LIMIT_EXCEEDED"
        stream.send(pb.StreamCall(call_id=3, cancel=pb.CancelCall()))
        await until(lambda: len(node.acquires) == 1)  # call 2 alone is open now
        stream.send(
            pb.StreamCall(call_id=5, keep_alive=pb.KeepAliveRequest(session_id=a)),
            pb.StreamCall(call_id=6, keep_alive=pb.KeepAliveRequest(session_id=a)),
        )  # served together, and counted before they start
        assert (await stream.answer(5)).HasField("keep_alive")
        assert (await stream.answer(6)).error.reason == "LIMIT_EXCEEDED"
        assert 2 not in stream.answers and 3 not in stream.answers  # both still waiting
        stream.task.cancel()
        await node.stop()

    run(body)


def test_a_successful_write_renews_its_session_and_says_so(tmp_path: Path) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        stream = Stream(node)
        (a,) = await open_sessions(stream, 1)
        stream.send(
            pb.StreamCall(call_id=1, acquire=pb.AcquireRequest(request=rid(a, 1), name="L")),
            pb.StreamCall(call_id=2, release=pb.ReleaseRequest(request=rid(a, 2), name="M")),
            pb.StreamCall(call_id=3, keep_alive=pb.KeepAliveRequest(session_id=a)),
        )
        assert (await stream.answer(1)).renewed
        assert not (await stream.answer(2)).renewed  # refused: NOT_HOLDER
        assert not (await stream.answer(3)).renewed  # the keep-alive's answer says it itself
        node.tracker.take_due(float("inf"))  # marks the session expiring: no renewal now
        stream.send(
            pb.StreamCall(call_id=4, acquire=pb.AcquireRequest(request=rid(a, 3), name="N"))
        )
        assert (await stream.answer(4)).HasField("acquire")
        assert not stream.answers[4].renewed
        stream.task.cancel()
        await node.stop()

    run(body)


def test_keep_alives_of_one_message_are_renewed_together_each_with_its_answer(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        stream = Stream(node)
        a, b = await open_sessions(stream, 2)
        stream.send(
            pb.StreamCall(call_id=1, keep_alive=pb.KeepAliveRequest(session_id=a)),
            pb.StreamCall(call_id=2, keep_alive=pb.KeepAliveRequest(session_id=999)),
            pb.StreamCall(call_id=3, keep_alive=pb.KeepAliveRequest(session_id=b)),
            pb.StreamCall(call_id=3, keep_alive=pb.KeepAliveRequest(session_id=b)),
            pb.StreamCall(call_id=1, cancel=pb.CancelCall()),  # changes nothing: left be
        )
        assert (await stream.answer(1)).keep_alive.ttl_ms == 30_000
        assert (await stream.answer(2)).error.reason == "SESSION_EXPIRED"
        await until(lambda: stream.order.count(3) == 2)
        threes = [answer for answer in stream.received if answer.call_id == 3]
        assert sorted(answer.WhichOneof("response") for answer in threes) == [
            "error",
            "keep_alive",
        ]  # the second call 3 was refused as still open, the first renewed
        assert stream.order.count(1) == 1
        assert served(node, "Sessions.KeepAlive", "OK") == 2
        assert served(node, "Sessions.KeepAlive", "FAILED_PRECONDITION") == 1
        stream.task.cancel()
        await node.stop()

    run(body)


def test_calls_ready_together_are_answered_in_one_message(tmp_path: Path) -> None:
    async def body() -> None:
        node, _raft = await leading_node(tmp_path)
        stream = Stream(node)
        (a,) = await open_sessions(stream, 1)
        before = stream.messages
        stream.send(
            *(
                pb.StreamCall(call_id=i, keep_alive=pb.KeepAliveRequest(session_id=a))
                for i in range(1, 51)
            )
        )
        await until(lambda: all(i in stream.answers for i in range(1, 51)))
        assert stream.messages - before < 50 / 2  # one barrier round answers them together
        stream.task.cancel()
        await node.stop()

    run(body)
