"""The client library's semaphores, ``lock_many`` and descriptions on a real cluster: at most
``limit`` permits held at once, FIFO hand-off, a raised limit, two callers taking the same
locks in opposite orders without overlap or deadlock, a timed-out ``lock_many`` leaving no
waiter behind, descriptions seen from another client, and the asyncio twins of the key cases.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, wait_until
from turnstile.client import Client, FailedPreconditionError, Held, Semaphore, aio, connect
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.shared_cluster]

#: Generous: a shared cluster may be electing a leader, or raising its version.
DEADLINE_S = 30


def _version_6(client: Client) -> bool:
    try:
        client.invoke(pb.ListSemaphoresRequest(limit=1))
    except FailedPreconditionError:
        return False
    return True


@pytest.fixture
def clients(cluster: Cluster) -> Iterator[list[Client]]:
    """Two clients (two sessions) on a cluster at version 6."""
    opened = [connect(cluster.addresses, session_ttl=10, name=f"worker-{i}") for i in range(2)]
    try:
        wait_until(lambda: _version_6(opened[0]), timeout=DEADLINE_S)
        yield opened
    finally:
        for client in opened:
            client.close()


def run_threads(*targets: Callable[[], None]) -> None:
    """Runs each target in a thread; re-raises the first failure; fails if one hangs."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def test_at_most_limit_threads_hold_a_permit_at_once(clients: list[Client]) -> None:
    client = clients[0]
    total, limit = 5, 2
    condition = threading.Condition()
    state = {"inside": 0, "peak": 0, "entered": 0}
    tokens: list[int] = []

    def worker() -> None:
        semaphore = client.semaphore("sem-peak", limit=limit)
        with semaphore as permit:
            with condition:
                state["inside"] += 1
                state["entered"] += 1
                state["peak"] = max(state["peak"], state["inside"])
                tokens.append(permit.token)
                condition.notify_all()
                # Stay until a second holder is in (or nobody is left to come): a semaphore
                # admitting more than `limit` would show a peak above it.
                assert condition.wait_for(
                    lambda: state["inside"] >= limit or state["entered"] == total, DEADLINE_S
                )
            holders = semaphore.describe().holders
            assert len(holders) <= limit and permit.token in {h.token for h in holders}
            with condition:
                state["inside"] -= 1

    run_threads(*[worker] * total)
    assert state["peak"] == limit
    assert len(set(tokens)) == total  # a permit is a hold of its own, with its own token
    info = client.semaphore("sem-peak", limit=limit).describe()
    assert info.holders == () and info.waiters == ()


def waiters(semaphore: Semaphore, count: int) -> Callable[[], bool]:
    return lambda: len(semaphore.describe().waiters) == count


def test_permits_are_handed_to_waiters_first_come_first_served(clients: list[Client]) -> None:
    holder, waiter = clients
    semaphore = holder.semaphore("sem-fifo", limit=1)
    first = semaphore.acquire()
    assert first is not None and first.locked()
    order: list[str] = []

    def wait(tag: str) -> Callable[[], None]:
        def run() -> None:
            permit = waiter.semaphore("sem-fifo", limit=1).acquire(timeout=DEADLINE_S)
            assert permit is not None
            order.append(tag)
            permit.release()

        return run

    threads = [threading.Thread(target=wait(tag), daemon=True) for tag in ("early", "late")]
    for queued, thread in enumerate(threads, start=1):
        thread.start()  # the second starts once the first queues
        wait_until(waiters(semaphore, queued), DEADLINE_S)
    assert semaphore.acquire(blocking=False) is None  # no permit free, and waiters queue
    semaphore.release(first)
    for thread in threads:
        thread.join(DEADLINE_S)
    assert order == ["early", "late"]
    assert not first.locked() and first.released


def test_raising_the_limit_grants_a_waiter_at_once(clients: list[Client]) -> None:
    first, second = clients
    held = first.semaphore("sem-raise", limit=1).acquire()
    assert held is not None
    granted: list[Held] = []
    thread = threading.Thread(
        target=lambda: granted.append(second.semaphore("sem-raise", limit=1).acquire()),
        daemon=True,
    )
    thread.start()
    wait_until(lambda: first.semaphore("sem-raise", limit=1).describe().waiters, DEADLINE_S)
    # A try with limit 2 raises it: the queued waiter gets the new permit, not this try.
    assert first.semaphore("sem-raise", limit=2).acquire(blocking=False) is None
    thread.join(DEADLINE_S)
    assert granted and granted[0].locked() and held.locked()
    info = first.semaphore("sem-raise", limit=2).describe()
    assert info.limit == 2
    assert {h.token for h in info.holders} == {held.token, granted[0].token}
    granted[0].release()
    held.release()


def test_lock_many_in_opposite_orders_completes_without_overlap(clients: list[Client]) -> None:
    names = ["many-a", "many-b", "many-c"]
    guard = threading.Lock()
    inside: list[str] = []
    seen: list[tuple[str, dict[str, int]]] = []

    def worker(client: Client, tag: str, order: list[str]) -> Callable[[], None]:
        def run() -> None:
            session = client.session().id
            for _ in range(4):
                holds = client.lock_many(order, timeout=DEADLINE_S, description=tag)
                assert holds is not None
                with holds:
                    with guard:
                        assert not inside, f"{tag} entered while {inside} held the locks"
                        inside.append(tag)
                    assert list(holds) == order  # one hold per name, in the order asked
                    for name in names:  # the cluster agrees: this session, these tokens
                        holder = client.lock(name).describe().holder
                        assert holder is not None and holder.session_id == session
                        assert holder.token == holds[name].token and holder.description == tag
                    seen.append((tag, holds.tokens))
                    with guard:
                        inside.remove(tag)
                assert not holds.locked()

        return run

    first, second = clients
    run_threads(worker(first, "forward", names), worker(second, "backward", names[::-1]))
    assert sorted(tag for tag, _ in seen) == ["backward"] * 4 + ["forward"] * 4
    for name in names:  # every grant of each lock got a new, larger token
        tokens = [tokens[name] for _, tokens in seen]
        assert len(set(tokens)) == len(tokens)
        info = first.lock(name).describe()
        assert info.holder is None and info.waiters == ()


def test_a_timed_out_lock_many_leaves_no_waiter_behind(clients: list[Client]) -> None:
    first, second = clients
    blocker = first.lock("many-held")
    assert blocker.acquire(description={"job": "blocker"})
    assert second.lock_many(["many-free", "many-held"], timeout=0.3) is None
    assert second.lock_many(["many-free", "many-held"], timeout=0) is None  # try once
    for name in ("many-free", "many-held"):
        info = second.lock(name).describe()
        assert info.waiters == ()
    assert second.lock("many-free").describe().holder is None  # not held on its own either
    blocker.release()
    holds = second.lock_many(["many-free", "many-held"], timeout=DEADLINE_S)
    assert holds is not None and holds.locked()
    holds.release()
    with pytest.raises(RuntimeError):
        holds.release()


def test_descriptions_show_to_other_clients(clients: list[Client]) -> None:
    first, second = clients
    lock = first.lock("described", max_hold=60)
    assert lock.acquire(description={"job": "42", "step": "copy files"})
    semaphore = first.semaphore("described-pool", limit=1)
    permit = semaphore.acquire(description="nightly backup")
    assert permit is not None

    def rebuild() -> None:
        holds = second.lock_many(
            ["described", "described-other"], DEADLINE_S, description="rebuild"
        )
        assert holds is not None
        holds.release()

    waiting = threading.Thread(target=rebuild, daemon=True)
    waiting.start()
    try:
        info = wait_until(
            lambda: (i := second.lock("described").describe()).waiters and i, DEADLINE_S
        )
        assert info.holder is not None
        assert info.holder.description == "job=42 step='copy files'"
        assert info.holder.labels == {"job": "42", "step": "copy files"}
        assert info.holder.client_name == "worker-0" and info.holder.token == lock.token
        assert info.holder.expires_in is not None and 0 < info.holder.expires_in <= 60
        [waiter] = info.waiters
        assert waiter.description == "rebuild" and waiter.labels == {}
        assert waiter.names == ("described", "described-other")
        assert waiter.client_name == "worker-1"
        [holder] = second.semaphore("described-pool", limit=1).describe().holders
        assert holder.description == "nightly backup" and holder.token == permit.token
    finally:
        lock.release()
        waiting.join(DEADLINE_S)
        permit.release()
    with pytest.raises(ValueError, match="over 1024"):
        first.lock("described").acquire(description="x" * 1025)


def _aio(cluster: Cluster, index: int) -> aio.AsyncClient:
    return aio.connect(cluster.addresses, session_ttl=10, name=f"async-{index}")


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Asks the cluster until ``condition`` holds; fails the test past ``DEADLINE_S``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _queue_of(semaphore: aio.AsyncSemaphore, length: int) -> Callable[[], Awaitable[bool]]:
    async def queued() -> bool:
        return len((await semaphore.describe()).waiters) == length

    return queued


def test_asyncio_semaphore_limit_fifo_and_a_cancelled_wait(
    cluster: Cluster, clients: list[Client]
) -> None:
    async def scenario() -> None:
        async with _aio(cluster, 0) as client:
            semaphore = client.semaphore("async-sem", limit=2)
            async with semaphore as one, semaphore as two:
                assert one.token != two.token and one.locked() and two.locked()
                assert await semaphore.acquire(blocking=False) is None
                order: list[int] = []

                async def wait(tag: int) -> None:
                    permit = await semaphore.acquire(timeout=DEADLINE_S)
                    assert permit is not None
                    order.append(tag)
                    await permit.release()

                tasks = []
                for tag in range(2):
                    tasks.append(asyncio.create_task(wait(tag)))
                    await eventually(_queue_of(semaphore, tag + 1))
                cancelled = asyncio.create_task(semaphore.acquire())
                await eventually(_queue_of(semaphore, 3))
                cancelled.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await cancelled
                await eventually(_queue_of(semaphore, 2))  # the cancelled wait is withdrawn
            await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE_S)
            assert order == [0, 1]
            info = await semaphore.describe()
            assert info.holders == () and info.waiters == ()

    asyncio.run(scenario())


def test_asyncio_lock_many_in_opposite_orders_and_a_timeout(
    cluster: Cluster, clients: list[Client]
) -> None:
    names = ["async-many-a", "async-many-b"]

    async def scenario() -> None:
        async with _aio(cluster, 0) as first, _aio(cluster, 1) as second:
            inside: list[str] = []

            async def worker(client: aio.AsyncClient, order: list[str]) -> None:
                for _ in range(3):
                    holds = await client.lock_many(order, timeout=DEADLINE_S)
                    assert holds is not None
                    async with holds:
                        assert not inside
                        inside.append(order[0])
                        holder = (await client.lock(order[1]).describe()).holder
                        assert holder is not None and holder.token == holds[order[1]].token
                        await asyncio.sleep(0)  # let the other task try to get in
                        inside.remove(order[0])

            await asyncio.wait_for(
                asyncio.gather(worker(first, names), worker(second, names[::-1])), DEADLINE_S
            )
            lock = first.lock(names[1])
            assert await lock.acquire(description="async blocker")
            assert await second.lock_many(names, timeout=0.3) is None
            for name in names:
                assert (await second.lock(name).describe()).waiters == ()
            described = (await second.lock(names[1]).describe()).holder
            assert described is not None and described.description == "async blocker"
            await lock.release()

    asyncio.run(scenario())


EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "pools.py"


def test_the_docs_example_runs(cluster: Cluster, clients: list[Client]) -> None:
    command = [sys.executable, str(EXAMPLE), "--endpoints", ",".join(cluster.addresses)]
    example = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = example.communicate(timeout=DEADLINE_S)
    finally:
        if example.poll() is None:
            example.kill()
            example.wait()
    assert example.returncode == 0
    # Counted in the whole output: prints of threads may share a line.
    assert out.count("downloads, permit token") == 4
    assert out.count("transfer example-account-") == 2
    assert "{'job': 'nightly-report', 'step': 'render pdf'}" in out.splitlines()[-1]
