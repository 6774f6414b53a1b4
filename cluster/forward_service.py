"""The leader's side of forwarding (``Forward.Stream``): the calls of a follower's client
streams, served as the leader serves its own clients' (``turnstile.cluster.forwarder`` is the
follower's side).

- Only a member that proves it knows the peer password may call (``peer_proof``); anyone else
  is refused UNAUTHENTICATED before a message is read.
- A command is stamped with this leader's time and term and proposed through
  ``Node.propose``, with its checks (cluster version, leadership); a leader duty (``Tick``,
  ``ExpireSession``, membership, limits, the cluster version, a forced release) is refused:
  only the leader decides those.
- A deposed leader answers NOT_LEADER and forwards nothing further itself.
- The commands of one message are proposed together and awaited with one wait; each
  keep-alive batch and read index runs as a task of its own. Answers ready together leave in
  one message, with this leader's log time.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from turnstile.cluster.codec import CodecError, decode_command, encode_result
from turnstile.cluster.commands import (
    Command,
    Err,
    ExpireSession,
    ForceRelease,
    RemoveMember,
    SetClusterVersion,
    SetLimits,
    SetMember,
    Tick,
)
from turnstile.cluster.errors import TurnstileError, stream_error, to_status
from turnstile.cluster.forwarder import PEER_NODE_METADATA_KEY, PEER_PROOF_METADATA_KEY
from turnstile.cluster.node import unknown_outcome
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc
from turnstile.v1.reasons import Reason

if TYPE_CHECKING:
    from turnstile.cluster.node import Node
    from turnstile.cluster.state import Applied

log = logging.getLogger(__name__)

#: Commands only the leader itself proposes (or an admin asks of it): never accepted from a
#: follower.
LEADER_DUTIES = (
    Tick,
    ExpireSession,
    SetLimits,
    SetMember,
    RemoveMember,
    SetClusterVersion,
    ForceRelease,
)


class ForwardService(pb_grpc.ForwardServicer):
    def __init__(self, node: Node) -> None:
        self._node = node

    async def Stream(
        self, requests: AsyncIterator[pb.ForwardRequest], context: Any
    ) -> AsyncIterator[pb.ForwardResponse]:
        peer = self._authenticated(context.invocation_metadata())
        if peer is None:
            log.warning("refused a forward stream from %s: no valid peer proof", context.peer())
            status = to_status(
                Reason.UNAUTHENTICATED,
                "Forward is for the members of the cluster: present turnstile-peer-node and "
                "turnstile-peer-proof",
            )
            context.set_trailing_metadata(status.trailing_metadata)
            await context.abort(status.code, status.details)
            return
        tasks: set[asyncio.Task[None]] = set()
        ready: list[pb.ForwardAnswer] = []
        wake = asyncio.Event()

        def answer(message: pb.ForwardAnswer) -> None:
            ready.append(message)
            wake.set()

        def start(work: Coroutine[Any, Any, None]) -> None:
            task = asyncio.get_running_loop().create_task(work)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def read() -> None:
            try:
                async for request in requests:
                    commands = [c for c in request.calls if c.WhichOneof("call") == "command"]
                    if commands:
                        start(self._commands(commands, answer))
                    for call in request.calls:
                        if call.WhichOneof("call") != "command":
                            start(self._serve(call, answer))
            finally:
                wake.set()

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while True:
                if ready:
                    answers, ready[:] = list(ready), []
                    yield pb.ForwardResponse(answers=answers, leader_now_ms=self._node.now_ms())
                    continue
                if reader.done() and (not tasks or reader.exception() is not None):
                    reader.result()
                    return
                await wake.wait()
                wake.clear()
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    def _authenticated(self, metadata: Any) -> str | None:
        """The member the metadata proves to be, if any."""
        values = {key: value for key, value in metadata or () if isinstance(value, str)}
        node_id = values.get(PEER_NODE_METADATA_KEY, "")
        proof = values.get(PEER_PROOF_METADATA_KEY, "")
        if not node_id or not any(p.node_id == node_id for p in self._node.membership.members()):
            return None
        expected = self._node.forwarder.proof_of(node_id)
        return node_id if hmac.compare_digest(proof.encode(), expected.encode()) else None

    async def _serve(
        self, call: pb.ForwardCall, answer: Callable[[pb.ForwardAnswer], None]
    ) -> None:
        reply = pb.ForwardAnswer(call_id=call.call_id)
        try:
            kind = call.WhichOneof("call")
            if kind == "keep_alives":
                sessions = list(call.keep_alives.session_ids)
                renewed = await self._node.keep_alives.renew_many(sessions)
                reply.ttls.ttl_ms.extend(
                    0 if isinstance(ttl, TurnstileError) else ttl for ttl in renewed
                )
            elif kind == "read_index":
                node = self._node
                node.require_leader()
                await node.barrier.wait()
                node.require_leader()
                reply.read_index = node.raft.applied_index
            else:
                raise TurnstileError(Reason.INVALID_ARGUMENT, "a forwarded call names no call")
        except TurnstileError as exc:
            reply.error.CopyFrom(stream_error(exc.reason, exc.detail))
        except Exception:  # every failure is this call's answer
            log.exception("a forwarded call failed")
            reply.error.CopyFrom(stream_error(Reason.INTERNAL, "see the leader's log"))
        answer(reply)

    async def _commands(
        self, calls: list[pb.ForwardCall], answer: Callable[[pb.ForwardAnswer], None]
    ) -> None:
        """The commands of one message, proposed together and answered once all of them
        applied: one task and one wait for all of them, not one each (they share log entries
        anyway, being proposed together)."""
        arrived = time.monotonic()
        node = self._node
        proposed: dict[asyncio.Future[Applied], tuple[pb.ForwardCall, Command]] = {}
        for call in calls:
            try:
                command = _client_command(call.command)
                proposed[node.propose(command)] = (call, command)
            except TurnstileError as exc:
                answer(_refusal(call, exc))
        if not proposed:
            return
        timeout = node.config.timing.commit_timeout_ms / 1000
        await asyncio.wait(proposed, timeout=timeout)
        for future, (call, command) in proposed.items():
            if not future.done():
                future.cancel()
                answer(_refusal(call, unknown_outcome(timeout)))
            elif future.exception() is not None:
                error = future.exception()
                if not isinstance(error, TurnstileError):
                    log.error("a forwarded command failed", exc_info=error)
                    error = TurnstileError(Reason.INTERNAL, "see the leader's log")
                answer(_refusal(call, error))
            else:
                result = future.result().result
                if isinstance(result, Err):
                    answer(_refusal(call, TurnstileError(result.reason, result.detail)))
                    continue
                reply = pb.ForwardAnswer(call_id=call.call_id, result=encode_result(result))
                session = getattr(command, "session", None)
                if isinstance(session, int) and session and node.leading:
                    reply.renewed = node.tracker.renew(session, arrived)
                answer(reply)


def _client_command(data: bytes) -> Command:
    """The command a follower forwarded.

    :raises TurnstileError: INVALID_ARGUMENT for bytes that are no command, or a leader duty.
    """
    try:
        command = decode_command(data)
    except CodecError as exc:
        raise TurnstileError(Reason.INVALID_ARGUMENT, f"not a command: {exc}") from None
    if isinstance(command, LEADER_DUTIES):
        raise TurnstileError(
            Reason.INVALID_ARGUMENT,
            f"{type(command).__name__} is the leader's to propose, not a follower's",
        )
    return command


def _refusal(call: pb.ForwardCall, error: TurnstileError) -> pb.ForwardAnswer:
    return pb.ForwardAnswer(call_id=call.call_id, error=stream_error(error.reason, error.detail))
