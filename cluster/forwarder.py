"""A follower's link to the leader: the writes, keep-alives and read barriers of the client
streams this node serves, forwarded in batches over one ``Forward.Stream``.

Why: a gRPC call costs the process that serves it far more than proposing the command does,
and the leader is one Python process. A follower that terminates client streams itself and
hands the leader only the commands, many to a message, takes that work off the leader's core
(ZooKeeper's followers serve sessions the same way). The leader stamps every forwarded
command with its own time and term, so the term fence holds as for its own clients.

- Only calls of a session stream are forwarded (``forwarding``, set by the stream); a unary
  call to a follower is refused NOT_LEADER with the leader's address, as before.
- One link, to the leader this node knows, opened at the first call. Calls ready together
  leave in one message; answers come in any order.
- No leader known, or the leader still taking office (it answers NOT_LEADER): a call waits for
  the next leader this node applies an entry of, at most the commit timeout, then NOT_LEADER.
- A link that breaks (the leader died, was deposed, or another leader took office): its calls
  are sent again on the next link. Every forwarded command carries its client's request id,
  which makes a second copy answer the first one's result; keep-alives and read barriers
  change nothing. The one exception is ``OpenSession``, which has no request id: written on a
  link that broke, it is answered UNKNOWN_OUTCOME (a second copy would open a second session).
- If this node becomes the leader meanwhile, the call is served here, as a leader serves it.
- A leader that takes no forwarded calls (an older build answers UNIMPLEMENTED during a
  rolling upgrade): every call answers NOT_LEADER at once, with the leader's address, until
  another leader takes office; the clients go to the leader, as they did before forwarding.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
from prometheus_client import Counter

from turnstile.cluster.codec import decode_result, encode_command
from turnstile.cluster.commands import Command, OpenSession, Result
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.tls import read_pem
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.node import Node

log = logging.getLogger(__name__)

#: Set by the session stream for its calls: only they are forwarded by a follower.
forwarding: contextvars.ContextVar[bool] = contextvars.ContextVar("forwarding", default=False)

#: Metadata naming the calling node, and proving it knows the peer password.
PEER_NODE_METADATA_KEY = "turnstile-peer-node"
PEER_PROOF_METADATA_KEY = "turnstile-peer-proof"
#: After a link to a leader failed, the next one to the same leader waits this long.
RELINK_PAUSE_S = 0.1


def peer_proof(password: str, node_id: str) -> str:
    """What ``node_id`` presents to the leader: an HMAC of its id under the peer password."""
    key = hashlib.sha256(b"turnstile forward v1\0" + password.encode("utf-8")).digest()
    return hmac.new(key, node_id.encode("utf-8"), hashlib.sha256).hexdigest()


#: How a leader that takes no forwarded calls ends the link: an older build without
#: ``Forward`` (during a rolling upgrade), or one that does not accept this node's proof.
_REFUSALS = (
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
)


class LinkBrokenError(Exception):
    """The link a call was on closed before its answer came; ``refused``: by a leader that
    takes no forwarded calls at all."""

    def __init__(self, written: bool, refused: bool = False) -> None:
        super().__init__("the link to the leader broke")
        self.written = written
        self.refused = refused


class _Link:
    """One ``Forward.Stream`` to one leader."""

    def __init__(
        self,
        address: str,
        channel: grpc.aio.Channel,
        metadata: tuple[tuple[str, str], ...],
        on_clock: Callable[[int], None],
    ) -> None:
        self.address = address
        self.failed_at = 0.0
        self.refused = False
        self._channel = channel
        self._on_clock = on_clock
        self._pending: list[tuple[pb.ForwardCall, asyncio.Future[pb.ForwardAnswer]]] = []
        self._open: dict[int, asyncio.Future[pb.ForwardAnswer]] = {}
        self._wake = asyncio.Event()
        self.closed = False
        stub = pb_grpc.ForwardStub(channel)
        self._call = stub.Stream(self._messages(), metadata=metadata)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    def send(self, call: pb.ForwardCall) -> asyncio.Future[pb.ForwardAnswer]:
        future: asyncio.Future[pb.ForwardAnswer] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(LinkBrokenError(written=False))
            return future
        self._pending.append((call, future))
        self._wake.set()
        return future

    async def _messages(self) -> AsyncIterator[pb.ForwardRequest]:
        while not self.closed:
            if not self._pending:
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._pending = self._pending, []
            for call, future in batch:
                self._open[call.call_id] = future
            yield pb.ForwardRequest(calls=[call for call, _ in batch])

    async def _read(self) -> None:
        try:
            async for response in self._call:
                self._on_clock(response.leader_now_ms)
                for answer in response.answers:
                    future = self._open.pop(answer.call_id, None)
                    if future is not None and not future.done():
                        future.set_result(answer)
        except grpc.aio.AioRpcError as exc:
            self.refused = exc.code() in _REFUSALS
            level = logging.WARNING if self.refused else logging.INFO
            log.log(level, "forward link to %s ended: %s", self.address, exc.code().name)
        finally:
            self.failed_at = time.monotonic()
            self.close()

    def close(self) -> None:
        """Ends the link: its calls not answered yet fail with ``LinkBrokenError``."""
        if self.closed:
            return
        self.closed = True
        self._wake.set()
        self._reader.cancel()
        for _, future in self._pending:
            if not future.done():
                future.set_exception(LinkBrokenError(written=False, refused=self.refused))
        for future in self._open.values():
            if not future.done():
                future.set_exception(LinkBrokenError(written=True, refused=self.refused))
        self._pending, self._open = [], {}
        asyncio.get_running_loop().create_task(self._channel.close())


class Forwarder:
    """A follower's calls to the leader (see the module docstring)."""

    def __init__(
        self,
        node: Node,
        password: str,
        channel_factory: Callable[[str], grpc.aio.Channel] | None,
        forwarded: Counter,
    ) -> None:
        """:param channel_factory: a channel to a leader's client address; None: this node
            forwards nothing (see ``channel_factory_for``).
        :param forwarded: the counter of forwarded calls, by kind."""
        self._node = node
        self._password = password
        self._channel_factory = channel_factory
        self._metadata = (
            (PEER_NODE_METADATA_KEY, node.config.node_id),
            (PEER_PROOF_METADATA_KEY, self.proof_of(node.config.node_id)),
        )
        self._forwarded = {
            kind: forwarded.labels(kind) for kind in ("command", "keep_alives", "read_index")
        }
        self._ids = itertools.count(1)
        self._link: _Link | None = None
        self._leader = ""
        self._leading = False
        #: The leader that refused this node's link, until another one leads.
        self._refused_by = ""
        self._leader_changed = asyncio.Event()
        #: The leader's log time and this node's monotonic time when it was heard.
        self._clock: tuple[int, float] | None = None
        #: Sessions a forwarded write renewed, and when that write was sent (monotonic).
        self._renewed: dict[int, float] = {}
        #: Linearizable reads waiting for this node to apply the leader's index they name.
        self._catching_up: list[tuple[int, asyncio.Future[None]]] = []

    def proof_of(self, node_id: str) -> str:
        """What the member ``node_id`` presents to the leader it forwards to."""
        return peer_proof(self._password, node_id)

    @property
    def enabled(self) -> bool:
        """Whether a stream call to this node, as a follower, is forwarded at all."""
        return self._channel_factory is not None and forwarding.get()

    # ------------------------------------------------------------------ the calls

    async def execute(self, command: Command, as_leader: Callable[[], Awaitable[Result]]) -> Result:
        """``command``'s result from the leader (``as_leader()`` if this node leads now).

        :raises TurnstileError: the leader's refusal, NOT_LEADER when no leader came in time,
            or UNKNOWN_OUTCOME for a session opening whose link broke.
        """
        session = getattr(command, "session", None)
        sent = time.monotonic()
        answer = await self._forward(
            "command",
            pb.ForwardCall(command=encode_command(command)),
            resend=not isinstance(command, OpenSession),
        )
        if answer is None:
            return await as_leader()
        if answer.renewed and isinstance(session, int):
            self._renewed[session] = sent
        return decode_result(answer.result)

    async def keep_alive(
        self,
        sessions: list[int],
        as_leader: Callable[[], Awaitable[list[int | TurnstileError]]],
    ) -> list[int | TurnstileError]:
        """Each session's TTL from the leader's renewal, or its SESSION_EXPIRED."""
        call = pb.ForwardCall(keep_alives=pb.ForwardKeepAlives(session_ids=sessions))
        answer = await self._forward("keep_alives", call, resend=True)
        if answer is None:
            return await as_leader()
        return [
            ttl
            if ttl
            else TurnstileError(Reason.SESSION_EXPIRED, f"session {session} is unknown or expired")
            for session, ttl in zip(sessions, answer.ttls.ttl_ms, strict=True)
        ]

    async def read_index(self) -> int | None:
        """The leader's applied index once it confirmed its leadership after this call; None
        if this node leads now."""
        call = pb.ForwardCall(read_index=pb.ForwardReadIndex())
        answer = await self._forward("read_index", call, resend=True)
        return None if answer is None else answer.read_index

    async def applied_to(self, index: int) -> None:
        """Waits until this node applied the entry at ``index``, at most the commit timeout.

        :raises TurnstileError: UNAVAILABLE when it did not in time.
        """
        node = self._node
        if node.raft.applied_index >= index:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = (index, future)
        self._catching_up.append(waiting)
        timeout = node.config.timing.commit_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TurnstileError(
                Reason.UNAVAILABLE,
                f"node {node.config.node_id} did not catch up with the leader within "
                f"{timeout:g}s; retry",
            ) from None
        finally:
            self._catching_up.remove(waiting)

    def observe_applied(self, applied: int) -> None:
        """The node applied the entries up to ``applied`` (told on every member: a read
        registered just before this node took office is woken too): wakes the reads it
        caught up with, and the calls waiting for a leader if it names another one now."""
        self.observe_leader()
        if self._catching_up:
            for index, future in self._catching_up:
                if index <= applied and not future.done():
                    future.set_result(None)

    def renewed(self, session: int, arrived: float) -> bool:
        """Whether a forwarded write sent after ``arrived`` renewed ``session``."""
        return self._renewed.get(session, -1.0) >= arrived

    def forget(self, session: int) -> None:
        self._renewed.pop(session, None)

    def now_ms(self) -> int | None:
        """The leader's log time as last heard from it, moved on by this node's clock."""
        if self._clock is None:
            return None
        leader_ms, heard = self._clock
        return leader_ms + int((time.monotonic() - heard) * 1000)

    # ------------------------------------------------------------------ the link

    def observe_leader(self) -> None:
        """The node applied an entry, changed role or took office: wakes the calls waiting
        for a leader if the leader this node knows is another one than before, or is this
        node, serving now."""
        _, address = self._node.membership.leader_ids()
        leading = self._node.leading
        if address != self._leader or leading != self._leading:
            if address != self._leader:
                self._refused_by = ""
            self._leader, self._leading = address, leading
            self._leader_changed.set()
            self._leader_changed = asyncio.Event()
            if self._link is not None and self._link.address != address:
                self._link.close()

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    async def _forward(
        self, kind: str, call: pb.ForwardCall, *, resend: bool
    ) -> pb.ForwardAnswer | None:
        """The leader's answer to ``call``, or None when this node leads now.

        :raises TurnstileError: the answer's error (other than a NOT_LEADER a later leader may
            not give), NOT_LEADER when no leader came within the commit timeout, or
            UNKNOWN_OUTCOME when a call that may not be sent twice was on a link that broke.
        """
        deadline = time.monotonic() + self._node.config.timing.commit_timeout_ms / 1000
        while True:
            link = await self._link_to_leader(deadline)
            if link is None:
                return None
            call.call_id = next(self._ids)
            self._forwarded[kind].inc()
            try:
                answer = await link.send(call)
            except LinkBrokenError as broken:
                if broken.refused:
                    self._refused_by = link.address
                    raise _not_forwarding(link.address) from None
                if broken.written and not resend:
                    raise TurnstileError(
                        Reason.UNKNOWN_OUTCOME,
                        "the link to the leader broke before the answer came; retry",
                    ) from None
                continue
            if answer.WhichOneof("answer") != "error":
                return answer
            error = _error(answer.error)
            if error.reason is not Reason.NOT_LEADER or time.monotonic() >= deadline:
                raise error
            await self._wait_for_leader_change(deadline, link.address)

    async def _link_to_leader(self, deadline: float) -> _Link | None:
        """The link to the leader, opened if need be; None when this node leads."""
        node = self._node
        while True:
            if node.leading:
                return None
            self.observe_leader()
            address = self._leader
            link = self._link
            if address and address == self._refused_by:
                raise _not_forwarding(address)
            if address and address != node.config.client_address:
                if link is not None and link.address == address:
                    if not link.closed:
                        return link
                    if time.monotonic() < link.failed_at + RELINK_PAUSE_S:
                        await self._wait_for_leader_change(
                            min(deadline, link.failed_at + RELINK_PAUSE_S), address, quiet=True
                        )
                        continue
                assert self._channel_factory is not None
                if link is not None:
                    link.close()
                self._link = _Link(
                    address, self._channel_factory(address), self._metadata, self._heard
                )
                return self._link
            await self._wait_for_leader_change(deadline, address)

    async def _wait_for_leader_change(
        self, until: float, address: str, *, quiet: bool = False
    ) -> None:
        """Waits until this node knows another leader than ``address``, or ``until``.

        :raises TurnstileError: NOT_LEADER at ``until``, unless ``quiet``.
        """
        changed = self._leader_changed
        if self._leader != address or self._node.leading:
            return
        timeout = until - time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):
                await changed.wait()
                return
        if not quiet:
            raise TurnstileError(
                Reason.NOT_LEADER,
                f"node {self._node.config.node_id} found no leader to forward to in time; retry",
            )

    def _heard(self, leader_now_ms: int) -> None:
        self._clock = (leader_now_ms, time.monotonic())


def channel_factory_for(node: Node) -> Callable[[str], grpc.aio.Channel] | None:
    """How a follower dials the leader's client port: as the clients do, over TLS when the
    port has it. With TLS, only when ``tls_client_ca_file`` names the CA that signed the
    nodes' certificates (it verifies the leader's, and this node's is its client certificate);
    without it there is nothing to verify the leader with, and nothing is forwarded. None too
    when the node is configured not to forward (``forward_streams = false``)."""
    config = node.config
    if not config.forward_streams:
        return None
    if config.tls_cert_file is None or config.tls_key_file is None:
        return grpc.aio.insecure_channel
    if config.tls_client_ca_file is None:
        log.warning(
            "forwarding is off: TLS without tls_client_ca_file leaves no CA to verify the "
            "leader's certificate; clients of this follower are sent to the leader instead"
        )
        return None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read_pem("tls_client_ca_file", config.tls_client_ca_file),
        private_key=read_pem("tls_key_file", config.tls_key_file),
        certificate_chain=read_pem("tls_cert_file", config.tls_cert_file),
    )

    def secure(address: str) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(address, credentials)

    return secure


def _not_forwarding(leader: str) -> TurnstileError:
    """NOT_LEADER for a call this node cannot forward: the client goes to the leader."""
    return TurnstileError(
        Reason.NOT_LEADER,
        f"the leader {leader} takes no forwarded calls (an older build, or another peer "
        "password); call it directly",
    )


def _error(error: pb.StreamError) -> TurnstileError:
    try:
        reason = Reason(error.reason)
    except ValueError:
        reason = Reason.INTERNAL
    detail = error.message.split(": ", 1)[-1]
    return TurnstileError(reason, detail)
