"""The composition root of one node: Raft replica, leader duties, gRPC server.

Threads: pysyncobj runs on the raft loop thread (``turnstile.cluster.raft``); everything else
runs on one asyncio loop. The raft thread hands everything over through one bridge
(``turnstile.cluster.bridge``). The protocols of requests live in their own modules:
``acquire`` (blocking acquires), ``keepalive`` (session renewal), ``membership``.

Leader duties, all on the asyncio loop:

- **Promotion.** On becoming leader the node proposes a ``Tick`` and serves nothing until it is
  applied: then every entry of earlier terms is applied too, the log clock base is taken from
  the state, and every session gets a fresh deadline of now + TTL.
- **Log time.** ``now_ms`` = the log clock at promotion + this node's *monotonic* time since.
  Never the wall clock, so a skewed clock on a new leader cannot expire anything early.
- **Expiries.** Sessions whose keep-alive deadline passed get ``ExpireSession``; when a lock
  max-hold, waiter deadline or list TTL falls due, a ``Tick`` is proposed.
- **Term stamps.** Every command is stamped with the term this node took office in. The raft
  adapter hands it to pysyncobj only while this node still leads in that term (never
  forwarding it), and the state machine refuses it once a later term's command has applied:
  a deposed leader's duties, still running after a pause or a partition, cannot act.
  Each duty also re-checks leadership right before it proposes.
- **Cluster version.** Once every member reports a protocol version above the replicated
  cluster version, the leader raises it (``SetClusterVersion``); a command that needs a
  higher version than the cluster's is refused before it is proposed.

Test-only switches come from the environment (``turnstile.cluster.test_switches``); each
logs a warning at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypedDict, TypeVar

from turnstile.cluster.acquire import BlockingAcquires
from turnstile.cluster.bridge import LoopBridge
from turnstile.cluster.codec import encode_command
from turnstile.cluster.commands import (
    CAUSE_FORCE_RELEASED,
    CAUSE_MAX_HOLD,
    CAUSE_SESSION_EXPIRED,
    PROTOCOL_VERSION,
    Command,
    Err,
    ExpireSession,
    ListExpired,
    LockFreed,
    Result,
    SessionEnded,
    SessionOpened,
    SetClusterVersion,
    SetLimits,
    SetMember,
    Tick,
    WaiterResolved,
    since,
)
from turnstile.cluster.config import NodeConfig
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.forwarder import Forwarder, channel_factory_for
from turnstile.cluster.keepalive import KeepAlives
from turnstile.cluster.membership import Membership
from turnstile.cluster.metrics import NodeMetrics, is_fenced
from turnstile.cluster.peer_auth import read_peer_password
from turnstile.cluster.proposals import ProposalCallback
from turnstile.cluster.raft import NOT_APPLIED, SUCCESS, RaftNode
from turnstile.cluster.raft_options import RaftOptions
from turnstile.cluster.read_barrier import ReadBarrier
from turnstile.cluster.replica import ReplicaFactory
from turnstile.cluster.sessions import SessionTracker
from turnstile.cluster.state import Applied, StateMachine
from turnstile.cluster.test_switches import (
    NO_TERM_FENCE_ENV,
    PROTOCOL_VERSION_ENV,
    read_test_switches,
)
from turnstile.cluster.watches import WatchHistory
from turnstile.v1.reasons import Reason

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Hold endings worth a log line (a plain release is not).
_NOTEWORTHY = frozenset({CAUSE_MAX_HOLD, CAUSE_SESSION_EXPIRED, CAUSE_FORCE_RELEASED})

#: Longest sleep of the duties loop when nothing is due (it also refreshes health).
DUTIES_IDLE_S = 0.5


class RequestFields(TypedDict):
    """The exactly-once fields every session command carries, from the request's id."""

    session: int
    seq: int
    acked: int
    answered: tuple[int, ...]


class Node:
    """One Turnstile node. Create and use it on a running asyncio loop.

    ``replica_factory`` builds its Raft replica: pysyncobj's (``RaftNode``) in a server, an
    in-memory one in the unit tests.
    """

    def __init__(self, config: NodeConfig, replica_factory: ReplicaFactory = RaftNode) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.bridge = LoopBridge(self.loop)
        self.tracker = SessionTracker()
        self.barrier = ReadBarrier(self._commit_barrier)
        self.acquires = BlockingAcquires(self)
        self.keep_alives = KeepAlives(self)
        #: Recent changes by revision, for watchers (fed from every applied entry).
        self.watches = WatchHistory()
        self.membership = Membership(self)
        self._leading = False
        #: Set once shutdown began: cancelled RPCs are the server's doing, not the caller's.
        self.stopping = False
        self._base_clock = 0
        self._base_mono = time.monotonic()
        self._duties_wake = asyncio.Event()
        self._tick_in_flight = False
        self._version_in_flight = False
        #: The Raft term this node took office in: every command it proposes is stamped with it.
        self._office_term = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._duties: asyncio.Task[None] | None = None
        self._health_listeners: list[Callable[[bool], Awaitable[None]]] = []
        self.metrics = NodeMetrics(self)
        timing = config.timing
        term_fence, self.protocol_version = read_test_switches(os.environ)
        self._term_fence = term_fence
        if not term_fence:
            log.warning("%s is set: the term fence is OFF (test only, unsafe)", NO_TERM_FENCE_ENV)
        if self.protocol_version != PROTOCOL_VERSION:
            log.warning(
                "%s is set: reporting protocol version %d (test only)",
                PROTOCOL_VERSION_ENV,
                self.protocol_version,
            )
        if config.durability == "none":
            log.warning(
                "durability = none: the Raft log is never synced; a power loss or kernel "
                "crash on a majority of nodes can lose acknowledged writes (see "
                "docs/operations.md, What is durable)"
            )
        password = read_peer_password(config.peer_password_file)
        self.forwarder = Forwarder(
            self, password, channel_factory_for(self), self.metrics.forwarded_calls
        )
        self.raft = replica_factory(
            RaftOptions(
                self_address=config.peer_address,
                other_addresses=tuple(p.peer_address for p in config.others()),
                data_dir=str(config.data_dir),
                password=password,
                election_timeout_min_s=timing.election_timeout_min_ms / 1000,
                election_timeout_max_s=timing.election_timeout_max_ms / 1000,
                heartbeat_s=timing.heartbeat_ms / 1000,
                connection_retry_s=timing.connection_retry_ms / 1000,
                term_fence=term_fence,
                protocol_version=self.protocol_version,
                durable=config.durability == "fsync",
            ),
            # Every replica starts from the default limits; the configured ones enter through
            # the log (SetLimits) so all replicas check the same bounds at every entry.
            StateMachine(term_fence=term_fence),
            self._on_applied,
            self._on_role,
            lambda index: self.bridge.post(self.forwarder.observe_applied, index),
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.raft.start()
        self._duties = self.loop.create_task(self._duties_loop())

    def begin_shutdown(self) -> None:
        """Blocked acquires answer UNAVAILABLE now, so their clients retry on another node
        (their waits stay queued in the cluster); nothing new is served."""
        self.stopping = True
        self._leading = False
        self.acquires.fail_all(TurnstileError(Reason.UNAVAILABLE, "node is shutting down"))

    async def stop(self) -> None:
        self.begin_shutdown()
        if self._duties is not None:
            self._duties.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.forwarder.close()
        await asyncio.to_thread(self.raft.stop)

    def add_health_listener(self, listener: Callable[[bool], Awaitable[None]]) -> None:
        self._health_listeners.append(listener)

    # ------------------------------------------------------------------ views

    @property
    def leading(self) -> bool:
        """Leader, and its promotion entry applied: may serve writes and linearizable reads."""
        return self._leading and self.raft.is_leader

    @property
    def healthy(self) -> bool:
        return self.raft.leader_address is not None

    def now_ms(self) -> int:
        """Log time on the leader: clock at promotion plus monotonic time since."""
        return self._base_clock + int((time.monotonic() - self._base_mono) * 1000)

    def clock_ms(self) -> int:
        """Log time as this node knows it, for the time left of a hold or a wait: the
        leader's own; on a follower, the leader's as last heard over the forward link, else
        the applied log clock (behind, so a wait is given too long rather than too short)."""
        if self.leading:
            return self.now_ms()
        heard = self.forwarder.now_ms()
        return heard if heard is not None else self.raft.read(lambda s: s.clock)

    def renewed_by_write(self, session: int, arrived: float) -> bool:
        """Renews ``session`` from ``arrived`` for a write of it that succeeded: on the
        leader, here; on a follower, whether the leader did for the forwarded write."""
        if self.leading:
            return self.tracker.renew(session, arrived)
        return self.forwarder.renewed(session, arrived)

    async def raft_request(self, send: Callable[[ProposalCallback], None]) -> int:
        """Sends a request to the Raft replica (``send(callback)``) and waits for its answer
        code, at most the commit timeout.

        :raises TurnstileError: UNKNOWN_OUTCOME when no answer came in time.
        """
        future: asyncio.Future[int] = self.loop.create_future()
        send(lambda _result, error: self.bridge.post(_answer, future, error))
        try:
            async with asyncio.timeout(self.config.timing.commit_timeout_ms / 1000):
                return await future
        except TimeoutError:
            raise TurnstileError(
                Reason.UNKNOWN_OUTCOME, "raft did not answer in time; check status and retry"
            ) from None

    def require_leader(self) -> None:
        if not self.leading:
            leader_id, _ = self.membership.leader_ids()
            if self.raft.is_leader:
                raise TurnstileError(Reason.NOT_LEADER, "leader is still taking office; retry")
            raise TurnstileError(
                Reason.NOT_LEADER,
                f"node {self.config.node_id} is not the leader"
                + (f"; leader is {leader_id}" if leader_id else "; no leader known"),
            )

    # ------------------------------------------------------------------ writes and reads

    async def execute(self, build: Callable[[int], Command]) -> Result:
        """Proposes ``build(now)`` as leader, stamped with this leadership's term; returns its
        result, raising for ``Err``. A command the cluster version does not allow yet is
        refused without being proposed. A session stream's call to a follower is forwarded
        to the leader (``turnstile.cluster.forwarder``)."""
        if not self.leading and self.forwarder.enabled:
            result = await self.forwarder.execute(build(0), lambda: self.execute(build))
        else:
            result = (await self.settled(self.propose(build(0)))).result
        if isinstance(result, Err):
            raise TurnstileError(result.reason, result.detail)
        return result

    def propose(self, command: Command) -> asyncio.Future[Applied]:
        """Stamps ``command`` with this leadership's time and term and proposes it; the future
        is its outcome once applied here (``settled`` waits for it). Many such futures can
        be awaited together: the leader's side of forwarding proposes a message's commands so.

        :raises TurnstileError: NOT_LEADER; FAILED_PRECONDITION when the cluster version does
            not allow the command yet (it is not proposed).
        """
        self.require_leader()
        command = dataclasses.replace(command, now=self.now_ms(), term=self._office_term)
        required = since(command)
        # Most commands are of version 1, which every cluster has: no state read for them.
        cluster_version = self.raft.read(lambda s: s.cluster_version) if required > 1 else 1
        if required > cluster_version:
            raise TurnstileError(
                Reason.FAILED_PRECONDITION,
                f"{type(command).__name__} needs cluster version {required}, the cluster is at "
                f"{cluster_version}: a member runs an older Turnstile; upgrade every member",
            )
        return self._proposed(command)

    async def read(self, linearizable: bool, reader: Callable[[StateMachine, int], T | Err]) -> T:
        """Runs ``reader(state, now_ms)``: after a barrier on the leader, or locally if stale.
        A session stream's linearizable read on a follower asks the leader for a barrier and
        reads here once this node applied as far as the leader had.

        :raises TurnstileError: for the ``Err`` the reader answered (an unknown lock, say).
        """
        index = None
        if linearizable and not self.leading and self.forwarder.enabled:
            index = await self.forwarder.read_index()
        if index is not None:
            await self.forwarder.applied_to(index)
            now = max(self.clock_ms(), self.raft.read(lambda s: s.clock))
        elif linearizable:
            self.require_leader()
            await self.barrier.wait()
            self.require_leader()
            now = self.now_ms()
        else:
            now = self.raft.read(lambda s: s.clock) if not self.leading else self.now_ms()
        result: T | Err = self.raft.read(lambda state: reader(state, now))
        if isinstance(result, Err):
            raise TurnstileError(result.reason, result.detail)
        return result

    async def _submit(self, command: Command) -> Applied:
        """Proposes one command (already stamped with its term) and waits for it to be
        applied here."""
        return await self.settled(self._proposed(command))

    def _proposed(self, command: Command) -> asyncio.Future[Applied]:
        future: asyncio.Future[Applied] = self.loop.create_future()
        self.raft.submit(
            encode_command(command),
            lambda result, error: self.bridge.post(_settle, future, error, result),
            command.term,
        )
        return future

    async def settled(self, proposed: asyncio.Future[Applied]) -> Applied:
        """A proposal's outcome, within the commit timeout.

        :raises TurnstileError: NOT_LEADER or UNKNOWN_OUTCOME (see ``_settle``).
        """
        timeout = self.config.timing.commit_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout):
                return await proposed
        except TimeoutError:
            raise unknown_outcome(timeout) from None

    async def _commit_barrier(self) -> None:
        term = self._office_term
        self.require_leader()
        await self._submit(Tick(self.now_ms(), term=term))
        if not self.raft.is_leader or self.raft.term != term:
            raise TurnstileError(Reason.NOT_LEADER, "leadership changed during the read")

    # ------------------------------------------------------------------ applied entries

    def _on_applied(self, command: Command | None, applied: Applied) -> None:
        """Raft thread, for every applied command."""
        self.membership.observe_applied(command)
        self.bridge.post(self._handle_applied, command, applied)

    def _handle_applied(self, command: Command | None, applied: Applied) -> None:
        self.metrics.observe_applied(command, applied)
        self.watches.observe(applied)
        if is_fenced(applied):
            log.warning("refused a command of a superseded leader: %s", command)
            return
        result = applied.result
        if isinstance(result, SessionOpened) and self._leading:
            self.tracker.add(result.session, result.ttl_ms, time.monotonic())
        for event in applied.events:
            if isinstance(event, WaiterResolved):
                self.acquires.resolve((event.session, event.seq), event.result)
            elif isinstance(event, SessionEnded):
                self.tracker.remove(event.session)
                self.forwarder.forget(event.session)
                level = logging.INFO if event.cause == CAUSE_SESSION_EXPIRED else logging.DEBUG
                log.log(level, "session %d ended: %s", event.session, event.cause)
            elif isinstance(event, LockFreed) and event.cause in _NOTEWORTHY:
                log.info(
                    "lock %r taken from session %d (token %d): %s%s",
                    event.name,
                    event.session,
                    event.token,
                    event.cause,
                    f" ({event.detail})" if event.detail else "",
                )
            elif isinstance(event, ListExpired):
                log.info("list %r expired", event.name)
        self._duties_wake.set()

    # ------------------------------------------------------------------ leadership

    def _on_role(self, was_leader: bool, is_leader: bool) -> None:
        """Raft thread."""
        self.bridge.post(self._role_changed, was_leader, is_leader)

    def _role_changed(self, was_leader: bool, is_leader: bool) -> None:
        self.forwarder.observe_leader()
        if is_leader and not was_leader:
            log.info("became leader in term %d; taking office", self.raft.term)
            self.spawn(self._take_office(self.raft.term))
        elif was_leader and not is_leader:
            log.warning("lost leadership in term %d", self.raft.term)
            self._leading = False
            self.tracker.clear()
            self.acquires.fail_all(
                TurnstileError(Reason.NOT_LEADER, "leadership lost; retry with the same request id")
            )
        self._duties_wake.set()

    async def _take_office(self, term: int) -> None:
        """Retries until this term's first entries are applied, or the term is over."""
        while self.raft.is_leader and self.raft.term == term:
            try:
                await self._assume_office(term)
            except TurnstileError as exc:
                log.warning("taking office in term %d failed, retrying: %s", term, exc)
                await asyncio.sleep(self.config.timing.heartbeat_ms / 1000)
                continue
            except Exception:
                log.exception("taking office in term %d failed, retrying", term)
                await asyncio.sleep(self.config.timing.heartbeat_ms / 1000)
                continue
            if self.raft.is_leader and self.raft.term == term and not self.stopping:
                self._office_term = term
                self._leading = True
                self.forwarder.observe_leader()
                log.info("leader in term %d serving; %d sessions tracked", term, len(self.tracker))
                self._duties_wake.set()
            return

    async def _assume_office(self, term: int) -> None:
        clock = self.raft.read(lambda s: s.clock)
        # Applied in this term: every entry of earlier terms is applied before it, and it
        # moves the state's epoch to this term, fencing off every older leader's commands.
        await self._submit(Tick(clock, term=term))
        if not self.raft.read(lambda s: s.cluster_members):
            for peer in self.config.peers:
                await self._submit(
                    SetMember(
                        clock, peer.node_id, peer.peer_address, peer.client_address, term=term
                    )
                )
        if self.raft.read(lambda s: s.limits) != self.config.limits:
            await self._submit(SetLimits(clock, self.config.limits, term=term))
            log.info("configured limits replicated")
        self._base_clock = self.raft.read(lambda s: s.clock)
        self._base_mono = time.monotonic()
        sessions = self.raft.read(lambda s: [(i, s.sessions[i].ttl_ms) for i in s.sessions])
        self.tracker.reset(sessions, self._base_mono)

    async def _duties_loop(self) -> None:
        healthy = None
        while True:
            timeout = self._perform_duties()
            if self.healthy != healthy:
                healthy = self.healthy
                for listener in self._health_listeners:
                    await listener(healthy)
            self._duties_wake.clear()
            # asyncio.timeout, not wait_for, here and for every wait of this package: Python
            # 3.11's wait_for swallows a cancellation that arrives as the awaited thing
            # completes (this loop would outlive ``stop``; a cancelled Acquire would go on
            # waiting instead of withdrawing its wait).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._duties_wake.wait()

    def _perform_duties(self) -> float:
        """Proposes due expiries; returns seconds until the next one (capped)."""
        if not self.leading:
            return DUTIES_IDLE_S
        self._raise_cluster_version()
        now_mono = time.monotonic()
        for session in self.tracker.take_due(now_mono):
            self.spawn(self._expire(session))
        wake_at = now_mono + DUTIES_IDLE_S
        next_session = self.tracker.next_deadline()
        if next_session is not None:
            wake_at = min(wake_at, next_session)
        due = self.raft.read(lambda s: s.next_due())
        if due is not None:
            due_mono = self._base_mono + (due - self._base_clock) / 1000
            if due_mono <= now_mono:
                if not self._tick_in_flight:
                    self._tick_in_flight = True
                    self.spawn(self._tick())
            else:
                wake_at = min(wake_at, due_mono)
        return max(0.0, wake_at - now_mono)

    def _still_in_office(self) -> bool:
        """A duty's last check before it proposes: leading, in the term it took office in.
        Without the term fence (the test-only switch) there is no such check, as before it:
        a duty found due while leading proposes even if leadership was lost meanwhile."""
        if not self._term_fence:
            return True
        return self.leading and self.raft.term == self._office_term

    async def _expire(self, session: int) -> None:
        if not self._still_in_office():
            return
        term = self._office_term
        try:
            await self._submit(ExpireSession(self.now_ms(), session, term=term))
            log.info("session %d expired: no keep-alive within its TTL", session)
        except TurnstileError as exc:
            log.warning("expiring session %d failed: %s", session, exc)
            # Only in the office that decided it: after a pause this node may have lost and
            # regained leadership meanwhile, and its new tracker gave the session a full TTL.
            if self._office_term == term and self._still_in_office():
                self.tracker.retry_later(session, time.monotonic())

    def _raise_cluster_version(self) -> None:
        """Raises the replicated cluster version once every member reports a higher one."""
        if self._version_in_flight:
            return
        current = self.raft.read(lambda s: s.cluster_version)
        if current >= self.protocol_version:
            return  # the minimum over the members, this one included, cannot be higher
        reported = self.raft.member_protocol_versions()
        target = min(reported.values(), default=0)
        if target > current:
            self._version_in_flight = True
            self.spawn(self._set_cluster_version(target))

    async def _set_cluster_version(self, version: int) -> None:
        try:
            if self._still_in_office():
                await self._submit(
                    SetClusterVersion(self.now_ms(), version, term=self._office_term)
                )
                log.info("cluster version raised to %d: every member supports it", version)
        except TurnstileError as exc:
            log.warning("raising the cluster version to %d failed: %s", version, exc)
        finally:
            self._version_in_flight = False

    async def _tick(self) -> None:
        try:
            if self._still_in_office():
                await self._submit(Tick(self.now_ms(), term=self._office_term))
        except TurnstileError as exc:
            log.warning("tick failed: %s", exc)
        finally:
            self._tick_in_flight = False
            self._duties_wake.set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Runs a background task, keeping a reference until it is done."""
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _answer(future: asyncio.Future[int], error: int) -> None:
    """Loop thread: answers a Raft request with its code."""
    if not future.done():
        future.set_result(error)


def _settle(future: asyncio.Future[T], error: int, result: T) -> None:
    """Loop thread: answers a proposal with its applied result, or the error for its code."""
    if future.done():
        return
    if error == SUCCESS:
        future.set_result(result)
    else:
        future.set_exception(_proposal_error(error))


def unknown_outcome(timeout: float) -> TurnstileError:
    return TurnstileError(
        Reason.UNKNOWN_OUTCOME,
        f"not committed within {timeout:g}s; retry with the same request id",
    )


def _proposal_error(error: int) -> TurnstileError:
    if error in NOT_APPLIED:
        return TurnstileError(Reason.NOT_LEADER, f"not applied (raft: {error}); retry")
    return TurnstileError(
        Reason.UNKNOWN_OUTCOME,
        f"leadership changed before the outcome was known (raft: {error}); "
        "retry with the same request id",
    )
