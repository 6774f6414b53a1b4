"""The protocol version each Raft member reported to the leader in this term.

Followers add ``turnstile_protocol`` (this build's protocol version, which pysyncobj ignores)
to every AppendEntries reply; the leader keeps them per term, so that it proposes a new kind
of command only once every member supports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: The field of a ``next_node_idx`` reply that carries it.
PROTOCOL_FIELD = "turnstile_protocol"


class MemberProtocols:
    """The leader's record: (term, {peer address: protocol version reported in that term}).

    Written on the raft loop thread; ``versions`` may be read from any thread (it copies,
    and reports of another term, a leadership since lost, never count).
    """

    def __init__(self) -> None:
        self._reports: tuple[int, dict[str, int]] = (-1, {})

    def record(self, term: int, peer: str, reply: dict[str, Any]) -> None:
        """The version in a follower's reply (none: 1, an older Turnstile)."""
        reports_term, reports = self._reports
        if reports_term != term:
            reports = {}
            self._reports = (term, reports)
        version = reply.get(PROTOCOL_FIELD, 1)
        reports[peer] = version if type(version) is int else 1

    def forget(self) -> None:
        """Reports are the leader's, for its term: dropped once this node does not lead."""
        if self._reports[1]:
            self._reports = (-1, {})

    def versions(
        self, term: int, members: Iterable[str], self_address: str, own_version: int
    ) -> dict[str, int]:
        """Each member's version as reported in ``term`` (0: not heard from), this node's
        own included."""
        reports_term, reports = self._reports
        heard = dict(reports) if reports_term == term else {}
        versions = {member: heard.get(member, 0) for member in members}
        versions[self_address] = own_version
        return versions
