"""Read views of locks and semaphores as their proto messages (shared by both servicers)."""

from __future__ import annotations

from turnstile.cluster.views import HolderView, LockView, SemaphoreView, WaiterView
from turnstile.v1 import turnstile_pb2 as pb


def lock_info(view: LockView) -> pb.LockInfo:
    info = pb.LockInfo(name=view.name, waiters=[waiter(w) for w in view.waiters])
    if view.holder is not None:
        info.holder.CopyFrom(holder(view.holder))
    return info


def semaphore_info(view: SemaphoreView) -> pb.SemaphoreInfo:
    return pb.SemaphoreInfo(
        name=view.name,
        limit=view.limit,
        holders=[holder(h) for h in view.holders],
        waiters=[waiter(w) for w in view.waiters],
    )


def holder(view: HolderView) -> pb.LockHolder:
    return pb.LockHolder(
        session_id=view.session,
        token=view.token,
        held_for_ms=view.held_for_ms,
        expires_in_ms=view.expires_in_ms,
        client_name=view.client_name,
        client_host=view.client_host,
        client_pid=view.client_pid,
        description=view.description,
        seq=view.seq,
    )


def waiter(view: WaiterView) -> pb.LockWaiter:
    return pb.LockWaiter(
        session_id=view.session,
        seq=view.seq,
        waited_for_ms=view.waited_for_ms,
        wait_remaining_ms=view.wait_remaining_ms,
        client_name=view.client_name,
        client_host=view.client_host,
        client_pid=view.client_pid,
        description=view.description,
        names=view.names,
    )
