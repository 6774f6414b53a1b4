"""Runs every workload against one system and turns the records into numbers + checks."""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnstile.bench import stats
from turnstile.bench.systems import (
    PEER_CLUSTERS,
    LocalCluster,
    SystemUnavailableError,
    TurnstileCluster,
    process_cpu_seconds,
    process_rss_bytes,
)
from turnstile.bench.workers import IdleSessions, Job, Records, WorkerError, dead_client, run_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What to run; ``quick`` shrinks it to a smoke test. The first client count is one
    client per member, the least load the bench puts on: a stall that load hides (an answer
    that waits for the next unrelated log entry) shows there."""

    clients: tuple[int, ...] = (3, 16, 64)
    processes: int = 8
    duration: float = 10.0
    batch: int = 100
    failover_clients: int = 4
    failover_duration: float = 10.0
    dead_client_ttl: float = 2.0
    idle_sessions: int = 10_000
    idle_window: float = 10.0
    session_ttl: float = 10.0

    @classmethod
    def quick(cls, clients: tuple[int, ...] = (4,)) -> Plan:
        return cls(
            clients=clients,
            processes=2,
            duration=1.0,
            batch=100,
            failover_duration=4.0,
            idle_sessions=500,
            idle_window=1.0,
        )


#: Turnstile's durability when the bench did not start the cluster (``--endpoints``).
UNKNOWN_DURABILITY = "unknown"


@dataclass(frozen=True)
class System:
    """One system of a run: ``kind`` picks the cluster and the driver; Turnstile's runs also
    carry their durability, so one run can measure both modes side by side."""

    kind: str
    #: Turnstile only: fsync, none, or unknown (a running cluster, ``--endpoints``).
    durability: str | None = None
    #: Turnstile only: whether followers forward their stream clients' calls to the leader
    #: (the node option ``forward_streams``).
    forwarding: bool = True

    @property
    def name(self) -> str:
        """The key in the JSON and the table's column. The fsync run with forwarding keeps
        the plain name: it is the one compared with the peers, which fsync every commit and
        whose followers forward too."""
        variant = [
            *(["durability=none"] if self.durability == "none" else []),
            *([] if self.forwarding else ["forwarding off"]),
        ]
        return f"{self.kind} ({', '.join(variant)})" if variant else self.kind


#: The row whose clients all talk to followers (what forwarding takes off the leader); only
#: on a cluster the bench started, which knows its leader.
VIA_FOLLOWERS = "lock_followers"


#: (row key prefix, workload, batch) of the throughput rows, in table order.
def throughput_rows(batch: int) -> list[tuple[str, str, int]]:
    return [
        ("lock_uncontended", "lock_uncontended", 1),
        (VIA_FOLLOWERS, "lock_uncontended", 1),
        ("lock_contended", "lock_contended", 1),
        ("insert_one", "insert", 1),
        (f"insert_batch{batch}", "insert", batch),
        ("read_linearizable", "read_linearizable", 1),
        ("read_stale", "read_stale", 1),
    ]


def summarize(records: Records, duration: float, batch: int = 1) -> dict[str, Any]:
    """Throughput, latency and the correctness counters of one run."""
    ops = len(records.ops)
    latencies = [done - sent for sent, done in records.ops]
    row: dict[str, Any] = {
        "ops": ops,
        "ops_per_s": round(ops / duration, 1),
        **stats.latency_ms(latencies),
        "cdf_ms": stats.cdf_ms(latencies),
        "errors": records.errors,
        "violations": 0,
    }
    if records.holds:
        check = stats.check_holds(stats.Hold(*h) for h in records.holds)
        row["overlaps"] = check.overlaps
        row["token_regressions"] = check.token_regressions
        row["violations"] += check.overlaps + check.token_regressions
        if check.handoffs:
            row["handoffs"] = len(check.handoffs)
            row["handoffs_per_s"] = round(len(check.handoffs) / duration, 1)
            handoff = stats.latency_ms(check.handoffs)
            row["handoff_p50_ms"] = handoff["p50_ms"]
            row["handoff_p99_ms"] = handoff["p99_ms"]
    if records.inserts:
        ids = stats.check_ids(records.inserts)
        row["members_per_s"] = round(ids.inserts / duration, 1)
        row["batch"] = batch
        row["duplicate_pct"] = round(100 * ids.duplicates / max(1, ids.inserts), 1)
        row["unstable_ids"] = ids.unstable_ids
        row["shared_ids"] = ids.shared_ids
        row["double_adds"] = ids.double_adds
        row["violations"] += ids.unstable_ids + ids.shared_ids + ids.double_adds
    return row


class CpuSampler:
    """Samples the servers' CPU time at the start and the end of a run (the ``during`` hook
    of ``run_job``); ``leader`` is the leader's PID among ``pids`` when the run began."""

    def __init__(self, pids: list[int], duration: float, leader: int | None = None) -> None:
        self.pids = pids
        self.duration = duration
        self.leader = leader
        self.samples: list[list[float | None]] = []

    def __call__(self, start: float) -> None:
        time.sleep(max(0.0, start - time.monotonic()))
        self.samples.append([process_cpu_seconds(p) for p in self.pids])
        time.sleep(max(0.0, start + self.duration - time.monotonic()))
        self.samples.append([process_cpu_seconds(p) for p in self.pids])

    def per_op(self, ops: int) -> dict[str, Any]:
        """CPU milliseconds per operation of the busiest server process, of the leader (when
        followers forward, the busiest may be a follower), and of all of them together."""
        if len(self.samples) != 2 or not self.pids or not ops:
            return {}
        by_pid = {
            pid: (after - before) * 1000
            for pid, before, after in zip(self.pids, *self.samples, strict=True)
            if before is not None and after is not None
        }
        if not by_pid:
            return {}
        used = list(by_pid.values())
        per_op = {
            "busiest_server_cpu_ms_per_op": round(max(used) / ops, 4),
            "servers_cpu_ms_per_op": round(sum(used) / ops, 4),
        }
        if self.leader in by_pid:
            per_op["leader_cpu_ms_per_op"] = round(by_pid[self.leader] / ops, 4)
        return per_op


def _cpu_percent(pids: list[int], window: float) -> list[float]:
    before = [process_cpu_seconds(p) for p in pids]
    time.sleep(window)
    after = [process_cpu_seconds(p) for p in pids]
    return [
        round(100 * (b - a) / window, 2) if a is not None and b is not None else math.nan
        for a, b in zip(before, after, strict=True)
    ]


class SystemRun:
    """One system: start its cluster (or use ``endpoints``), run the plan, stop it."""

    def __init__(
        self,
        system: System,
        plan: Plan,
        progress: Callable[[str], None],
        endpoints: list[str] | None = None,
    ) -> None:
        self.system = system
        self.plan = plan
        self.progress = progress
        self.endpoints = endpoints
        self.rows: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        """The system's result; a Turnstile one names the durability it was measured in, and
        whether its followers forwarded (unless it ran on ``--endpoints``)."""
        if self.system.durability is None:
            return self._run()
        forwarding = {} if self.endpoints else {"forwarding": self._forwarding()}
        return {"durability": self.system.durability, **forwarding, **self._run()}

    def _forwarding(self) -> str:
        return "on" if self.system.forwarding else "off"

    def _run(self) -> dict[str, Any]:
        if self.endpoints is not None:
            self._throughput(self.endpoints, tag_base="remote", pids=[], leader=None)
            return {"available": True, "cluster": "given endpoints", "rows": self.rows}
        with tempfile.TemporaryDirectory(
            prefix=f"turnstile-bench-{self.system.kind}-"
        ) as directory:
            cluster = self._cluster(Path(directory))
            try:
                self.progress(f"{self.system.name}: starting a local 3-member cluster")
                try:
                    cluster.start()
                except SystemUnavailableError as exc:
                    return {"available": False, "reason": str(exc)}
                self._throughput(
                    cluster.endpoints,
                    tag_base=f"t{int(time.time())}",
                    pids=cluster.pids(),
                    leader=cluster,
                )
                self._dead_client(cluster)
                if isinstance(cluster, TurnstileCluster):
                    self._idle(cluster)
                self._failover(cluster)
            finally:
                cluster.stop()
                if isinstance(cluster, TurnstileCluster):
                    self._check_logs(cluster)
        return {"available": True, "cluster": "local, 3 members", "rows": self.rows}

    def _cluster(self, directory: Path) -> LocalCluster:
        """A peer starts with its defaults; Turnstile in the run's durability mode."""
        if self.system.durability is None:
            return PEER_CLUSTERS[self.system.kind](directory)
        return TurnstileCluster(
            directory, durability=self.system.durability, forward_streams=self.system.forwarding
        )

    def _check_logs(self, cluster: TurnstileCluster) -> None:
        """A CRITICAL line in a node log (e.g. pysyncobj truncating applied entries) fails
        the run like an overlapping hold would."""
        critical = [
            f"{path.parent.name}: {line}"
            for path in cluster.node_logs()
            if path.exists()
            for line in path.read_text(errors="replace").splitlines()
            if " CRITICAL " in line
        ]
        self.rows["node_logs"] = {
            "critical_lines": len(critical),
            "first": critical[0] if critical else "",
            "violations": len(critical),
        }

    def _throughput(
        self,
        endpoints: list[str],
        tag_base: str,
        pids: list[int],
        leader: LocalCluster | None,
    ) -> None:
        """The throughput rows; with ``pids`` (a local cluster) also the servers' CPU time per
        operation, which other load on the machine disturbs far less than throughput, and the
        leader's; with ``leader`` (the cluster started here) the row of clients on followers."""
        plan = self.plan
        for clients in plan.clients:
            for key, workload, batch in throughput_rows(plan.batch):
                row_key = f"{key}@{clients}"
                targets = endpoints
                if key == VIA_FOLLOWERS:
                    if leader is None:
                        continue
                    at = leader.leader_index()
                    targets = [e for i, e in enumerate(endpoints) if i != at]
                self.progress(f"{self.system.name}: {row_key}")
                job = Job(
                    self.system.kind,
                    targets,
                    workload,
                    plan.duration,
                    ttl_s=plan.session_ttl,
                    batch=batch,
                    tag=f"{tag_base}-{row_key.replace('@', '-')}",
                )
                sampler = CpuSampler(pids, plan.duration, leader and leader.leader_pid())
                try:
                    records, _start = run_job(job, clients, plan.processes, during=sampler)
                except WorkerError as exc:
                    # One failed row (a peer refusing load, say) does not void the others.
                    first_line = str(exc).splitlines()[0]
                    self.progress(f"{self.system.name}: {row_key} failed: {first_line}")
                    self.rows[row_key] = {"clients": clients, "error": str(exc), "violations": 0}
                    continue
                row = summarize(records, plan.duration, batch)
                self.rows[row_key] = {"clients": clients, **row, **sampler.per_op(row["ops"])}

    def _failover(self, cluster: LocalCluster) -> None:
        plan = self.plan
        self.progress(f"{self.system.name}: failover (kill -9 of the leader)")
        killed: list[float] = []

        def kill_midway(start: float) -> None:
            time.sleep(max(0.0, start + plan.failover_duration / 2 - time.monotonic()))
            if cluster.kill_leader():
                killed.append(time.monotonic())

        job = Job(
            self.system.kind,
            cluster.endpoints,
            "lock_uncontended",
            plan.failover_duration,
            ttl_s=plan.session_ttl,
            tag="failover",
            tolerate_errors=True,
        )
        try:
            records, start = run_job(
                job, plan.failover_clients, plan.failover_clients, during=kill_midway
            )
        except WorkerError as exc:
            self.rows[f"failover@{plan.failover_clients}"] = {"error": str(exc), "violations": 0}
            return
        row = summarize(records, plan.failover_duration)
        done = [d for _sent, d in records.ops]
        row["gap_s"] = round(stats.longest_gap(done, start, start + plan.failover_duration), 3)
        if killed:
            after = [d for d in done if d > killed[0]]
            row["first_success_after_kill_s"] = (
                round(min(after) - killed[0], 3) if after else math.nan
            )
        else:
            row["note"] = "no leader found to kill"
        self.rows[f"failover@{plan.failover_clients}"] = {"clients": plan.failover_clients, **row}

    def _dead_client(self, cluster: LocalCluster) -> None:
        self.progress(f"{self.system.name}: dead client's lock to a waiter")
        try:
            elapsed, ttl = dead_client(
                self.system.kind, cluster.endpoints, self.plan.dead_client_ttl
            )
        except WorkerError as exc:
            self.rows["dead_client"] = {"error": str(exc), "violations": 0}
            return
        self.rows["dead_client"] = {
            "kill_to_grant_s": round(elapsed, 3),
            "ttl_s": ttl,
            "over_ttl_s": round(elapsed - ttl, 3),
            "violations": 0,
        }

    def _idle(self, cluster: LocalCluster) -> None:
        plan = self.plan
        self.progress(
            f"{self.system.name}: idle cost, then {plan.idle_sessions} sessions kept alive"
        )
        pids = cluster.pids()
        idle = _cpu_percent(pids, plan.idle_window)
        leader_index = cluster.leader_index()
        if leader_index is None:
            self.rows["idle"] = {"error": "no leader", "violations": 0}
            return
        leader_pid = cluster.processes[leader_index].pid
        rss_before = process_rss_bytes(leader_pid) or 0
        with IdleSessions(
            cluster.endpoints[leader_index], plan.idle_sessions, plan.session_ttl
        ) as sessions:
            # Let the keep-alives spread over a full interval before measuring.
            time.sleep(plan.session_ttl / 3)
            acked_before = sessions.acked.value
            busy = _cpu_percent([leader_pid], plan.idle_window)[0]
            acked = sessions.acked.value - acked_before
            rss = process_rss_bytes(leader_pid) or 0
        self.rows["idle"] = {
            "idle_cpu_pct_per_node": idle,
            "sessions": plan.idle_sessions,
            "session_ttl_s": plan.session_ttl,
            "leader_cpu_pct_with_sessions": busy,
            "keepalives_per_s": round(acked / plan.idle_window, 1),
            "leader_cpu_ms_per_keepalive": round(busy * 10 * plan.idle_window / acked, 4)
            if acked
            else math.nan,
            "leader_rss_mb_before": round(rss_before / 2**20, 1),
            "leader_rss_mb_with_sessions": round(rss / 2**20, 1),
            "violations": 0,
        }
        if isinstance(cluster, TurnstileCluster) and cluster.forward_streams:
            try:
                spread = self._idle_on_followers(cluster, leader_index)
            except WorkerError as exc:
                spread = {"error": str(exc).splitlines()[0]}
            self.rows["idle"]["on_followers"] = spread

    def _idle_on_followers(self, cluster: TurnstileCluster, leader_index: int) -> dict[str, Any]:
        """The CPU of each node while the same sessions are kept alive by clients of the
        followers, half on each, which forward the keep-alives to the leader."""
        plan = self.plan
        pids = cluster.pids()
        followers = [e for i, e in enumerate(cluster.endpoints) if i != leader_index]
        with contextlib.ExitStack() as stack:
            # The same sessions held by clients of the followers, half on each.
            spread = [
                stack.enter_context(
                    IdleSessions(
                        e,
                        plan.idle_sessions // len(followers),
                        plan.session_ttl,
                        cluster.endpoints[leader_index],
                    )
                )
                for e in followers
            ]
            time.sleep(plan.session_ttl / 3)
            spread_before = sum(s.acked.value for s in spread)
            on_followers = _cpu_percent(pids, plan.idle_window)
            spread_acked = sum(s.acked.value for s in spread) - spread_before
        return {
            "leader_cpu_pct": on_followers[leader_index],
            "followers_cpu_pct": [c for i, c in enumerate(on_followers) if i != leader_index],
            "keepalives_per_s": round(spread_acked / plan.idle_window, 1),
        }
