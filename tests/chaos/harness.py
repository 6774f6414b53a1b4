"""One chaos run: a cluster, workload processes, the fenced resource, faults, and the verdict.

``ChaosRun.finish`` stops the workers, heals everything, reads every list back, and checks
the recorded histories with the independent checker (with the group and election probes taken
during the run, when election workers ran), the fenced resource for lost updates, and
liveness: after each fault ended, some operation invoked after it completed ok within
``LIVENESS_BOUND`` seconds. It prints one summary line per run (what ``docs/reliability.md``
tabulates from a soak).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.checker import MembershipProbe, Violation, check
from tests.chaos.faults import ChaosCluster
from tests.chaos.history import Recorded, longest_gap, read_history, recovery_after
from tests.chaos.resource import FencedResource, ResourceServer
from tests.integration.cluster import wait_until
from turnstile.client import Client, RetryPolicy, TurnstileError, connect
from turnstile.v1 import turnstile_pb2 as pb

REPO = Path(__file__).resolve().parents[2]

#: Seconds within which service must resume after a fault ends (measured values are printed).
#: Election timeout (0.5-1 s) + taking office + the client's retry backoff (up to 1 s) fit
#: well inside; it is generous because CI machines are shared.
LIVENESS_BOUND = 15.0

#: The group the election workers join and the election they stand in.
GROUP, ELECTION = "workers", "leader"
#: Seconds between two probes of the group and the election.
PROBE_INTERVAL = 0.5

#: Seconds each scenario keeps injecting faults; ``TURNSTILE_CHAOS_SECONDS`` lengthens every
#: scenario into a soak (e.g. 3600).
SOAK_SECONDS = float(os.environ.get("TURNSTILE_CHAOS_SECONDS", "0"))


def rounds(minimum: int) -> Iterator[int]:
    """Fault rounds: ``minimum`` in CI, or as many as fit in ``TURNSTILE_CHAOS_SECONDS``."""
    deadline = time.monotonic() + SOAK_SECONDS
    count = 0
    while count < minimum or time.monotonic() < deadline:
        yield count
        count += 1


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    history: Path


@dataclass
class ChaosRun:
    """Workers against ``cluster``; every process is stopped by PID in ``close``."""

    cluster: ChaosCluster
    directory: Path
    fencing: bool = True
    resource: FencedResource = field(init=False)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    lists: set[str] = field(default_factory=set)
    probes: list[MembershipProbe] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._probing = threading.Event()
        self._prober: threading.Thread | None = None
        self.resource = FencedResource(fencing=self.fencing)
        host = self.cluster.network.gateway if self.cluster.network else "127.0.0.1"
        self.server = ResourceServer(self.resource, host)
        self.directory.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ workers

    def start_worker(
        self, name: str, workload: str, prefix: tuple[str, ...] = (), **spec: Any
    ) -> None:
        """Starts one workload process (see ``worker.py`` for the workloads and ``spec``)."""
        history = self.directory / f"{name}.jsonl"
        # Each worker starts at another node, as the bench's clients do: the clients of a
        # follower have their calls forwarded to the leader, those of the leader do not.
        start = len(self.workers) % len(self.cluster.addresses)
        spec = {
            "process": name,
            "workload": workload,
            "endpoints": self.cluster.addresses[start:] + self.cluster.addresses[:start],
            "history": str(history),
            "resource": self.server.address,
            "seed": len(self.workers) + 1,
            **spec,
        }
        if workload == "insert":
            self.lists.add(spec["list"])
        if workload == "election" and self._prober is None:
            self._prober = threading.Thread(target=self._probe_loop, daemon=True)
            self._prober.start()
        spec_path = self.directory / f"{name}.json"
        spec_path.write_text(json.dumps(spec))
        with (self.directory / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "tests.chaos.worker", str(spec_path)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.workers[name] = WorkerProcess(name, process, history)

    def start_standard_load(self, lock_workers: int = 2, insert_workers: int = 2) -> None:
        """Lock pairs over a few names, fenced increments, and inserts with reads."""
        for i in range(lock_workers):
            self.start_worker(f"lock{i}", "lock", names=["a", "b", "c"])
        self.start_worker("fenced0", "fenced", names=["fenced"], hold=0.05)
        self.start_worker("fenced1", "fenced", names=["fenced"], hold=0.05)
        for i in range(insert_workers):
            self.start_worker(f"insert{i}", "insert", list="results")
        for i in range(2):
            self.start_worker(f"elect{i}", "election", group=GROUP, election=ELECTION)
        for i in range(2):
            self.start_worker(f"sem{i}", "semaphore", semaphore="pool", limit=2, threads=2)
        # Together with the lock workers' single acquires of the same names.
        self.start_worker("many0", "many", names=["a", "b", "c"])

    # ------------------------------------------------------------------ probes

    def _probe_loop(self) -> None:
        """Reads the group and the election every PROBE_INTERVAL (``MembershipProbe``); a
        probe that meets a fault is dropped, not retried."""
        retry = RetryPolicy(deadline=3.0, attempt_timeout=1.0)
        with connect(self.cluster.addresses, retry=retry, name="prober") as client:
            while not self._probing.wait(PROBE_INTERVAL):
                with contextlib.suppress(TurnstileError):
                    self.probes.append(_probe(client))

    def _stop_probing(self) -> None:
        self._probing.set()
        if self._prober is not None:
            self._prober.join(timeout=30)

    def pause_worker(self, name: str) -> None:
        self.workers[name].process.send_signal(signal.SIGSTOP)

    def resume_worker(self, name: str) -> None:
        self.workers[name].process.send_signal(signal.SIGCONT)

    def recorded(self) -> Recorded:
        return read_history([w.history for w in self.workers.values()])

    def wait_for_progress(self, ops: int = 10, timeout: float = 60.0) -> None:
        """Until ``ops`` more operations have completed ok than when called."""
        before = self._ok_count()
        wait_until(lambda: self._ok_count() >= before + ops, timeout, interval=0.1)

    def _ok_count(self) -> int:
        return sum(1 for op in self.recorded().ops if op.outcome == "ok")

    def stop_workers(self) -> None:
        """SIGCONT (a paused worker must see the TERM), SIGTERM, then SIGKILL after 20 s."""
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGCONT)
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for worker in self.workers.values():
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()

    # ------------------------------------------------------------------ verdict

    def wait_for_recovery(self) -> list[float]:
        """Waits until service resumed after every fault (or LIVENESS_BOUND passed)."""
        ends = [f.end for f in self.cluster.faults]
        deadline = max(ends, default=time.monotonic()) + LIVENESS_BOUND

        def recovered() -> bool:
            return all(r < math.inf for r in recovery_after(ends, self.recorded().ops))

        while not recovered() and time.monotonic() < deadline:
            time.sleep(0.2)
        return recovery_after(ends, self.recorded().ops)

    def final_lists(self) -> dict[str, list[tuple[int, bytes]]]:
        """Every list as it stands, read linearizably from the healed cluster."""
        with connect(self.cluster.addresses, retry=RetryPolicy(deadline=60)) as client:
            return {
                name: [(member_id, member) for member, member_id in client.distinct_list(name)]
                for name in sorted(self.lists)
            }

    def finish(self, scenario: str) -> Report:
        """Stops the load, checks everything, prints the summary line; returns the report."""
        recoveries = self.wait_for_recovery()
        self._stop_probing()
        self.stop_workers()
        recorded = self.recorded()
        violations = check(recorded.ops, self.final_lists(), recorded.sessions, self.probes)
        slow = [r for r in recoveries if not r <= LIVENESS_BOUND]
        if slow:
            violations.append(
                Violation("liveness", f"service resumed after {slow} s (bound {LIVENESS_BOUND})")
            )
        report = Report(
            scenario=scenario,
            faults=Counter(f.kind for f in self.cluster.faults),
            ops=recorded.counts(),
            recoveries=recoveries,
            longest_gap=longest_gap(recorded.ops),
            lost_updates=self.resource.lost_updates(),
            probes=len(self.probes),
            refused_by_resource=len(self.resource.refused),
            violations=violations,
            recorded=recorded,
        )
        print(report.line())
        return report

    def close(self) -> None:
        self._stop_probing()
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGCONT)
                worker.process.kill()
                worker.process.wait()
        self.server.close()


def _live_sessions(client: Client) -> frozenset[int]:
    live: set[int] = set()
    request = pb.ListSessionsRequest()
    while page := list(client.invoke(request).sessions):
        live.update(s.session_id for s in page)
        request.after_session_id = page[-1].session_id
    return frozenset(live)


def _probe(client: Client) -> MembershipProbe:
    before = _live_sessions(client)
    described_at = time.monotonic()
    members = client.invoke(pb.DescribeGroupRequest(name=GROUP)).group.members
    election = client.invoke(pb.DescribeElectionRequest(name=ELECTION)).election
    leader = election.leader.session_id if election.HasField("leader") else None
    return MembershipProbe(
        GROUP,
        before,
        described_at,
        {m.member_id: m.session_id for m in members},
        leader,
        _live_sessions(client),
    )


@dataclass
class Report:
    scenario: str
    faults: Counter[str]
    ops: Counter[str]
    recoveries: list[float]
    longest_gap: float
    lost_updates: list[str]
    probes: int
    refused_by_resource: int
    violations: list[Violation]
    recorded: Recorded

    def line(self) -> str:
        worst = max(self.recoveries, default=0.0)
        return (
            f"CHAOS {self.scenario}: faults {dict(self.faults)}; "
            f"ops {sum(self.ops.values())} ({dict(sorted(self.ops.items()))}); "
            f"longest recovery {worst:.2f} s, longest gap {self.longest_gap:.2f} s; "
            f"resource refused {self.refused_by_resource}, "
            f"lost updates {len(self.lost_updates)}; group probes {self.probes}; "
            f"violations {len(self.violations)}"
        )

    def assert_safe(self, *kinds: str, excused: tuple[str, ...] = ()) -> None:
        """No violation (of an invariant not ``excused`` by the scenario), no lost update,
        and some of each operation ``kinds`` succeeded (a run that did nothing proves
        nothing)."""
        problems = [
            f"{v.invariant}: {v.detail}" for v in self.violations if v.invariant not in excused
        ] + self.lost_updates
        assert not problems, "\n".join(problems[:30])
        ran = any(kind.startswith("join ") for kind in self.ops)
        elections = ("campaign", "resign", "join") if ran else ()
        permits = ("permit", "unpermit") if any(k.startswith("permit ") for k in self.ops) else ()
        many = ("many",) if any(k.startswith("many ") for k in self.ops) else ()
        for kind in kinds or (
            "acquire",
            "release",
            "insert",
            "read",
            *elections,
            *permits,
            *many,
        ):
            assert self.ops[f"{kind} ok"] > 0, f"no {kind} succeeded: {self.ops}"
