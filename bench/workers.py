"""Client processes: each runs several benchmark clients (one thread and one driver each).

The load comes from separate processes so that the client library's GIL is not what is
measured. Processes are started with ``spawn`` (gRPC does not survive ``fork``), set their
clients up, report ready, and start together when the parent sets the start time; each
returns what its clients recorded. Every child is joined or killed by PID before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from turnstile.bench.drivers import DRIVERS, Driver

#: Time a client process may take to connect its clients.
SETUP_TIMEOUT_S = 120.0
#: How often the idle-sessions process sends the keep-alives that are due.
IDLE_TICK_S = 0.05
#: Pause after a failed operation (failover: the cluster is electing a leader).
ERROR_PAUSE_S = 0.01


@dataclass(frozen=True)
class Job:
    """One workload run against one system."""

    system: str
    endpoints: list[str]
    #: lock_uncontended, lock_contended, insert, read_linearizable, read_stale
    workload: str
    duration: float
    ttl_s: float = 10.0
    #: Keys per insert request.
    batch: int = 1
    #: Name of the list (or lock prefix) of this run, so runs do not share keys.
    tag: str = "run"
    #: Count failed operations and go on (failover) instead of stopping the client.
    tolerate_errors: bool = False


@dataclass
class Records:
    """What one or many clients recorded; lists of plain tuples, cheap to pickle."""

    #: (name, client, asked, granted, releasing, released, token)
    holds: list[tuple[str, int, float, float, float, float, int]] = field(default_factory=list)
    #: (key, added, id)
    inserts: list[tuple[str, bool, int]] = field(default_factory=list)
    #: (sent, done) of every successful operation (a lock pair, an insert request, a read).
    ops: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    error_sample: str = ""

    def merge(self, other: Records) -> None:
        self.holds += other.holds
        self.inserts += other.inserts
        self.ops += other.ops
        self.errors += other.errors
        self.error_sample = self.error_sample or other.error_sample


def insert_keys(client: int, clients: int, op: int, batch: int) -> list[str]:
    """The keys of one insert request: half new, half also inserted by a neighbour client.

    One key at a time, a client alternates a new key of its own and the new key its neighbour
    made one op earlier; in batches, half the batch is its own and half its neighbour's.
    Every key is inserted by exactly two clients, so about half of all inserts are duplicates.
    """
    neighbour = (client + 1) % clients
    if batch == 1:
        return [f"{client}-{op}" if op % 2 == 0 else f"{neighbour}-{op - 1}"]
    half = batch // 2
    return [f"{client}-{op}-{i}" for i in range(batch - half)] + [
        f"{neighbour}-{op}-{i}" for i in range(half)
    ]


def run_client(driver: Driver, job: Job, client: int, clients: int, stop: float) -> Records:
    """One client's loop until ``stop`` (monotonic seconds)."""
    records = Records()
    clock = time.monotonic
    op = 0
    lock_name = f"{job.tag}-{client}" if job.workload == "lock_uncontended" else job.tag
    while clock() < stop:
        sent = clock()
        try:
            if job.workload in ("lock_uncontended", "lock_contended"):
                token = driver.acquire(lock_name)
                granted = clock()
                releasing = clock()
                driver.release(lock_name)
                done = clock()
                records.holds.append((lock_name, client, sent, granted, releasing, done, token))
            elif job.workload == "insert":
                keys = insert_keys(client, clients, op, job.batch)
                answers = driver.insert(job.tag, keys)
                done = clock()
                records.inserts += [(k, a, i) for k, (a, i) in zip(keys, answers, strict=True)]
            else:
                driver.read(job.workload == "read_linearizable")
                done = clock()
        except Exception as exc:
            if not job.tolerate_errors:
                raise
            records.errors += 1
            records.error_sample = records.error_sample or f"{type(exc).__name__}: {exc}"
            time.sleep(ERROR_PAUSE_S)
            continue
        records.ops.append((sent, done))
        op += 1
    return records


def _process_main(
    job: Job,
    client_ids: list[int],
    clients: int,
    *,
    ready: Any,
    start_at: Any,
    go: Any,
    results: Any,
) -> None:
    drivers: list[Driver] = []
    try:
        for client in client_ids:
            driver = DRIVERS[job.system](job.endpoints, client, job.ttl_s)
            drivers.append(driver)
            if job.workload.startswith("read"):
                driver.prepare_read()
    except Exception:
        ready.put(("error", traceback.format_exc()))
        return
    ready.put(("ready", ""))
    go.wait()
    stop = start_at.value + job.duration
    outcome: list[Records | str] = [Records() for _ in client_ids]

    def loop(slot: int, driver: Driver, client: int) -> None:
        while time.monotonic() < start_at.value:
            time.sleep(0.001)
        try:
            outcome[slot] = run_client(driver, job, client, clients, stop)
        except Exception:
            outcome[slot] = traceback.format_exc()

    threads = [
        threading.Thread(target=loop, args=(slot, d, c), daemon=True)
        for slot, (d, c) in enumerate(zip(drivers, client_ids, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = Records()
    failure = ""
    for result in outcome:
        if isinstance(result, str):
            failure = failure or result
        else:
            merged.merge(result)
    results.put(("error", failure) if failure else ("done", merged))
    for driver in drivers:
        with contextlib.suppress(Exception):
            driver.close()


class WorkerError(Exception):
    """A client process failed; the message carries its traceback."""


def _get(messages: Any, children: list[Any], timeout: float) -> Any:
    """The next message from the client processes; raises ``WorkerError`` as soon as one of
    them has died without sending it, ``queue.Empty`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return messages.get(timeout=0.2)
        except queue.Empty:
            crashed = [c.exitcode for c in children if c.exitcode not in (None, 0)]
            if crashed:
                raise WorkerError(
                    f"a client process exited with code {crashed[0]}; see its traceback above"
                ) from None
            if time.monotonic() > deadline:
                raise


def run_job(
    job: Job, clients: int, processes: int, during: Callable[[float], None] | None = None
) -> tuple[Records, float]:
    """Runs ``job`` with ``clients`` clients spread over ``processes`` processes.

    ``during(start)`` runs in this process while the clients work (the failover kill).
    Returns the merged records and the start time.
    """
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    go = context.Event()
    start_at = context.Value("d", 0.0)
    processes = max(1, min(processes, clients))
    groups = [list(range(p, clients, processes)) for p in range(processes)]
    children = [
        context.Process(
            target=_process_main,
            args=(job, group, clients),
            kwargs={"ready": ready, "start_at": start_at, "go": go, "results": results},
            daemon=True,
        )
        for group in groups
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            kind, detail = _get(ready, children, SETUP_TIMEOUT_S)
            if kind == "error":
                raise WorkerError(f"{job.system}: a client could not connect:\n{detail}")
        start_at.value = time.monotonic() + 0.1
        go.set()
        if during is not None:
            during(start_at.value)
        merged = Records()
        for _ in children:
            kind, payload = _get(results, children, job.duration + SETUP_TIMEOUT_S)
            if kind == "error":
                raise WorkerError(f"{job.system} {job.workload}: a client failed:\n{payload}")
            merged.merge(payload)
        return merged, start_at.value
    except queue.Empty:
        raise WorkerError(f"{job.system} {job.workload}: client processes timed out") from None
    finally:
        for child in children:
            child.join(timeout=15)
            if child.is_alive():
                child.kill()
                child.join()


# ---------------------------------------------------------------------------- dead client


def _holder_main(system: str, endpoints: list[str], ttl_s: float, ready: Any) -> None:
    try:
        driver = DRIVERS[system](endpoints, 0, ttl_s)
        driver.acquire("orphan")
    except Exception:
        ready.put(("error", traceback.format_exc()))
        return
    ready.put(("ready", driver.ttl_s))
    while True:
        time.sleep(60)


def _waiter_main(system: str, endpoints: list[str], ttl_s: float, ready: Any, done: Any) -> None:
    try:
        driver = DRIVERS[system](endpoints, 1, ttl_s)
    except Exception:
        ready.put(("error", traceback.format_exc()))
        return
    ready.put(("ready", driver.ttl_s))
    driver.acquire("orphan")
    done.put(time.monotonic())
    driver.release("orphan")
    driver.close()


def dead_client(system: str, endpoints: list[str], ttl_s: float) -> tuple[float, float]:
    """A holder process is SIGKILLed while a waiter blocks on its lock.

    Returns (seconds from the kill to the waiter's grant, the TTL the system granted).
    """
    context = multiprocessing.get_context("spawn")
    ready, done = context.Queue(), context.Queue()
    holder = context.Process(target=_holder_main, args=(system, endpoints, ttl_s, ready))
    waiter = context.Process(target=_waiter_main, args=(system, endpoints, ttl_s, ready, done))
    try:
        holder.start()
        kind, granted_ttl = ready.get(timeout=SETUP_TIMEOUT_S)
        if kind == "error":
            raise WorkerError(f"{system}: the holder failed:\n{granted_ttl}")
        waiter.start()
        kind, detail = ready.get(timeout=SETUP_TIMEOUT_S)
        if kind == "error":
            raise WorkerError(f"{system}: the waiter failed:\n{detail}")
        time.sleep(1.0)  # the waiter's acquire is queued by now
        killed = time.monotonic()
        holder.kill()
        holder.join()
        granted = done.get(timeout=granted_ttl + 60)
        return granted - killed, float(granted_ttl)
    except queue.Empty:
        raise WorkerError(f"{system}: the waiter was not granted the lock in time") from None
    finally:
        for child in (holder, waiter):
            if child.pid is not None:
                child.join(timeout=10)
                if child.is_alive():
                    child.kill()
                    child.join()


# ---------------------------------------------------------------------------- idle sessions


async def _idle_sessions(
    endpoint: str,
    count: int,
    ttl_s: float,
    *,
    open_at: str,
    ready: Any,
    stop: threading.Event,
    acked: Any,
) -> None:
    """Opens ``count`` sessions (unary, at ``open_at``: the leader) and keeps each alive
    every ``ttl_s``/3 from its opening on (opening 10,000 takes longer than a TTL), the
    keep-alives due together sent in one message of one session stream to ``endpoint``."""
    import grpc  # noqa: PLC0415

    from turnstile.v1 import turnstile_pb2 as pb  # noqa: PLC0415
    from turnstile.v1 import turnstile_pb2_grpc as pb_grpc  # noqa: PLC0415

    interval = ttl_s / 3
    #: (when its next keep-alive is due, session), a heap.
    due: list[tuple[float, int]] = []
    async with (
        grpc.aio.insecure_channel(endpoint) as channel,
        grpc.aio.insecure_channel(open_at) as opening,
    ):
        stub = pb_grpc.SessionsStub(channel)
        opener = pb_grpc.SessionsStub(opening)
        call = stub.Stream()
        reader = asyncio.get_running_loop().create_task(_count_answers(call, acked))
        sender = asyncio.get_running_loop().create_task(
            _send_due_keep_alives(call, due, interval, stop)
        )
        gate = asyncio.Semaphore(100)

        async def open_one(i: int) -> None:
            async with gate:
                opened = await opener.Open(
                    pb.OpenSessionRequest(ttl_ms=int(ttl_s * 1000), client_name=f"idle-{i}"),
                    timeout=60,
                )
                heapq.heappush(due, (time.monotonic() + interval, int(opened.session_id)))

        try:
            await asyncio.gather(*(open_one(i) for i in range(count)))
            ready.put(("ready", count))
            await sender
        finally:
            sender.cancel()
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
                await reader


async def _count_answers(call: Any, acked: Any) -> None:
    async for response in call:
        acked.value += sum(1 for answer in response.answers if not answer.HasField("error"))


async def _send_due_keep_alives(
    call: Any, due: list[tuple[float, int]], interval: float, stop: threading.Event
) -> None:
    """Every ``IDLE_TICK_S``, the keep-alives due by then, in one message."""
    from turnstile.v1 import turnstile_pb2 as pb  # noqa: PLC0415

    call_ids = itertools.count(1)
    while not stop.is_set():
        now = time.monotonic()
        calls = []
        while due and due[0][0] <= now:
            at, session = heapq.heappop(due)
            heapq.heappush(due, (at + interval, session))
            calls.append(
                pb.StreamCall(
                    call_id=next(call_ids),
                    timeout_ms=int(interval * 1000),
                    keep_alive=pb.KeepAliveRequest(session_id=session),
                )
            )
        if calls:
            await call.write(pb.StreamRequest(calls=calls))
        await asyncio.sleep(max(0.0, IDLE_TICK_S - (time.monotonic() - now)))


def _idle_main(
    endpoint: str,
    count: int,
    ttl_s: float,
    open_at: str,
    *,
    ready: Any,
    stop_event: Any,
    acked: Any,
) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (stop_event.wait(), stop.set()), daemon=True).start()
    try:
        asyncio.run(
            _idle_sessions(
                endpoint, count, ttl_s, open_at=open_at, ready=ready, stop=stop, acked=acked
            )
        )
    except Exception:
        ready.put(("error", traceback.format_exc()))


class IdleSessions:
    """A client process that opens ``count`` Turnstile sessions at the leader and keeps them
    alive at the library's rate (every TTL/3) over one session stream to ``endpoint`` (the
    leader, or a follower that forwards), the keep-alives due together in one message, like a
    process serving that many idle sessions. Use as a context manager."""

    def __init__(
        self, endpoint: str, count: int, ttl_s: float, leader_endpoint: str | None = None
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready = context.Queue()
        self._stop = context.Event()
        #: Keep-alives acknowledged so far (written by the child process only).
        self.acked = context.Value("q", 0, lock=False)
        self._process = context.Process(
            target=_idle_main,
            args=(endpoint, count, ttl_s, leader_endpoint or endpoint),
            kwargs={"ready": self._ready, "stop_event": self._stop, "acked": self.acked},
            daemon=True,
        )

    def __enter__(self) -> IdleSessions:
        self._process.start()
        try:
            kind, detail = self._ready.get(timeout=SETUP_TIMEOUT_S * 3)
        except queue.Empty:
            self.__exit__()
            raise WorkerError("idle sessions: opening them timed out") from None
        if kind == "error":
            self.__exit__()
            raise WorkerError(f"idle sessions: {detail}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._process.join(timeout=15)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
