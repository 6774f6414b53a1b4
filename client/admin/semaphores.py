"""Read-only views of semaphores: ``semaphores`` and ``semaphore show``."""

from __future__ import annotations

import argparse
from typing import Any

from turnstile.client.admin.context import Context
from turnstile.client.admin.inspect import WAITER_COLUMNS, holder_record, pages, waiter_records
from turnstile.client.admin.printer import EXIT_OK
from turnstile.client.errors import NotFoundError
from turnstile.v1 import turnstile_pb2 as pb

SEMAPHORE_COLUMNS = [
    ("name", "SEMAPHORE"),
    ("limit", "LIMIT"),
    ("held", "HELD"),
    ("waiters", "WAITERS"),
]
HOLDER_COLUMNS = [
    ("session", "SESSION"),
    ("client", "CLIENT"),
    ("token", "TOKEN"),
    ("held_for", "HELD"),
    ("expires_in", "EXPIRES"),
    ("description", "DESCRIPTION"),
]


def _record(info: pb.SemaphoreInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "limit": info.limit,
        "held": len(info.holders),
        "waiters": len(info.waiters),
    }


def semaphores(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListSemaphoresRequest(prefix=args.prefix or "")
    records = [_record(s) for s in pages(ctx, request, "semaphores")]
    ctx.printer.emit(records, SEMAPHORE_COLUMNS)
    return EXIT_OK


def semaphore_show(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.client.invoke(pb.DescribeSemaphoreRequest(name=args.name)).semaphore
    if not info.holders and not info.waiters:
        raise NotFoundError(f"semaphore {args.name!r} is not in use (nobody holds or waits)")
    holders = [holder_record(h) for h in info.holders]
    queue = waiter_records(info.name, info.waiters)
    if ctx.printer.as_json:
        ctx.printer.emit(
            {"name": info.name, "limit": info.limit, "holders": holders, "queue": queue}
        )
        return EXIT_OK
    ctx.printer.emit(_record(info))
    print()
    ctx.printer.table(holders, HOLDER_COLUMNS)
    print()
    ctx.printer.table(queue, [c for c in WAITER_COLUMNS if c[0] != "together_with"])
    return EXIT_OK
