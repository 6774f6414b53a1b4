"""What grpc-python itself costs a client per round trip, with no Turnstile code in the way.

    python -m turnstile.bench.grpc_floor [--round-trips 3000] [--answer-delay-ms 0]

An echo server (``grpc.aio``, raw bytes, no protobuf) runs in a process of its own; this
process is the client and measures its own CPU time (``time.process_time``, every thread)
per round trip of a small message:

- ``sync stream``: one bidirectional stream, driven as ``turnstile.client``'s session stream
  is: the caller queues a message for gRPC's request thread and waits on a lock a reader
  thread releases when the answer comes;
- ``sync stream, caller reads``: the same stream with the caller reading its own answer;
- ``asyncio stream``: one ``grpc.aio`` bidirectional stream, write then read;
- ``sync unary`` and ``asyncio unary``: one unary call per round trip.

``--answer-delay-ms`` makes the server wait before each answer, as a Raft round does: a
client's threads that sleep between messages cost more per message than busy ones. This is
the floor under ``turnstile bench``'s client processes (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

MESSAGE = b"x" * 60
_SERVICE = "turnstile.bench.Echo"


def _serve(ports: Any, delay_s: float) -> None:
    async def main() -> None:
        async def stream(requests: AsyncIterator[bytes], _context: Any) -> AsyncIterator[bytes]:
            async for request in requests:
                if delay_s:
                    await asyncio.sleep(delay_s)
                yield request

        async def unary(request: bytes, _context: Any) -> bytes:
            if delay_s:
                await asyncio.sleep(delay_s)
            return request

        server = grpc.aio.server()
        handlers = {
            "Stream": grpc.stream_stream_rpc_method_handler(stream),
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
        ports.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def _cpu_ms_per_call(run: Callable[[int], None], calls: int) -> float:
    run(max(10, calls // 10))  # warm up
    started = time.process_time()
    run(calls)
    return (time.process_time() - started) / calls * 1000


def _requests(outgoing: queue.SimpleQueue[bytes | None]) -> Iterator[bytes]:
    while (message := outgoing.get()) is not None:
        yield message


def sync_costs(address: str, calls: int) -> dict[str, float]:
    """CPU ms per round trip of each sync pattern, over one channel."""
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        unary = channel.unary_unary(f"/{_SERVICE}/Unary")
        stream = channel.stream_stream(f"/{_SERVICE}/Stream")

        outgoing: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        answers = stream(_requests(outgoing))
        waiting: list[threading.Lock] = []

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):  # the channel closing at the end
                for _answer in answers:
                    waiting.pop().release()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def with_reader(n: int) -> None:
            for _ in range(n):
                answered = threading.Lock()
                answered.acquire()
                waiting.append(answered)
                outgoing.put(MESSAGE)
                answered.acquire()

        own: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        own_answers = stream(_requests(own))

        def caller_reads(n: int) -> None:
            for _ in range(n):
                own.put(MESSAGE)
                next(own_answers)

        def unary_calls(n: int) -> None:
            for _ in range(n):
                unary(MESSAGE)

        try:
            return {
                "sync stream": _cpu_ms_per_call(with_reader, calls),
                "sync stream, caller reads": _cpu_ms_per_call(caller_reads, calls),
                "sync unary": _cpu_ms_per_call(unary_calls, calls),
            }
        finally:
            outgoing.put(None)  # the server ends each stream once its requests end
            own.put(None)
            reader.join(timeout=5)


async def asyncio_costs(address: str, calls: int) -> dict[str, float]:
    """CPU ms per round trip of the asyncio stream and unary calls, over one channel."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(f"/{_SERVICE}/Stream")()
        unary = channel.unary_unary(f"/{_SERVICE}/Unary")

        async def measure(one: Callable[[], Any]) -> float:
            for _ in range(max(10, calls // 10)):
                await one()
            started = time.process_time()
            for _ in range(calls):
                await one()
            return (time.process_time() - started) / calls * 1000

        async def stream_round_trip() -> None:
            await call.write(MESSAGE)
            await call.read()

        try:
            return {
                "asyncio stream": await measure(stream_round_trip),
                "asyncio unary": await measure(lambda: unary(MESSAGE)),
            }
        finally:
            call.cancel()


def measure(calls: int, delay_ms: float) -> dict[str, float]:
    """Client CPU ms per round trip of every pattern, against a server of its own."""
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=_serve, args=(ports, delay_ms / 1000), daemon=True)
    server.start()
    try:
        address = f"127.0.0.1:{ports.get(timeout=30)}"
        costs = sync_costs(address, calls)
        costs.update(asyncio.run(asyncio_costs(address, calls)))
        return costs
    finally:
        server.kill()
        server.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m turnstile.bench.grpc_floor")
    parser.add_argument("--round-trips", type=int, default=3000)
    parser.add_argument("--answer-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.round_trips < 1 or args.answer_delay_ms < 0:
        parser.error("--round-trips must be at least 1 and --answer-delay-ms at least 0")
    costs = measure(args.round_trips, args.answer_delay_ms)
    print(
        f"client CPU per round trip ({args.round_trips} round trips, "
        f"answers after {args.answer_delay_ms:g} ms):"
    )
    for pattern, cost in costs.items():
        print(f"  {pattern:28s} {cost:.3f} ms")


if __name__ == "__main__":
    main()
