"""Commands that change things: force-release, list insert, leadership transfer."""

from __future__ import annotations

import argparse

from turnstile.client.admin.context import Context
from turnstile.client.admin.printer import EXIT_OK, EXIT_REFUSED, member_text
from turnstile.client.core import insert_batches, insert_results, member_bytes, set_up_request
from turnstile.client.errors import NotFoundError
from turnstile.v1 import turnstile_pb2 as pb


def force_release(ctx: Context, args: argparse.Namespace) -> int:
    if not args.force:
        ctx.printer.error(
            f"turnstile: releasing {args.name!r} takes it from its holder; "
            "say --force --reason TEXT to do that"
        )
        return EXIT_REFUSED
    lock = ctx.client.invoke(pb.DescribeLockRequest(name=args.name)).lock
    if not lock.HasField("holder"):
        raise NotFoundError(f"lock {args.name!r} is not held")
    # The token pins the hold being taken: a retry cannot take the next holder's grant.
    reply = ctx.client.invoke(
        pb.ForceReleaseRequest(name=args.name, reason=args.reason, token=lock.holder.token),
    )
    ctx.printer.emit(
        {
            "name": args.name,
            "session": reply.session_id,
            "token": reply.token,
            "reason": args.reason,
        }
    )
    return EXIT_OK


def list_insert(ctx: Context, args: argparse.Namespace) -> int:
    results: list[tuple[bool, int]] = []
    for batch in insert_batches(args.name, args.keys):
        try:
            reply = ctx.client.write(batch)
        except NotFoundError:
            # Like SADD: a missing list is created (an existing one keeps its TTL).
            ctx.client.write(set_up_request(args.name, args.ttl))
            reply = ctx.client.write(batch)
        results += insert_results(reply)
    records = [
        {"id": id_, "added": added, "member": member_text(member_bytes(key))}
        for key, (added, id_) in zip(args.keys, results, strict=True)
    ]
    ctx.printer.emit(records, [("id", "ID"), ("added", "NEW"), ("member", "MEMBER")])
    return EXIT_OK


def transfer_leadership(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.invoke(pb.TransferLeadershipRequest(node_id=args.node or ""))
    ctx.printer.message(
        f"leadership transfer to {args.node or 'the most caught-up follower'} requested; "
        "check with: turnstile status"
    )
    return EXIT_OK


def members_list(ctx: Context, args: argparse.Namespace) -> int:
    reply = ctx.client.invoke(pb.MembersListRequest())
    records = [
        {
            "node": m.node_id,
            "peer_address": m.peer_address,
            "client_address": m.client_address,
            "leader": m.node_id == reply.header.leader_id,
        }
        for m in reply.members
    ]
    ctx.printer.emit(
        records,
        [
            ("node", "NODE"),
            ("client_address", "CLIENT"),
            ("peer_address", "PEER"),
            ("leader", "LEADER"),
        ],
    )
    return EXIT_OK


def members_add(ctx: Context, args: argparse.Namespace) -> int:
    member = pb.ClusterMember(
        node_id=args.node, peer_address=args.peer_address, client_address=args.client_address
    )
    ctx.client.invoke(pb.AddMemberRequest(member=member))
    ctx.printer.message(
        f"member {args.node} added; start it with every member (itself included) in its peers"
    )
    return EXIT_OK


def members_remove(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.invoke(pb.RemoveMemberRequest(node_id=args.node))
    ctx.printer.message(f"member {args.node} removed; stop its process now")
    return EXIT_OK
