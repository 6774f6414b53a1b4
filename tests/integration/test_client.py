"""The client library against a real cluster: contention, failover, session loss."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.cluster import Cluster, wait_until
from tests.integration.proxy import CuttableProxy
from turnstile.client import Client, LockLostError, RetryPolicy, SessionState, aio, connect

pytestmark = pytest.mark.integration


@pytest.fixture
def client(cluster: Cluster) -> Iterator[Client]:
    with connect(cluster.addresses, session_ttl=5) as opened:
        yield opened


def _check_no_overlap(holds: list[tuple[int, float, float]]) -> None:
    """holds: (token, acquired, released) as seen by the clients."""
    ordered = sorted(holds)
    tokens = [h[0] for h in ordered]
    assert len(set(tokens)) == len(tokens), "a token was granted twice"
    for (token, _, released), (next_token, acquired, _) in itertools.pairwise(ordered):
        assert released <= acquired, f"hold {token} overlaps hold {next_token}"


@pytest.mark.shared_cluster
def test_threads_contending_for_one_lock_never_overlap(cluster: Cluster) -> None:
    threads_per_client, clients, cycles = 3, 3, 15
    holds: list[tuple[int, float, float]] = []
    record = threading.Lock()
    opened = [connect(cluster.addresses, session_ttl=5) for _ in range(clients)]

    def worker(client: Client) -> None:
        lock = client.lock("contended", max_hold=30)
        for _ in range(cycles):
            assert lock.acquire(timeout=60)
            acquired = time.monotonic()
            token = lock.token
            assert token is not None
            time.sleep(0.001)
            released = time.monotonic()
            lock.release()
            with record:
                holds.append((token, acquired, released))

    workers = [
        threading.Thread(target=worker, args=(c,), daemon=True)
        for c in opened
        for _ in range(threads_per_client)
    ]
    try:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=120)
    finally:
        for c in opened:
            c.close()
    assert len(holds) == threads_per_client * clients * cycles
    _check_no_overlap(holds)


def test_leader_kill_during_blocked_acquires_and_inserts(cluster: Cluster) -> None:
    retry = RetryPolicy(deadline=30)
    holder = connect(cluster.addresses, session_ttl=10, retry=retry)
    waiters = [connect(cluster.addresses, session_ttl=10, retry=retry) for _ in range(3)]
    inserter = connect(cluster.addresses, session_ttl=10, retry=retry)
    outcomes: list[tuple[str, object]] = []
    record = threading.Lock()
    try:
        held = holder.lock("unit")
        assert held.acquire()
        results = inserter.distinct_list("results")
        results.set_up()

        def wait_for_lock(index: int, client: Client) -> None:
            lock = client.lock("unit")
            try:
                got = lock.acquire(timeout=60)
                token = lock.token
                time.sleep(0.05)
                lock.release()
                outcome: object = (got, token)
            except Exception as error:  # recorded and asserted on below
                outcome = error
            with record:
                outcomes.append((f"waiter-{index}", outcome))

        def insert_many() -> None:
            try:
                ids = [results.insert(f"key-{i % 40}") for i in range(120)]
                outcome: object = ids
            except Exception as error:  # recorded and asserted on below
                outcome = error
            with record:
                outcomes.append(("inserter", outcome))

        threads = [
            threading.Thread(target=wait_for_lock, args=(i, c), daemon=True)
            for i, c in enumerate(waiters)
        ]
        threads.append(threading.Thread(target=insert_many, daemon=True))
        for thread in threads:
            thread.start()
        leader = cluster.leader()
        time.sleep(0.5)
        cluster.nodes[cluster.index_of(leader)].kill()
        cluster.leader(timeout=30, exclude=leader)
        held.release()
        for thread in threads:
            thread.join(timeout=90)
    finally:
        for c in (holder, inserter, *waiters):
            c.close()
    failures = [(who, o) for who, o in outcomes if isinstance(o, Exception)]
    assert not failures, failures
    grants = [o for who, o in outcomes if who.startswith("waiter")]
    assert len(grants) == 3 and all(got for got, _ in grants)  # type: ignore[misc]
    tokens = [token for _, token in grants]  # type: ignore[misc]
    assert len(set(tokens)) == 3
    (ids,) = [o for who, o in outcomes if who == "inserter"]
    first_ids = {}
    for i, (added, id_) in enumerate(ids):  # type: ignore[arg-type]
        key = f"key-{i % 40}"
        assert added == (i < 40), (i, added)
        first_ids.setdefault(key, id_)
        assert first_ids[key] == id_
    assert sorted(first_ids.values()) == list(range(1, 41)), "ids must stay dense: no double apply"


@pytest.mark.shared_cluster
def test_a_cut_off_client_is_suspended_then_lost_before_anyone_else_gets_its_lock(
    cluster: Cluster,
) -> None:
    leader = cluster.leader()
    proxy = CuttableProxy(leader)
    history: list[tuple[float, str]] = []
    record = threading.Lock()

    def note(event: str) -> None:
        with record:
            history.append((time.monotonic(), event))

    cut_off = connect([proxy.address], session_ttl=2, retry=RetryPolicy(deadline=2))
    other = connect(cluster.addresses, session_ttl=10)
    try:
        lock = cut_off.lock("cut-off")
        assert lock.acquire()
        session = cut_off.session()
        session.add_listener(lambda state: note(state.value))
        rival_lock = other.lock("cut-off")

        granted_at: list[float] = []

        def rival() -> None:
            assert rival_lock.acquire(timeout=30)
            granted_at.append(time.monotonic())
            note("rival granted")

        thread = threading.Thread(target=rival, daemon=True)
        thread.start()
        proxy.cut()
        note("cut")
        thread.join(timeout=40)
        wait_until(session.lost.is_set, timeout=10)
        assert not lock.locked()
        with pytest.raises(LockLostError):
            lock.release()
        rival_lock.release()
    finally:
        cut_off.close()
        other.close()
    events = [e for _, e in sorted(history)]
    assert events.index("cut") < events.index("suspended") < events.index("lost")
    # The cut-off client counted its lock until alive_until; nobody else had it before then.
    assert granted_at[0] >= session.core.alive_until, (granted_at, session.core.alive_until)
    lost_at = next(t for t, e in history if e == "lost")
    assert lost_at - session.core.alive_until < 0.5, "LOST is announced at the deadline"


@pytest.mark.shared_cluster
def test_closing_a_client_releases_its_locks_at_once(cluster: Cluster) -> None:
    first = connect(cluster.addresses, session_ttl=30)
    second = connect(cluster.addresses, session_ttl=30)
    try:
        assert first.lock("closed-with-the-client").acquire()
        waiting = second.lock("closed-with-the-client")
        started = time.monotonic()
        result: list[bool] = []
        thread = threading.Thread(
            target=lambda: result.append(waiting.acquire(timeout=20)), daemon=True
        )
        thread.start()
        time.sleep(0.3)
        first.close()
        thread.join(timeout=30)
        assert result == [True]
        assert time.monotonic() - started < 20  # well before the 30 s TTL: not an expiry
        waiting.release()
    finally:
        second.close()


@pytest.mark.shared_cluster
def test_asyncio_client_locks_and_lists(cluster: Cluster) -> None:
    async def scenario() -> None:
        async with aio.connect(cluster.addresses, session_ttl=5) as first:
            second = aio.connect(cluster.addresses, session_ttl=5)
            try:
                async with first.lock("async-unit") as held:
                    token = held.token
                    assert not await second.lock("async-unit").acquire(blocking=False)
                rival = second.lock("async-unit")
                assert await rival.acquire(timeout=5)
                assert rival.token is not None and token is not None and rival.token > token
                await rival.release()
                results = first.distinct_list("async-results")
                assert await results.insert("a") == (True, 1)
                assert await second.distinct_list("async-results").insert("a") == (False, 1)
                assert [m async for m in results] == [(b"a", 1)]
                assert (await second.session()).state is SessionState.CONNECTED
            finally:
                await second.close()

    asyncio.run(scenario())


@pytest.mark.shared_cluster
def test_a_blocked_acquire_survives_its_connection_breaking(cluster: Cluster) -> None:
    """The leader withdraws the wait of a broken connection (never a grant); the client asks
    again, and gets the lock when it is released: one holder at a time throughout."""
    leader = cluster.leader()
    proxy = CuttableProxy(leader)
    holder = connect(cluster.addresses, session_ttl=10)
    waiter = connect([proxy.address, *cluster.addresses], session_ttl=10)
    try:
        first = holder.lock("blip")
        assert first.acquire()
        second = waiter.lock("blip")
        result: list[bool] = []
        thread = threading.Thread(
            target=lambda: result.append(second.acquire(timeout=30)), daemon=True
        )
        thread.start()
        time.sleep(0.5)
        proxy.reset()
        time.sleep(1.0)
        assert not result, "the waiter must still be waiting, not told yes or no"
        first_token = first.token
        first.release()
        thread.join(timeout=30)
        assert result == [True]
        assert second.token is not None and first_token is not None
        assert second.token > first_token
        assert second.validate()
        second.release()
    finally:
        holder.close()
        waiter.close()
        proxy.cut()
