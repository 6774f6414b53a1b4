"""Commands submitted together become one log entry: grouping and splitting the results.

One pickle, one journal record and one apply call for up to ``GROUP_MAX_COMMANDS`` commands
or ``GROUP_MAX_BYTES`` (a big entry stalls every follower). Every command of a group shares
its entry's fate: applied in order, or not at all.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON

from turnstile.cluster.codec import encode_batch
from turnstile.cluster.pysyncobj_fixes import guarded_callback

log = logging.getLogger(__name__)

#: (result or None, pysyncobj FAIL_REASON) - called on the raft loop thread; must not raise.
ProposalCallback = Callable[[Any, int], None]
#: A submitted command: its payload, its callback, and the term it was stamped in.
Proposal = tuple[bytes, ProposalCallback, int]

GROUP_MAX_COMMANDS = 1000
GROUP_MAX_BYTES = 256 * 1024


def take_group(
    proposals: deque[Proposal], most: int, leads_in: Callable[[int], bool]
) -> list[tuple[bytes, ProposalCallback]]:
    """Pops the next group (at most ``most`` commands, or ``GROUP_MAX_BYTES``) off
    ``proposals``; a command stamped in a term this node does not lead in now fails with
    NOT_LEADER (not applied) instead. The group may be empty."""
    group: list[tuple[bytes, ProposalCallback]] = []
    size = 0
    while proposals and len(group) < most and size < GROUP_MAX_BYTES:
        payload, callback, term = proposals.popleft()
        if not leads_in(term):
            guarded_callback(callback)(None, FAIL_REASON.NOT_LEADER)
            continue
        group.append((payload, callback))
        size += len(payload)
    return group


def group_entry(group: list[tuple[bytes, ProposalCallback]]) -> tuple[bytes, ProposalCallback]:
    """The log entry of a non-empty group and its callback: one command as it is."""
    if len(group) == 1:
        return group[0]
    callbacks = [callback for _payload, callback in group]
    return encode_batch([payload for payload, _callback in group]), split_group(callbacks)


def split_group(callbacks: list[ProposalCallback]) -> ProposalCallback:
    """One group entry's callback: each command's own result, or the entry's failure to all."""

    def split(result: Any, error: int) -> None:
        if (
            error == FAIL_REASON.SUCCESS
            and isinstance(result, list)
            and len(result) == len(callbacks)
        ):
            for callback, applied in zip(callbacks, result, strict=True):
                guarded_callback(callback)(applied, FAIL_REASON.SUCCESS)
            return
        if error == FAIL_REASON.SUCCESS:
            log.error("a grouped entry returned %r for %d commands", result, len(callbacks))
            error = FAIL_REASON.UNKNOWN_OUTCOME
        for callback in callbacks:
            guarded_callback(callback)(None, error)

    return split
