"""Semaphores, several locks at once, and descriptions, against any cluster.

    turnstile cluster up            # in another shell; it prints TURNSTILE_ENDPOINTS
    python docs/examples/pools.py   # or: --endpoints HOST:PORT,...

Four threads share three permits of a semaphore; two threads move money between the same two
accounts, locking both, each naming them in its own order (no deadlock); and a labelled hold
is read back by ``describe()``, as another client (or ``turnstile locks``) would see it.
"""

from __future__ import annotations

import argparse
import threading

import turnstile.client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", default=None, help="default: $TURNSTILE_ENDPOINTS")
    args = parser.parse_args()

    with turnstile.client.connect(args.endpoints, name="pools-example") as client:
        # Semaphores: at most three of the four threads hold a permit at once.
        def download(worker: int) -> None:
            with client.semaphore("example-downloads", limit=3, max_hold=60) as permit:
                print(f"worker {worker} downloads, permit token {permit.token}")

        threads = [threading.Thread(target=download, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # Several locks at once: all or none, so opposite orders never deadlock.
        def transfer(accounts: list[str]) -> None:
            holds = client.lock_many(accounts, max_hold=30, timeout=10)
            if holds is None:
                print("accounts busy, try later")
                return
            with holds:
                print(f"transfer {' -> '.join(accounts)}, fencing tokens {holds.tokens}")

        pair = ["example-account-a", "example-account-b"]
        movers = [threading.Thread(target=transfer, args=(order,)) for order in (pair, pair[::-1])]
        for thread in movers:
            thread.start()
        for thread in movers:
            thread.join()

        # Who holds what: a description (text, or labels as key=value pairs) on the acquire.
        lock = client.lock("example-report", max_hold=30)
        lock.acquire(description={"job": "nightly-report", "step": "render pdf"})
        try:
            holder = lock.describe().holder
            assert holder is not None
            print(f"held by session {holder.session_id} ({holder.client_name}): {holder.labels}")
        finally:
            lock.release()


if __name__ == "__main__":
    main()
