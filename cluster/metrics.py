"""Prometheus metrics of one node, served over HTTP at ``metrics_address``/metrics.

Gauges of Raft and state are read when scraped (nothing polls). Lock wait and hold times come
from applied entries, in log time, so every node reports the same history; counters are per
node (every node applies every entry), so aggregate with ``max``, not ``sum``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from turnstile.cluster import views
from turnstile.cluster.auth import Handler
from turnstile.cluster.commands import (
    Acquire,
    Command,
    Err,
    Granted,
    LockFreed,
    Queued,
    SessionEnded,
    WaiterResolved,
)
from turnstile.cluster.semaphore_commands import (
    AcquireLocks,
    AcquirePermit,
    GrantedMany,
    PermitFreed,
    PermitGranted,
)
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.node import Node
    from turnstile.cluster.state import Applied


def is_fenced(applied: Applied) -> bool:
    """The state machine refused the command as stamped in a superseded term (only the term
    fence answers NOT_LEADER there)."""
    result = applied.result
    return isinstance(result, Err) and result.reason is Reason.NOT_LEADER


_ROLES = ("follower", "candidate", "leader")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_DURATION_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)


class _NodeCollector(Collector):
    """Raft and state gauges, read from the node at scrape time."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        raft = self.node.raft
        yield CounterMetricFamily(
            "turnstile_raft_leader_changes",
            "Times this node saw the leader change (elections it took part in or heard of)",
            value=raft.leader_changes,
        )
        asked, won = raft.pre_vote_rounds
        pre_votes = CounterMetricFamily(
            "turnstile_raft_pre_vote_rounds",
            "Pre-vote rounds this node asked for and won; asked and not won is mostly a node "
            "that lost its leader alone (starved, cut off) and deposed nobody",
            labels=["result"],
        )
        pre_votes.add_metric(["asked"], asked)
        pre_votes.add_metric(["won"], won)
        yield pre_votes
        role = GaugeMetricFamily(
            "turnstile_raft_role", "1 for this node's current Raft role", labels=["role"]
        )
        for name in _ROLES:
            role.add_metric([name], 1.0 if raft.role == name else 0.0)
        yield role
        yield GaugeMetricFamily("turnstile_raft_term", "Current Raft term", value=raft.term)
        yield GaugeMetricFamily(
            "turnstile_raft_commit_index", "Raft commit index", value=raft.commit_index
        )
        yield GaugeMetricFamily(
            "turnstile_raft_applied_index", "Last Raft index applied", value=raft.applied_index
        )
        lag = GaugeMetricFamily(
            "turnstile_raft_follower_lag_entries",
            "On the leader: entries each follower trails",
            labels=["peer"],
        )
        for peer, entries in raft.follower_lag().items():
            lag.add_metric([peer], entries)
        yield lag
        yield CounterMetricFamily(
            "turnstile_raft_log_syncs",
            "fdatasyncs of the Raft log: one per batch of entries (0 with durability = none)",
            value=raft.log.syncs,
        )
        yield CounterMetricFamily(
            "turnstile_raft_log_sync_seconds",
            "Seconds spent in those fdatasyncs",
            value=raft.log.sync_seconds,
        )
        counts = raft.read(views.counts)
        for name, value, text in (
            ("sessions", counts.sessions, "Live sessions"),
            ("locks_held", counts.locks_held, "Locks held"),
            ("waiters", counts.waiters, "Acquires queued for locks (one per lock waited for)"),
            ("lists", counts.lists, "Distinct lists"),
            ("list_members", counts.members, "Members over all distinct lists"),
            ("groups", counts.groups, "Groups"),
            ("group_members", counts.group_members, "Members over all groups"),
            ("elections", counts.elections, "Elections with a leader"),
            ("semaphores", counts.semaphores, "Semaphores in use"),
            ("permits_held", counts.permits_held, "Permits held over all semaphores"),
        ):
            yield GaugeMetricFamily(f"turnstile_{name}", text, value=value)


class NodeMetrics:
    """Every metric of a node; ``observe_applied`` is fed by the apply path (asyncio side)."""

    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_NodeCollector(node))
        self.rpc_requests = Counter(
            "turnstile_rpc_requests",
            "gRPC requests served, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "turnstile_rpc_duration_seconds",
            "gRPC request latency by method (blocked acquires include their wait)",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.lock_wait = Histogram(
            "turnstile_lock_wait_seconds",
            "Time an acquire spent queued before it was granted (log time)",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.lock_hold = Histogram(
            "turnstile_lock_hold_seconds",
            "Time a lock was held, by how the hold ended (log time)",
            ["cause"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.lock_ends = Counter(
            "turnstile_lock_releases",
            "Holds ended, by cause: released, max_hold, session_expired, session_closed, "
            "force_released, wait_cancelled, abandoned",
            ["cause"],
            registry=self.registry,
        )
        self.permit_wait = Histogram(
            "turnstile_permit_wait_seconds",
            "Time a semaphore acquire spent queued before it was granted a permit (log time)",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.permit_ends = Counter(
            "turnstile_permit_releases",
            "Semaphore permit holds ended, by cause (as turnstile_lock_releases)",
            ["cause"],
            registry=self.registry,
        )
        self.permit_hold = Histogram(
            "turnstile_permit_hold_seconds",
            "Time a semaphore permit was held, by how the hold ended (log time)",
            ["cause"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.session_ends = Counter(
            "turnstile_sessions_ended",
            "Sessions ended, by cause: session_expired or session_closed",
            ["cause"],
            registry=self.registry,
        )
        self.session_streams = Gauge(
            "turnstile_session_streams",
            "Session streams (Sessions.Stream) open on this node",
            registry=self.registry,
        )
        self.forwarded_calls = Counter(
            "turnstile_forwarded_calls",
            "Calls of client session streams this node, as a follower, forwarded to the "
            "leader, by kind: command, keep_alives (one per batch), read_index",
            ["kind"],
            registry=self.registry,
        )
        self.fenced = Counter(
            "turnstile_fenced_commands",
            "Commands refused by the term fence: stamped by a leader a later term superseded "
            "(a paused or cut-off ex-leader's late expiries, ticks, cancels, requests)",
            registry=self.registry,
        )
        self._granted_at: dict[int, int] = {}
        self._last_token = 0
        self._queued_at: dict[tuple[int, int], int] = {}
        #: Tokens of the permits granted by the entry being observed.
        self._permit_tokens: set[int] = set()
        self._server: Any = None

    def serve(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self._server, _thread = start_http_server(
            int(port), addr=host.strip("[]"), registry=self.registry
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def observe_applied(self, command: Command | None, applied: Applied) -> None:
        now = command.now if command is not None else 0
        result = applied.result
        if is_fenced(applied):
            self.fenced.inc()
            return
        if isinstance(command, Acquire | AcquireLocks | AcquirePermit):
            if isinstance(result, Granted | GrantedMany):
                self._granted(result, now)
            elif isinstance(result, Queued):
                self._queued_at.setdefault((command.session, command.seq), now)
        for event in applied.events:
            if isinstance(event, WaiterResolved):
                queued_at = self._queued_at.pop((event.session, event.seq), None)
                if isinstance(event.result, Granted | GrantedMany):
                    self._granted(event.result, now)
                    permit = (
                        isinstance(event.result, Granted)
                        and event.result.token in self._permit_tokens
                    )
                    wait = self.permit_wait if permit else self.lock_wait
                    if queued_at is not None:
                        wait.observe(max(0, now - queued_at) / 1000)
            elif isinstance(event, LockFreed | PermitFreed):
                ended = self.lock_ends if isinstance(event, LockFreed) else self.permit_ends
                hold = self.lock_hold if isinstance(event, LockFreed) else self.permit_hold
                ended.labels(event.cause).inc()
                granted_at = self._granted_at.pop(event.token, None)
                if granted_at is not None:
                    hold.labels(event.cause).observe(max(0, now - granted_at) / 1000)
            elif isinstance(event, PermitGranted):
                self._permit_tokens.add(event.token)
            elif isinstance(event, SessionEnded):
                self.session_ends.labels(event.cause).inc()
        self._permit_tokens.clear()

    def _granted(self, result: Granted | GrantedMany, now: int) -> None:
        """Notes when each new token was granted. Tokens only grow: a smaller one is a retry's
        stored answer, not a new hold."""
        for token in result.tokens if isinstance(result, GrantedMany) else (result.token,):
            if token > self._last_token:
                self._last_token = token
                self._granted_at[token] = now

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return _RpcMetrics(self)


class _RpcMetrics(grpc.aio.ServerInterceptor):
    """Counts and times every unary RPC by method and final status code.

    The wrapped handler is built once per handler the chain returns (the servicers' handlers
    are the same objects on every call) and reused, with its metric children bound: this runs
    on every RPC.
    """

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics
        #: Method path -> (the handler the chain returned, its wrapper); one entry per method.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        path = details.method or ""
        known = self._wrapped.get(path)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(handler, path)
        if known is None:
            self._wrapped[path] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: Handler, path: str) -> Handler:
        method = path.rsplit("/", 1)[-1] if path else "unknown"
        service = path.split("/")[1] if path else ""
        label = f"{service.rsplit('.', 1)[-1]}.{method}"
        # grpc-stubs types handlers for the sync server; under grpc.aio a behaviour is a
        # coroutine function taking the aio context.
        behavior: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
        behavior = handler.unary_unary  # type: ignore[assignment]
        metrics = self.metrics
        succeeded = metrics.rpc_requests.labels(label, "OK")
        seconds = metrics.rpc_seconds.labels(label)

        async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            try:
                response = await behavior(request, context)
            except BaseException:
                status = context.code()
                code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                metrics.rpc_requests.labels(label, code).inc()
                seconds.observe(time.perf_counter() - started)
                raise
            succeeded.inc()
            seconds.observe(time.perf_counter() - started)
            return response

        return grpc.unary_unary_rpc_method_handler(
            measured,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
