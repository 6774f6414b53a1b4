"""The session stream on a real cluster: the wire protocol through the server's interceptors,
and the sync and asyncio clients carrying their sessions on one stream per node."""

from __future__ import annotations

import asyncio
import queue
import threading
import time

import grpc
import pytest

from tests.integration.cluster import Cluster, metric, wait_until
from turnstile.client import connect
from turnstile.client.aio import AsyncClient
from turnstile.client.errors import DeadlineExceededError
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc

#: One cluster for the module: each test uses names of its own and stops no node.
pytestmark = [pytest.mark.integration, pytest.mark.shared_cluster]


class RawStream:
    """A ``Sessions.Stream`` spoken by hand: calls go out with ``send``, answers are kept by
    call id as a reader thread receives them."""

    def __init__(self, cluster: Cluster, address: str) -> None:
        self._requests: queue.SimpleQueue[pb.StreamRequest | None] = queue.SimpleQueue()
        stub = pb_grpc.SessionsStub(cluster.credentials.channel(address))
        self._call = stub.Stream(
            iter(self._requests.get, None), metadata=cluster.credentials.metadata
        )
        self.answers: dict[int, pb.StreamAnswer] = {}
        self.order: list[int] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self._call:
                for answer in response.answers:
                    self.answers[answer.call_id] = answer
                    self.order.append(answer.call_id)
        except grpc.RpcError:
            pass

    def send(self, *calls: pb.StreamCall) -> None:
        self._requests.put(pb.StreamRequest(calls=calls))

    def answer(self, call_id: int) -> pb.StreamAnswer:
        return wait_until(lambda: self.answers.get(call_id))

    def close(self) -> None:
        self._call.cancel()


def _rid(session: int, seq: int) -> pb.RequestId:
    return pb.RequestId(session_id=session, seq=seq)


def test_calls_on_the_wire_are_answered_as_they_resolve(cluster: Cluster) -> None:
    leader = cluster.leader()
    stream = RawStream(cluster, leader)
    try:
        stream.send(
            pb.StreamCall(call_id=1, open=pb.OpenSessionRequest(ttl_ms=10_000)),
            pb.StreamCall(call_id=2, open=pb.OpenSessionRequest(ttl_ms=10_000)),
        )
        a, b = stream.answer(1).open.session_id, stream.answer(2).open.session_id
        stream.send(
            pb.StreamCall(call_id=3, acquire=pb.AcquireRequest(request=_rid(a, 1), name="wire"))
        )
        assert stream.answer(3).acquire.token >= 1
        token = stream.answer(3).acquire.token
        stream.send(
            pb.StreamCall(
                call_id=4,
                acquire=pb.AcquireRequest(request=_rid(b, 1), name="wire", wait_ms=20_000),
            ),
            pb.StreamCall(
                call_id=5, set_up=pb.SetUpListRequest(request=_rid(a, 2), name="wire-seen")
            ),
        )
        assert stream.answer(5).set_up.created
        wait_until(lambda: len(cluster.lock_info("wire").waiters) == 1)
        assert 4 not in stream.answers
        stream.send(
            pb.StreamCall(
                call_id=6, release=pb.ReleaseRequest(request=_rid(a, 3), name="wire", token=token)
            )
        )
        handed = stream.answer(4).acquire
        assert handed.acquired and handed.token > token
        assert stream.order.index(5) < stream.order.index(4)
    finally:
        stream.close()


def test_a_follower_forwards_the_calls_and_a_dropped_stream_withdraws_its_waits(
    cluster: Cluster,
) -> None:
    """A stream on a follower is served there: its calls are forwarded to the leader, a
    blocked acquire waits on the follower, and dropping the stream withdraws that wait."""
    leader = cluster.leader()
    follower = cluster.followers(leader)[0]
    on_follower = RawStream(cluster, follower)
    try:
        on_follower.send(
            pb.StreamCall(call_id=1, open=pb.OpenSessionRequest(ttl_ms=30_000)),
            pb.StreamCall(call_id=2, open=pb.OpenSessionRequest(ttl_ms=30_000)),
        )
        a, b = on_follower.answer(1).open.session_id, on_follower.answer(2).open.session_id
        on_follower.send(pb.StreamCall(call_id=3, keep_alive=pb.KeepAliveRequest(session_id=a)))
        assert on_follower.answer(3).keep_alive.ttl_ms == 30_000
        on_follower.send(
            pb.StreamCall(call_id=4, acquire=pb.AcquireRequest(request=_rid(a, 1), name="dropped"))
        )
        assert on_follower.answer(4).acquire.acquired
        on_follower.send(
            pb.StreamCall(
                call_id=5,
                acquire=pb.AcquireRequest(request=_rid(b, 1), name="dropped", wait_ms=60_000),
            )
        )
        wait_until(lambda: len(cluster.lock_info("dropped").waiters) == 1)
        on_follower.close()
        # The session lives on (TTL 30 s), but the wait its dropped call held is withdrawn.
        wait_until(lambda: not cluster.lock_info("dropped").waiters)
        assert cluster.lock_info("dropped").holder.session_id == a
        assert 5 not in on_follower.answers
    finally:
        on_follower.close()


def _metric(cluster: Cluster, address: str, series: str, counted: bool = False) -> float:
    """A series of a node's /metrics; a ``counted`` one not there yet (never counted) is 0."""
    text = cluster.metrics(address)
    assert counted or f"\n{series} " in text, f"the node exports {series}"
    return metric(text, series)


def _open_streams(cluster: Cluster, address: str) -> float:
    return _metric(cluster, address, "turnstile_session_streams")


KEEP_ALIVES = 'turnstile_rpc_requests_total{code="OK",method="Sessions.KeepAlive"}'


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
def test_a_busy_client_on_a_stream_needs_no_keep_alives(cluster: Cluster, stream: bool) -> None:
    """Writes on a stream renew the session; unary ones do not, and keep-alives go on.

    The keep-alive counter is the node's, and the cluster is shared: it is still this
    client's alone, since every other test here closes its clients before it ends, and the
    sessions they leave open (raw streams) send no keep-alives."""
    leader = cluster.leader()
    with connect([leader], session_ttl=1.5, session_stream=stream) as client:
        seen = client.distinct_list(f"busy-{stream}")
        seen.insert("first")  # the session is open: keep-alives are due every 0.5 s
        before = _metric(cluster, leader, KEEP_ALIVES, counted=True)
        for i in range(60):  # about 3 s of writes
            seen.insert(f"k{i}")
            time.sleep(0.05)
        sent = _metric(cluster, leader, KEEP_ALIVES, counted=True) - before
        assert client.session().alive()
    if stream:
        assert sent <= 1, f"{sent} keep-alives while writes renewed the session"
    else:
        assert sent >= 4, f"only {sent} keep-alives in 3 s at one per 0.5 s"


def test_the_clients_carry_their_calls_on_one_stream_per_node(cluster: Cluster) -> None:
    leader = cluster.leader()
    # The cluster is shared: the streams of earlier tests, closed by them, are gone first.
    wait_until(lambda: _open_streams(cluster, leader) == 0)
    with connect([leader], session_stream=False) as unary:
        lock = unary.lock("carried-unary")
        assert lock.acquire()
        unary.distinct_list("carried-seen").insert("k")
        assert _open_streams(cluster, leader) == 0
        lock.release()
    with connect([leader]) as client:
        threads = [
            threading.Thread(
                target=lambda i=i: client.distinct_list("carried-seen").insert(f"k{i}")
            )
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with client.lock("carried-streamed") as held:
            assert held.token >= 1
            assert _open_streams(cluster, leader) == 1

    async def asynchronous() -> None:
        async with AsyncClient([leader]) as client:
            seen = client.distinct_list("carried-seen")
            results = await asyncio.gather(*(seen.insert(f"k{i}") for i in range(8)))
            assert not any(added for added, _id in results)  # inserted by the sync client
            async with client.lock("carried-streamed"):
                assert _open_streams(cluster, leader) == 1

    asyncio.run(asynchronous())
    wait_until(lambda: _open_streams(cluster, leader) == 0)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_a_call_the_client_stops_waiting_for_is_withdrawn_on_the_node(
    cluster: Cluster, asynchronous: bool
) -> None:
    """A blocked acquire whose attempt times out on the client leaves the lock's queue, as a
    unary call past its deadline does."""
    leader = cluster.leader()
    name = f"timed-{asynchronous}"
    with connect([leader]) as holder:
        lock = holder.lock(name)
        assert lock.acquire()
        request = pb.AcquireRequest(name=name, wait_ms=30_000)

        def withdrawn() -> bool:
            return not cluster.lock_info(name).waiters

        if asynchronous:

            async def wait_briefly() -> None:
                async with AsyncClient([leader]) as client:
                    with pytest.raises(DeadlineExceededError):
                        await client.write(request, deadline=0.8, attempt_timeout=0.8)
                    await asyncio.to_thread(wait_until, withdrawn)  # the client still open

            asyncio.run(wait_briefly())
        else:
            with connect([leader]) as client:
                with pytest.raises(DeadlineExceededError):
                    client.write(request, deadline=0.8, attempt_timeout=0.8)
                wait_until(withdrawn)  # the client still open
        assert cluster.lock_info(name).holder.token == lock.token
        lock.release()
