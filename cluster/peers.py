"""A cluster member and what makes a set of them valid: one check for the config loader and
for ``AddMember``."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

NODE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NODE_ID_RULE = "must be 1 to 64 of A-Z a-z 0-9 _ . -"
# A DNS name or IPv4 address; excludes ':' (IPv6 must be bracketed) and the ',', '=', '/'
# separators of the peers string form.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class Peer:
    """One cluster member, as every node must know it to connect and to hint at the leader."""

    node_id: str
    #: host:port of its Raft port.
    peer_address: str
    #: host:port of its gRPC port, handed to clients as the leader hint.
    client_address: str

    def addresses(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(kind, address) of both its ports."""
        return (("peer_address", self.peer_address), ("client_address", self.client_address))


def address_problem(address: str) -> str | None:
    """What is wrong with a host:port, if anything; IPv6 hosts must be bracketed."""
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        return f"must be host:port, got {address!r}"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host[1:-1]!r} in {address!r} is not an IPv6 address"
    elif not _HOST.fullmatch(host):
        return f"host {host!r} in {address!r} is not a host name or address (IPv6 as [::1]:7000)"
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"port {port!r} in {address!r} must be 1..65535"
    return None


def peer_problem(peer: Peer) -> str | None:
    """What is wrong with one member on its own, if anything: its node id, an address, or
    one port given for both."""
    if not NODE_ID.fullmatch(peer.node_id):
        return f"node id {NODE_ID_RULE}, got {peer.node_id!r}"
    for kind, address in peer.addresses():
        problem = address_problem(address)
        if problem:
            return f"{kind} of {peer.node_id}: {problem}"
    if peer.peer_address == peer.client_address:
        return f"{peer.node_id}: peer_address and client_address must differ"
    return None


def clash_problem(peer: Peer, members: Sequence[Peer]) -> str | None:
    """Whether ``peer`` takes a node id or an address one of ``members`` has."""
    users = {address: f"{m.node_id} {kind}" for m in members for kind, address in m.addresses()}
    if any(m.node_id == peer.node_id for m in members):
        return f"node id {peer.node_id!r} is already used"
    for kind, address in peer.addresses():
        if address in users:
            return (
                f"{kind} of {peer.node_id}: address {address} is already used by {users[address]}"
            )
    return None


def members_problem(members: Sequence[Peer]) -> str | None:
    """What makes ``members`` not a valid cluster, if anything: a member with a problem of its
    own, or one taking a node id or address of another."""
    for index, peer in enumerate(members):
        problem = peer_problem(peer) or clash_problem(peer, members[:index])
        if problem:
            return problem
    return None


def cluster_problem(this: Peer, listed: Sequence[Peer]) -> str | None:
    """What is wrong with a node's list of the cluster's members, if anything: a member with
    a problem of its own, this node's entry disagreeing with its own options, or two members
    sharing a node id or address (this node counted when it is not listed)."""
    for peer in listed:
        problem = peer_problem(peer)
        if problem:
            return problem
    entry = next((peer for peer in listed if peer.node_id == this.node_id), None)
    if entry is not None:
        for kind, address in entry.addresses():
            own = getattr(this, kind)
            if address != own:
                return (
                    f"entry for this node {this.node_id} has {kind} {address}, but {kind} is {own}"
                )
    return members_problem(with_this_node(this, listed))


def with_this_node(this: Peer, listed: Sequence[Peer]) -> tuple[Peer, ...]:
    """The members, this node included, sorted by node id."""
    members = list(listed)
    if all(peer.node_id != this.node_id for peer in members):
        members.append(this)
    return tuple(sorted(members, key=lambda peer: peer.node_id))
