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


def members_problem(members: Sequence[Peer]) -> str | None:
    """What makes ``members`` not a valid cluster, if anything: a bad node id or address, or a
    node id or address used twice."""
    ids: set[str] = set()
    users: dict[str, str] = {}
    for peer in members:
        if not NODE_ID.fullmatch(peer.node_id):
            return f"node id {NODE_ID_RULE}, got {peer.node_id!r}"
        if peer.node_id in ids:
            return f"node id {peer.node_id!r} is already used"
        ids.add(peer.node_id)
        for kind, address in peer.addresses():
            problem = address_problem(address)
            if problem:
                return f"{kind} of {peer.node_id}: {problem}"
            user = f"{peer.node_id} {kind}"
            if address in users:
                return f"{user}: address {address} is already used by {users[address]}"
            users[address] = user
    return None
