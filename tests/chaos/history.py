"""The history recorder's reading side: worker JSON lines -> checker operations.

Each operation is an ``invoke`` line and, if the worker lived to see it, a completion line.
An invocation without a completion (the worker was killed, or stopped mid-call) is ``info``:
it may or may not have taken effect, so it completes at infinity. ``session-open`` and
``keep-alive`` lines, with the ``lost`` session states, give each session as its own client
saw it (``ClientSession``), for the holder's-view check.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.checker import ClientSession, KeepAlive, Op


@dataclass
class Recorded:
    """Everything the workers saw."""

    ops: list[Op] = field(default_factory=list)
    #: (process, session, state, time) for every session state change a client announced.
    session_states: list[tuple[str, int, str, float]] = field(default_factory=list)
    #: (process, kind, accepted, time) for every fenced-resource call.
    resource_calls: list[tuple[str, str, bool, float]] = field(default_factory=list)
    #: Each session as its own client saw it, by id.
    sessions: dict[int, ClientSession] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        """Operations by ``kind outcome``, for the report; the lock acquires of an acquire of
        several count as ``many``."""
        return Counter(f"{'many' if op.batch else op.kind} {op.outcome}" for op in self.ops)


def read_history(paths: list[Path]) -> Recorded:
    recorded = Recorded()
    for path in paths:
        if not path.exists():
            continue
        open_ops: dict[int, dict[str, Any]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            kind = event["e"]
            if kind == "invoke":
                open_ops[event["op"]] = event
            elif kind in ("ok", "fail", "info"):
                start = open_ops.pop(event["op"])
                recorded.ops.append(_op(start, event))
            elif kind == "session":
                recorded.session_states.append((event["p"], event["s"], event["state"], event["t"]))
                if event["state"] == "lost" and event["s"] in recorded.sessions:
                    session = recorded.sessions[event["s"]]
                    session.lost = min(session.lost, event["t"])
            elif kind == "session-open":
                recorded.sessions[event["s"]] = ClientSession(event["ttl"], event["until"])
            elif kind == "keep-alive":
                recorded.sessions[event["s"]].keep_alives.append(
                    KeepAlive(event["sent"], event["t"])
                )
            elif kind in ("resource-read", "resource-write"):
                recorded.resource_calls.append((event["p"], kind, event["ok"], event["t"]))
        for start in open_ops.values():
            recorded.ops.append(_op(start, {"e": "info", "t": math.inf, "v": 0, "s": 0}))
    return recorded


def _op(start: dict[str, Any], end: dict[str, Any]) -> Op:
    key = start["key"]
    if isinstance(key, list):
        key = (key[0], key[1].encode())
    return Op(
        process=start["p"],
        session=end.get("s", 0),
        kind=start["k"],
        key=key,
        invoke=start["t"],
        complete=end["t"],
        outcome=end["e"],
        value=end.get("v", 0),
        max_hold_end=end.get("max_hold_end"),
        found=end["found"].encode() if "found" in end else None,
        limit=end.get("limit", 0),
        batch=start.get("batch", 0),
    )


def recovery_after(faults_ended: list[float], ops: list[Op]) -> list[float]:
    """For each heal time, seconds until the first operation that was invoked after it
    completed ``ok``: how long service took to resume (inf if it never did)."""
    oks = sorted((op.invoke, op.complete) for op in ops if op.outcome == "ok")
    recoveries = []
    for healed in faults_ended:
        after = [complete for invoke, complete in oks if invoke >= healed]
        recoveries.append(min(after, default=math.inf) - healed)
    return recoveries


def longest_gap(ops: list[Op]) -> float:
    """Longest time between two successive ok completions: the worst outage clients saw."""
    done = sorted(op.complete for op in ops if op.outcome == "ok")
    return max((b - a for a, b in itertools.pairwise(done)), default=0.0)
