"""``turnstile status``: every node's view, and whether the cluster can serve."""

from __future__ import annotations

import argparse
from typing import NotRequired, TypedDict

from turnstile.client.admin.context import Context
from turnstile.client.admin.printer import EXIT_DEGRADED, EXIT_OK, EXIT_UNREACHABLE, duration
from turnstile.client.errors import PermissionDeniedError, TurnstileError, UnauthenticatedError
from turnstile.v1 import turnstile_pb2 as pb

_ROLE = {pb.ROLE_LEADER: "leader", pb.ROLE_FOLLOWER: "follower", pb.ROLE_CANDIDATE: "candidate"}
COLUMNS = [
    ("node", "NODE"),
    ("role", "ROLE"),
    ("term", "TERM"),
    ("commit", "COMMIT"),
    ("applied", "APPLIED"),
    ("lag", "LAG"),
    ("contact", "CONTACT"),
    ("healthy", "OK"),
    ("address", "ADDRESS"),
    ("version", "VERSION"),
]


class _Node(TypedDict):
    """One row of the table: a node that answered has every field but ``error``; one that
    did not has ``error`` and ``role`` (unreachable) besides the first four."""

    node: str
    address: str
    reachable: bool
    healthy: bool
    error: NotRequired[str]
    role: NotRequired[str]
    term: NotRequired[int]
    commit: NotRequired[int]
    applied: NotRequired[int]
    lag: NotRequired[int | None]
    contact: NotRequired[str]
    version: NotRequired[str]


def members(ctx: Context) -> list[tuple[str, str]]:
    """(node id, client address) of every member, from the first node that answers."""
    for address in ctx.endpoints():
        try:
            reply = ctx.node_call(address, "Members", pb.MembersListRequest())
        except (UnauthenticatedError, PermissionDeniedError):
            raise
        except TurnstileError:
            continue
        return [(m.node_id, m.client_address) for m in reply.members]
    return [("?", address) for address in ctx.endpoints()]


def run(ctx: Context, args: argparse.Namespace) -> int:
    nodes: list[_Node] = []
    statuses: dict[str, pb.StatusResponse] = {}
    for node_id, address in members(ctx):
        try:
            status = ctx.node_call(address, "Status", pb.StatusRequest())
        except TurnstileError as error:
            nodes.append(
                {
                    "node": node_id,
                    "address": address,
                    "reachable": False,
                    "healthy": False,
                    "error": str(error),
                }
            )
            continue
        statuses[status.node_id] = status
        nodes.append(
            {
                "node": status.node_id,
                "address": status.client_address,
                "reachable": True,
                "role": _ROLE.get(status.role, "unknown"),
                "term": status.header.term,
                "commit": status.commit_index,
                "applied": status.header.applied_index,
                "lag": None,
                "contact": duration(status.last_contact_ms),
                "healthy": status.healthy,
                "version": status.version,
            }
        )
    leaders = [s for s in statuses.values() if s.role == pb.ROLE_LEADER]
    leader = max(leaders, key=lambda s: s.header.term) if leaders else None
    for node in nodes:
        if not node["reachable"]:
            node["role"] = "unreachable"
        elif leader is not None:
            lag = leader.follower_lag.get(node["node"])
            node["lag"] = 0 if node["node"] == leader.node_id else lag
    agreeing = [s for s in statuses.values() if leader and s.header.leader_id == leader.node_id]
    quorum = leader is not None and len(agreeing) > len(nodes) // 2
    counts = leader.counts if leader else None
    summary = {
        "leader": leader.node_id if leader else None,
        "quorum": quorum,
        "reachable": f"{len(statuses)}/{len(nodes)}",
        "cluster_version": leader.cluster_version if leader else None,
        "sessions": counts.sessions if counts else None,
        "locks_held": counts.locks_held if counts else None,
        "waiters": counts.waiters if counts else None,
        "lists": counts.lists if counts else None,
        "members": counts.members if counts else None,
        "groups": counts.groups if counts else None,
        "group_members": counts.group_members if counts else None,
        "elections": counts.elections if counts else None,
    }
    if ctx.printer.as_json:
        ctx.printer.emit({"nodes": nodes, "cluster": summary})
    else:
        ctx.printer.table(nodes, COLUMNS)
        print()
        ctx.printer.emit(summary)
    if not statuses:
        errors = [node["error"] for node in nodes if "error" in node]
        ctx.printer.error(f"turnstile: no node answered{': ' + errors[0] if errors else ''}")
        return EXIT_UNREACHABLE
    if leader is None or len(statuses) < len(nodes) or not quorum:
        return EXIT_DEGRADED
    return EXIT_OK
