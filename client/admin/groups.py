"""Read-only views of groups and elections: ``groups``, ``group show``, ``elections``,
``election show``."""

from __future__ import annotations

import argparse
from typing import Any

from turnstile.client.admin.context import Context
from turnstile.client.admin.inspect import client_text, pages
from turnstile.client.admin.printer import EXIT_OK, duration, member_text
from turnstile.client.errors import NotFoundError
from turnstile.v1 import turnstile_pb2 as pb

GROUP_COLUMNS = [("name", "GROUP"), ("members", "MEMBERS"), ("age", "AGE")]
MEMBER_COLUMNS = [
    ("member", "MEMBER"),
    ("session", "SESSION"),
    ("client", "CLIENT"),
    ("joined", "JOINED"),
    ("capabilities", "CAPABILITIES"),
]
ELECTION_COLUMNS = [
    ("name", "ELECTION"),
    ("leader", "LEADER"),
    ("session", "SESSION"),
    ("token", "TOKEN"),
    ("leading_for", "LEADS FOR"),
    ("candidates", "QUEUED"),
]
CANDIDATE_COLUMNS = [
    ("position", "#"),
    ("member", "CANDIDATE"),
    ("session", "SESSION"),
    ("client", "CLIENT"),
    ("waited", "WAITED"),
]


def groups(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListGroupsRequest(prefix=args.prefix or "")
    records = [
        {"name": g.name, "members": len(g.members), "age": duration(g.age_ms)}
        for g in pages(ctx, request, "groups")
    ]
    ctx.printer.emit(records, GROUP_COLUMNS)
    return EXIT_OK


def group_show(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.client.invoke(pb.DescribeGroupRequest(name=args.name)).group
    members = [
        {
            "member": m.member_id,
            "session": m.session_id,
            "client": client_text(m.client_name, m.client_host, m.client_pid),
            "joined": duration(m.joined_for_ms),
            "capabilities": member_text(m.capabilities) if m.capabilities else None,
        }
        for m in info.members
    ]
    if ctx.printer.as_json:
        ctx.printer.emit({"name": info.name, "age": duration(info.age_ms), "members": members})
        return EXIT_OK
    ctx.printer.emit({"name": info.name, "age": duration(info.age_ms), "members": len(members)})
    print()
    ctx.printer.table(members, MEMBER_COLUMNS)
    return EXIT_OK


def _election_record(info: pb.ElectionInfo) -> dict[str, Any]:
    leader = info.leader if info.HasField("leader") else None
    return {
        "name": info.name,
        "leader": leader.member_id if leader else None,
        "session": leader.session_id if leader else None,
        "client": client_text(leader.client_name, leader.client_host, leader.client_pid)
        if leader
        else None,
        "token": leader.token if leader else None,
        "leading_for": duration(leader.for_ms) if leader else None,
        "candidates": len(info.candidates),
    }


def elections(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListElectionsRequest(prefix=args.prefix or "")
    records = [_election_record(e) for e in pages(ctx, request, "elections")]
    ctx.printer.emit(records, ELECTION_COLUMNS)
    return EXIT_OK


def election_show(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.client.invoke(pb.DescribeElectionRequest(name=args.name)).election
    if not info.HasField("leader"):
        raise NotFoundError(f"nobody stands in election {args.name!r}")
    record = _election_record(info)
    queue = [
        {
            "position": i + 2,
            "member": c.member_id,
            "session": c.session_id,
            "client": client_text(c.client_name, c.client_host, c.client_pid),
            "waited": duration(c.for_ms),
        }
        for i, c in enumerate(info.candidates)
    ]
    if ctx.printer.as_json:
        ctx.printer.emit({**record, "queue": queue})
        return EXIT_OK
    record.pop("candidates")
    ctx.printer.emit(record)
    print()
    ctx.printer.table(queue, CANDIDATE_COLUMNS)
    return EXIT_OK
