"""Prints the release-to-waiter hand-off latency and the failover gap of a local cluster.

Run from the repository root: ``.venv/bin/python -m bench.handoff_failover``. It starts a real
three-node cluster on free loopback ports (in a temporary directory), measures, and stops it.

- hand-off: a waiter blocks in Acquire; the holder releases; time from sending the release to
  the waiter's Acquire returning with the lock. Reported as p50 / p99 / max over N rounds.
- failover: 4 client threads run acquire+release pairs on their own lock names; the leader is
  killed with SIGKILL; the longest time with no successful pair, and when the first success
  after the kill came.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tests.integration.cluster import Cluster, WireClient, wait_until
from turnstile.v1 import turnstile_pb2 as pb


def handoff(cluster: Cluster, rounds: int) -> list[float]:
    leader = cluster.leader()
    holder = WireClient(cluster, leader, name="holder").open()
    waiter = WireClient(cluster, leader, name="waiter").open()
    locks = cluster.stubs(leader).locks
    samples = []
    for i in range(rounds):
        name = f"handoff-{i}"
        held = holder.acquire(name)
        granted: list[float] = []

        def wait_for_grant(lock_name: str = name, out: list[float] = granted) -> None:
            waiter.acquire(lock_name, wait_ms=10_000)
            out.append(time.perf_counter())

        thread = threading.Thread(target=wait_for_grant, daemon=True)
        thread.start()
        wait_until(
            lambda n=name: (
                len(locks.Describe(pb.DescribeLockRequest(name=n), timeout=5).lock.waiters) == 1
            ),
            interval=0.001,
        )
        sent = time.perf_counter()
        holder.release(name, held.token)
        thread.join()
        samples.append(granted[0] - sent)
    return samples


def failover(cluster: Cluster, clients: int, seconds: float) -> tuple[float, float]:
    leader = cluster.leader()
    stop = threading.Event()
    successes: list[float] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        client = WireClient(cluster, leader, ttl_ms=10_000, name=f"worker-{index}").open()
        while not stop.is_set():
            try:
                held = client.acquire(f"failover-{index}", max_hold_ms=10_000)
                client.release(f"failover-{index}", held.token)
            except Exception:  # a failed pair is simply not a success
                continue
            with lock:
                successes.append(time.monotonic())

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 2)
    killed = time.monotonic()
    cluster.nodes[cluster.index_of(leader)].kill()
    time.sleep(seconds / 2)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    times = sorted(successes)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    first_after = min((t for t in times if t > killed), default=float("nan"))
    return max(gaps), first_after - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--failovers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        cluster = Cluster(Path(directory) / "hand-off")
        try:
            cluster.start_all()
            samples = sorted(handoff(cluster, args.rounds))
        finally:
            cluster.close()
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(
            f"hand-off release->grant over {len(samples)} rounds: "
            f"p50 {statistics.median(samples) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
            f"max {samples[-1] * 1000:.2f} ms"
        )
        for run in range(args.failovers):
            cluster = Cluster(Path(directory) / f"failover-{run}")
            try:
                cluster.start_all()
                gap, first = failover(cluster, clients=4, seconds=8)
            finally:
                cluster.close()
            print(
                f"failover run {run + 1}: longest gap with no successful lock pair {gap:.2f} s; "
                f"first success {first:.2f} s after kill -9 of the leader"
            )


if __name__ == "__main__":
    main()
