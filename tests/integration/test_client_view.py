"""The client's view of a hold against a real cluster: it never outlasts the cluster's, and an
acquire the client gave up on does not leave the lock held."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.cluster import Cluster, WireClient, error_reason, wait_until
from tests.integration.proxy import CuttableProxy
from turnstile.client import LockLostError, RetryPolicy, UnavailableError, aio, connect
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

#: One cluster for the module: each test uses names of its own and stops no node.
pytestmark = [pytest.mark.integration, pytest.mark.shared_cluster]


def holder_of(cluster: Cluster, name: str) -> pb.LockHolder | None:
    """The lock's holder as the leader sees it (linearizable), or None when it is free."""
    lock = cluster.lock_info(name)
    return lock.holder if lock.HasField("holder") else None


def waiters_of(cluster: Cluster, name: str) -> int:
    return len(cluster.lock_info(name).waiters)


def wait_for_abandon(cluster: Cluster) -> None:
    """Until the new cluster has raised its version to one with Abandon (FAILED_PRECONDITION
    before: a cluster part-way through an upgrade)."""
    probe = WireClient(cluster, cluster.leader()).open()

    def supported() -> bool:
        request = pb.AbandonRequest(request=probe.request_id(), name="probe", acquire_seq=1000)
        try:
            probe.call("locks", "Abandon", request)
        except grpc.RpcError as error:
            if error_reason(error) is Reason.FAILED_PRECONDITION:
                return False
            raise
        return True

    wait_until(supported, timeout=20)


def outcome_of(call: Callable[[], Any], into: list[object]) -> threading.Thread:
    """Runs ``call`` in a thread, appending what it returned or raised to ``into``."""

    def run() -> None:
        try:
            into.append(call())
        except Exception as error:  # asserted on by the test
            into.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_wait_longer_than_max_hold_raises_lock_lost_and_leaves_the_lock_free(
    cluster: Cluster,
) -> None:
    holder, waiter, third = (connect(cluster.addresses, session_ttl=10) for _ in range(3))
    try:
        held = holder.lock("past-max-hold")
        assert held.acquire()
        late = waiter.lock("past-max-hold", max_hold=1.0)
        outcome: list[object] = []
        thread = outcome_of(lambda: late.acquire(timeout=30), outcome)
        wait_until(lambda: waiters_of(cluster, "past-max-hold") == 1)
        time.sleep(1.2)  # past the waiter's max-hold, counted from its send
        held.release()
        thread.join(timeout=20)
        (error,) = outcome
        assert isinstance(error, LockLostError), error
        assert "max_hold" in str(error)
        assert not late.locked()
        # given back at once, not left to the cluster's max-hold (a second after the grant)
        assert third.lock("past-max-hold").acquire(blocking=False)
    finally:
        for client in (holder, waiter, third):
            client.close()


def test_an_async_wait_longer_than_max_hold_raises_lock_lost_and_leaves_the_lock_free(
    cluster: Cluster,
) -> None:
    async def scenario() -> None:
        async with (
            aio.connect(cluster.addresses, session_ttl=10) as holder,
            aio.connect(cluster.addresses, session_ttl=10) as waiter,
            aio.connect(cluster.addresses, session_ttl=10) as third,
        ):
            held = holder.lock("async-past-max-hold")
            assert await held.acquire()
            late = asyncio.create_task(
                waiter.lock("async-past-max-hold", max_hold=1.0).acquire(timeout=30)
            )
            await asyncio.sleep(1.5)
            await held.release()
            with pytest.raises(LockLostError, match="max_hold"):
                await asyncio.wait_for(late, 20)
            assert await third.lock("async-past-max-hold").acquire(blocking=False)

    asyncio.run(scenario())


def test_the_lock_command_does_not_start_a_command_whose_max_hold_ran_out_while_waiting(
    cluster: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    env = {"TURNSTILE_ENDPOINTS": ",".join(cluster.addresses), "PATH": "/usr/bin:/bin"}
    with connect(cluster.addresses, session_ttl=10) as holder:
        held = holder.lock("cli-past-max-hold")
        assert held.acquire()
        args = [
            "lock",
            "cli-past-max-hold",
            "--max-hold",
            "1",
            "--wait",
            "30",
            "--",
            "touch",
            str(marker),
        ]
        command = subprocess.Popen(
            [sys.executable, "-m", "turnstile.cluster", *args],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: waiters_of(cluster, "cli-past-max-hold") == 1)
        time.sleep(1.2)
        held.release()
        _, stderr = command.communicate(timeout=30)
    assert command.returncode == 8, stderr
    assert "max_hold" in stderr and "not started" in stderr
    assert not marker.exists()
    assert holder_of(cluster, "cli-past-max-hold") is None


def test_an_acquire_given_up_without_its_grant_is_abandoned_and_the_lock_freed(
    cluster: Cluster,
) -> None:
    """The waiter's network hangs (neither end sees it) just before it is granted the lock: it
    gives up at its deadline without the answer, the cluster still has it holding the lock,
    and its keep-alive thread abandons that acquire once the network is back."""
    wait_for_abandon(cluster)
    proxy = CuttableProxy(cluster.leader())
    holder = connect(cluster.addresses, session_ttl=10)
    waiter = connect([proxy.address], session_ttl=10, retry=RetryPolicy(deadline=0.5))
    try:
        held = holder.lock("given-up")
        assert held.acquire()
        session = waiter.session()
        outcome: list[object] = []
        thread = outcome_of(lambda: waiter.lock("given-up").acquire(timeout=2), outcome)
        wait_until(lambda: waiters_of(cluster, "given-up") == 1)
        proxy.stall()
        held.release()  # handed to the waiter; the answer hangs in the proxy
        thread.join(timeout=20)
        (error,) = outcome
        assert isinstance(error, UnavailableError), error
        granted = holder_of(cluster, "given-up")
        assert granted is not None and granted.session_id == session.id
        assert session.core.pending_writes()  # could not be sent: left to the keep-alives
        proxy.flow()
        wait_until(lambda: holder_of(cluster, "given-up") is None, timeout=20)
        assert session.alive()  # freed by the Abandon, not by the session's end
        assert holder.lock("given-up").acquire(blocking=False)
    finally:
        holder.close()
        waiter.close()
        proxy.cut()


def test_a_task_cancelled_while_waiting_leaves_no_waiter_and_no_holder(cluster: Cluster) -> None:
    """``asyncio.wait_for`` shorter than the wait: the acquire is abandoned, so the release
    that follows frees the lock instead of handing it to nobody."""
    wait_for_abandon(cluster)

    async def scenario() -> None:
        async with (
            aio.connect(cluster.addresses, session_ttl=10) as holder,
            aio.connect(cluster.addresses, session_ttl=10) as waiter,
        ):
            held = holder.lock("cancelled-task")
            assert await held.acquire()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(waiter.lock("cancelled-task").acquire(timeout=30), 1.0)
            session = await waiter.session()
            for _ in range(100):
                if not session.core.pending_writes():
                    break
                await asyncio.sleep(0.05)
            assert session.core.pending_writes() == []
            assert waiters_of(cluster, "cancelled-task") == 0
            await held.release()
            assert holder_of(cluster, "cancelled-task") is None

    asyncio.run(scenario())
