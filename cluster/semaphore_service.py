"""gRPC servicer of semaphores: proto <-> node calls and back.

As in ``turnstile.cluster.service``, no rule lives here: the state machine's
``semaphore_rules`` decide, and a blocked acquire waits as a lock's does (``acquire``).
"""

from __future__ import annotations

from typing import Any

from turnstile.cluster import admission, views
from turnstile.cluster import commands as cmd
from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.hold_messages import semaphore_info
from turnstile.cluster.node import Node
from turnstile.cluster.service import Servicer, linearizable, request_fields, rpc, served_by
from turnstile.cluster.session_stream import StreamMethod
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc
from turnstile.v1.reasons import Reason

_WHAT = "semaphore name"


class SemaphoresService(Servicer, pb_grpc.SemaphoresServicer):
    @rpc
    async def Acquire(self, request: pb.AcquirePermitRequest, context: Any) -> pb.AcquireResponse:
        admission.check_acquire_permit(self.limits(), request)
        result = await self.node.acquires.acquire_permit(
            request.name,
            request_fields(request.request),
            limit=request.limit,
            max_hold_ms=request.max_hold_ms,
            wait_ms=request.wait_ms,
            description=request.description,
        )
        if isinstance(result, cmd.Granted):
            return pb.AcquireResponse(
                header=self.header(),
                acquired=True,
                token=result.token,
                expires_in_ms=self.remaining_ms(result.expires_at),
            )
        return pb.AcquireResponse(header=self.header(), acquired=False)

    @rpc
    async def Release(self, request: pb.ReleasePermitRequest, context: Any) -> pb.ReleaseResponse:
        admission.check_release(self.limits(), request, _WHAT)
        rid = request.request
        await self.node.execute(
            lambda now: sem.ReleasePermit(
                now, name=request.name, token=request.token, **request_fields(rid)
            )
        )
        return pb.ReleaseResponse(header=self.header())

    @rpc
    async def Abandon(self, request: pb.AbandonPermitRequest, context: Any) -> pb.AbandonResponse:
        admission.check_abandon(self.limits(), request, _WHAT)
        result = await self.node.acquires.abandon(
            request.name, request.acquire_seq, request_fields(request.request), permit=True
        )
        return pb.AbandonResponse(
            header=self.header(), removed=result.removed, released=result.released
        )

    @rpc
    async def Extend(self, request: pb.ExtendPermitRequest, context: Any) -> pb.ExtendResponse:
        admission.check_extend(self.limits(), request, _WHAT)
        rid = request.request
        result = await self.node.execute(
            lambda now: sem.ExtendPermit(
                now,
                name=request.name,
                token=request.token,
                max_hold_ms=request.max_hold_ms,
                **request_fields(rid),
            )
        )
        assert isinstance(result, cmd.Extended)
        return pb.ExtendResponse(
            header=self.header(), expires_in_ms=self.remaining_ms(result.expires_at)
        )

    @rpc
    async def Describe(
        self, request: pb.DescribeSemaphoreRequest, context: Any
    ) -> pb.DescribeSemaphoreResponse:
        admission.check_describe(self.limits(), request, _WHAT)
        self._require_semaphores()
        view = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: views.describe_semaphore(s, request.name, now),
        )
        return pb.DescribeSemaphoreResponse(header=self.header(), semaphore=semaphore_info(view))

    @rpc
    async def List(
        self, request: pb.ListSemaphoresRequest, context: Any
    ) -> pb.ListSemaphoresResponse:
        self._require_semaphores()
        found = await self.node.read(
            linearizable(request.consistency),
            lambda s, now: views.list_semaphores(
                s, request.prefix, request.after_name, request.limit, now
            ),
        )
        return pb.ListSemaphoresResponse(
            header=self.header(), semaphores=[semaphore_info(v) for v in found]
        )

    def _require_semaphores(self) -> None:
        """Reads are refused below cluster version 6 as the writes are (the node refuses those
        before proposing), rather than answering "none"."""
        version = self.node.raft.read(lambda s: s.cluster_version)
        if version < sem.SEMAPHORES_SINCE:
            raise TurnstileError(
                Reason.FAILED_PRECONDITION,
                f"semaphores need cluster version {sem.SEMAPHORES_SINCE}, the cluster is at "
                f"{version}: a member runs an older Turnstile; upgrade every member",
            )


def stream_calls(node: Node) -> dict[str, StreamMethod]:
    """The semaphore calls of a session stream, by ``StreamCall.request`` field name."""
    semaphores = SemaphoresService(node)
    return {
        "semaphore_acquire": served_by(semaphores, SemaphoresService.Acquire),
        "semaphore_release": served_by(semaphores, SemaphoresService.Release),
        "semaphore_abandon": served_by(semaphores, SemaphoresService.Abandon),
        "semaphore_extend": served_by(semaphores, SemaphoresService.Extend),
    }
