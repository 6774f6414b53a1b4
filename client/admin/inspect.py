"""Read-only views: ``locks``, ``lock show``, ``sessions``, ``lists``, ``list show``,
``list get``; and the holder and waiter records ``semaphores`` shares."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from typing import Any

from turnstile.client.admin.context import Context
from turnstile.client.admin.printer import EXIT_OK, duration, member_text
from turnstile.client.errors import NotFoundError
from turnstile.v1 import turnstile_pb2 as pb

LOCK_COLUMNS = [
    ("name", "LOCK"),
    ("session", "SESSION"),
    ("client", "CLIENT"),
    ("token", "TOKEN"),
    ("held_for", "HELD"),
    ("expires_in", "EXPIRES"),
    ("waiters", "WAITERS"),
    ("description", "DESCRIPTION"),
]
WAITER_COLUMNS = [
    ("position", "#"),
    ("session", "SESSION"),
    ("client", "CLIENT"),
    ("waited", "WAITED"),
    ("gives_up_in", "GIVES UP IN"),
    ("together_with", "WITH"),
    ("description", "DESCRIPTION"),
]
SESSION_COLUMNS = [
    ("session", "SESSION"),
    ("client", "CLIENT"),
    ("ttl", "TTL"),
    ("age", "AGE"),
    ("held", "HOLDS"),
    ("waiting", "WAITS FOR"),
    ("permits", "PERMITS"),
]
LIST_COLUMNS = [("name", "LIST"), ("size", "SIZE"), ("ttl", "TTL"), ("expires_in", "EXPIRES")]


def client_text(name: str, host: str, pid: int) -> str:
    return f"{name}@{host}:{pid}" if name or host else "-"


def holder_record(holder: pb.LockHolder) -> dict[str, Any]:
    """A lock's or a permit's holder, with how long it has held and why."""
    return {
        "session": holder.session_id,
        "client": client_text(holder.client_name, holder.client_host, holder.client_pid),
        "token": holder.token,
        "held_for": duration(holder.held_for_ms),
        "expires_in": duration(holder.expires_in_ms) if holder.expires_in_ms else None,
        "description": holder.description or None,
    }


def waiter_records(name: str, waiters: Iterable[pb.LockWaiter]) -> list[dict[str, Any]]:
    """A FIFO queue, head first; ``together_with`` the other locks of an acquire of several."""
    return [
        {
            "position": i + 1,
            "session": w.session_id,
            "client": client_text(w.client_name, w.client_host, w.client_pid),
            "waited": duration(w.waited_for_ms),
            "gives_up_in": duration(w.wait_remaining_ms),
            "together_with": [n for n in w.names if n != name] or None,
            "description": w.description or None,
        }
        for i, w in enumerate(waiters)
    ]


def lock_record(info: pb.LockInfo) -> dict[str, Any]:
    empty = dict.fromkeys(("session", "client", "token", "held_for", "expires_in", "description"))
    holder = holder_record(info.holder) if info.HasField("holder") else empty
    return {"name": info.name, **holder, "waiters": len(info.waiters)}


def pages(ctx: Context, request: Any, field: str) -> Iterator[Any]:
    """Every item of a listing, following the name/id cursor a page at a time."""
    while True:
        reply = ctx.client.invoke(request)
        items = list(getattr(reply, field))
        yield from items
        if not items:
            return
        last = items[-1]
        if hasattr(request, "after_name"):
            request.after_name = last.name
        else:
            request.after_session_id = last.session_id


def locks(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListLocksRequest(prefix=args.prefix or "")
    records = [lock_record(i) for i in pages(ctx, request, "locks")]
    ctx.printer.emit(records, LOCK_COLUMNS)
    return EXIT_OK


def lock_show(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.client.invoke(pb.DescribeLockRequest(name=args.name)).lock
    if not info.HasField("holder") and not info.waiters:
        raise NotFoundError(f"lock {args.name!r} is not in use (free, nobody waiting)")
    record = lock_record(info)
    queue = waiter_records(info.name, info.waiters)
    if ctx.printer.as_json:
        ctx.printer.emit({**record, "queue": queue})
        return EXIT_OK
    record["held"] = record["session"] is not None
    ctx.printer.emit(
        {
            k: record[k]
            for k in (
                "name",
                "held",
                "session",
                "client",
                "token",
                "held_for",
                "expires_in",
                "description",
            )
        }
    )
    print()
    ctx.printer.table(queue, WAITER_COLUMNS)
    return EXIT_OK


def sessions(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListSessionsRequest()
    records = [
        {
            "session": s.session_id,
            "client": client_text(s.client_name, s.client_host, s.client_pid),
            "ttl": duration(s.ttl_ms),
            "age": duration(s.age_ms),
            "held": list(s.held),
            "waiting": list(s.waiting),
            "permits": list(s.permits),
            "permit_waits": list(s.permit_waits),
        }
        for s in pages(ctx, request, "sessions")
    ]
    ctx.printer.emit(records, SESSION_COLUMNS)
    return EXIT_OK


def lists(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListListsRequest(prefix=args.prefix or "")
    records = [
        {
            "name": item.name,
            "size": item.size,
            "ttl": duration(item.ttl_ms) if item.ttl_ms else None,
            "expires_in": duration(item.expires_in_ms) if item.expires_in_ms else None,
        }
        for item in pages(ctx, request, "lists")
    ]
    ctx.printer.emit(records, LIST_COLUMNS)
    return EXIT_OK


def list_get(ctx: Context, args: argparse.Namespace) -> int:
    """The member that got an id (the reverse of ``list insert``)."""
    reply = ctx.client.invoke(pb.LookupRequest(name=args.name, ids=[args.id]))
    if not reply.members[0]:
        raise NotFoundError(f"list {args.name!r} has no member with id {args.id}")
    member = member_text(reply.members[0])
    ctx.printer.emit({"name": args.name, "id": args.id, "member": member})
    return EXIT_OK


def list_show(ctx: Context, args: argparse.Namespace) -> int:
    reply = ctx.client.invoke(
        pb.MembersRequest(name=args.name, after_id=args.after, limit=args.limit),
    )
    records = [{"id": m.id, "member": member_text(m.member)} for m in reply.members]
    if ctx.printer.as_json:
        ctx.printer.emit({"name": args.name, "size": reply.size, "members": records})
        return EXIT_OK
    ctx.printer.table(records, [("id", "ID"), ("member", "MEMBER")])
    shown_to = records[-1]["id"] if records else args.after
    if shown_to < reply.size:
        ctx.printer.message(f"... {reply.size - shown_to} more: --after {shown_to}")
    return EXIT_OK
