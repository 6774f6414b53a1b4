"""The original use case: workers share work units and agree on result ids.

Run several of these at once against one cluster. Each worker walks the same work units; a
per-unit lock makes sure only one worker processes a unit, a distinct list of finished units
makes sure it is processed once, and a distinct list of result keys gives every distinct result
one id, so two workers producing the same key get the same id. One JSON line per unit done.

    python docs/examples/work_units.py --endpoints HOST:PORT,... --worker w1 --units 40
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import turnstile.client


def process(unit: int) -> str:
    """The work: here, a result key that several units share."""
    time.sleep(0.01)
    return "result-" + hashlib.sha256(str(unit % 7).encode()).hexdigest()[:8]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--units", type=int, default=40)
    parser.add_argument("--run", default="run-1")
    args = parser.parse_args()

    with turnstile.client.connect(args.endpoints, name=args.worker) as client:
        done = client.distinct_list(f"{args.run}-done", ttl=3600)
        results = client.distinct_list(f"{args.run}-results", ttl=3600)
        for unit in range(args.units):
            lock = client.lock(f"{args.run}-unit-{unit}", max_hold=30)
            if not lock.acquire(blocking=False):
                continue  # another worker has it right now
            try:
                if str(unit) in done:
                    continue  # another worker finished it already
                key = process(unit)
                added, result_id = results.insert(key)
                done.insert(str(unit))
                print(
                    json.dumps(
                        {
                            "worker": args.worker,
                            "unit": unit,
                            "key": key,
                            "id": result_id,
                            "new": added,
                            "token": lock.token,
                        }
                    ),
                    flush=True,
                )
            finally:
                lock.release()


if __name__ == "__main__":
    main()
