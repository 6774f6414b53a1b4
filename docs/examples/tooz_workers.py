"""tooz on Turnstile: a worker joins a group with its capabilities, stands for leader, takes a
lock with a fencing token, and partitions work across the group's members.

    python docs/examples/tooz_workers.py --endpoints HOST:PORT,HOST:PORT,HOST:PORT --worker w1

Needs ``pip install 'turnstile[tooz]'``. Prints one JSON line of what it saw.
"""

from __future__ import annotations

import argparse
import json

from tooz import coordination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--worker", required=True)
    args = parser.parse_args()
    # timeout: the session TTL. A worker that stops heartbeating leaves its groups, elections
    # and locks that many seconds after its last heartbeat; start_heart beats from a thread.
    url = f"turnstile://{args.endpoints}?timeout=10"
    coordinator = coordination.get_coordinator(url, args.worker.encode())
    coordinator.start(start_heart=True)
    try:
        elected: list[coordination.LeaderElected] = []
        coordinator.watch_elected_as_leader(b"workers", elected.append)
        partitioner = coordinator.join_partitioned_group(b"workers", weight=2)
        coordinator.run_watchers()  # stands for leader; LeaderElected fires if it won
        leader = coordinator.get_leader(b"workers").get()
        lock = coordinator.get_lock(b"unit-42")
        with lock:
            token = lock.token  # type: ignore[attr-defined]  # Turnstile's fencing token
        units = [f"unit-{i}" for i in range(10)]
        mine = [u for u in units if partitioner.belongs_to_self(u)]
        members = coordinator.get_members_with_capabilities(b"workers").get()
        report = {
            "leader": leader.decode() if leader else None,
            "elected": bool(elected),
            "token": token,
            "mine": mine,
            "members": {m.decode(): caps for m, caps in members.items()},
        }
        print(json.dumps(report, sort_keys=True))
        coordinator.leave_partitioned_group(partitioner)
    finally:
        coordinator.stop()  # leaves its groups and ends the session: the next candidate leads


if __name__ == "__main__":
    main()
