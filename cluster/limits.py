"""Bounds on every input, checked in one place.

The ``check_*`` functions are the stateless checks (names, sizes, durations, batch lengths):
the servicer runs them on each request before anything is proposed
(``turnstile.cluster.admission``), and the state machine runs them again before applying, so
a bad command in the log is refused by every replica alike. Bounds that depend on the state
(waiters per lock, lists, members per list, sessions, retained results) are checked by the
state machine alone.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, fields

from turnstile.v1.reasons import Reason

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """Configured bounds. Replicated through the log (``SetLimits``) so every node agrees."""

    #: Longest lock or list name, and longest client name / host, in UTF-8 bytes.
    max_name_bytes: int = 256
    #: Longest distinct-list member, and longest group member capabilities value, in bytes.
    max_member_bytes: int = 1024
    #: Most members in one insert or contains call.
    max_batch: int = 1000
    #: Most waiters queued on one lock, members of one group, candidates of one election.
    max_waiters_per_lock: int = 1000
    #: Most unacknowledged results kept per session for exactly-once retries.
    max_results_per_session: int = 1024
    #: Most live sessions.
    max_sessions: int = 100_000
    #: Most lock records (held or waited on); most groups; most elections with candidates.
    max_locks: int = 100_000
    #: Most distinct lists.
    max_lists: int = 10_000
    #: Most members in one distinct list.
    max_members_per_list: int = 10_000_000
    #: Shortest and longest session TTL.
    min_session_ttl_ms: int = 100
    max_session_ttl_ms: int = 3600 * 1000
    #: Longest max-hold, wait and list TTL.
    max_duration_ms: int = 7 * DAY_MS
    #: Longest force-release reason, in UTF-8 bytes.
    max_reason_bytes: int = 1024
    #: Largest page returned by a listing read.
    max_page: int = 1000

    def problems(self) -> list[str]:
        """Names every field that is not a positive integer, or an inverted TTL range."""
        bad = [
            f"{f.name} must be a positive integer below 2**63, got {getattr(self, f.name)!r}"
            for f in fields(self)
            if type(getattr(self, f.name)) is not int or not 0 < getattr(self, f.name) < 2**63
        ]
        if not bad and self.min_session_ttl_ms > self.max_session_ttl_ms:
            bad.append("min_session_ttl_ms must not exceed max_session_ttl_ms")
        return bad


class RefusedError(Exception):
    """A value out of bounds; carries the reason to report. Never escapes the state machine."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_name(limits: Limits, what: str, name: str) -> None:
    """A lock or list name: non-empty UTF-8 text without control characters, bounded in bytes."""
    if not name:
        raise RefusedError(Reason.INVALID_ARGUMENT, f"{what} must not be empty")
    size = _utf8_size(what, name)
    if size > limits.max_name_bytes:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"{what} is {size} bytes, over max_name_bytes={limits.max_name_bytes}",
        )
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise RefusedError(Reason.INVALID_ARGUMENT, f"{what} contains a control character")


def _utf8_size(what: str, text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise RefusedError(Reason.INVALID_ARGUMENT, f"{what} is not valid UTF-8") from None


def check_text(limits: Limits, what: str, text: str, bound: int, bound_name: str) -> None:
    """Free text (client name, host, reason): may be empty, bounded in bytes."""
    size = _utf8_size(what, text)
    if size > bound:
        raise RefusedError(
            Reason.INVALID_ARGUMENT, f"{what} is {size} bytes, over {bound_name}={bound}"
        )


def check_duration(limits: Limits, what: str, value_ms: int, *, zero_ok: bool) -> None:
    """A duration in ms: 0 only where it means "none", never above max_duration_ms."""
    if value_ms < 0 or (value_ms == 0 and not zero_ok):
        raise RefusedError(Reason.INVALID_ARGUMENT, f"{what} must be positive, got {value_ms}")
    if value_ms > limits.max_duration_ms:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"{what} is {value_ms} ms, over max_duration_ms={limits.max_duration_ms}",
        )


def check_request_id(limits: Limits, seq: int, acked: int, answered: int) -> None:
    """A request id on its own: ``seq`` above ``acked``, and at most max_results_per_session
    ``answered`` seqs reported with it."""
    if seq < 1 or acked >= seq:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"seq must be >= 1 and above acked, got seq={seq} acked={acked}",
        )
    if answered > limits.max_results_per_session:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"{answered} answered seqs in one request, over "
            f"max_results_per_session={limits.max_results_per_session}",
        )


def check_session_ttl(limits: Limits, ttl_ms: int) -> None:
    if not limits.min_session_ttl_ms <= ttl_ms <= limits.max_session_ttl_ms:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"session ttl_ms must be within [min_session_ttl_ms={limits.min_session_ttl_ms}, "
            f"max_session_ttl_ms={limits.max_session_ttl_ms}], got {ttl_ms}",
        )


def check_lock_names(limits: Limits, names: Sequence[str]) -> None:
    """The locks of one acquire of several: 1..max_batch valid names, none repeated."""
    if not names:
        raise RefusedError(Reason.INVALID_ARGUMENT, "names: name at least one lock")
    if len(names) > limits.max_batch:
        raise RefusedError(
            Reason.INVALID_ARGUMENT, f"{len(names)} locks named, max_batch={limits.max_batch}"
        )
    seen: set[str] = set()
    for name in names:
        check_name(limits, "lock name", name)
        if name in seen:
            raise RefusedError(Reason.INVALID_ARGUMENT, f"lock {name!r} is named twice")
        seen.add(name)


def check_description(limits: Limits, description: str) -> None:
    """Who holds a lock or permit and why: bounded like a reason."""
    check_text(limits, "description", description, limits.max_reason_bytes, "max_reason_bytes")


def check_permit_limit(limits: Limits, limit: int) -> None:
    """A semaphore's limit: 1..max_waiters_per_lock permits."""
    if not 1 <= limit <= limits.max_waiters_per_lock:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"limit must be 1..{limits.max_waiters_per_lock} (max_waiters_per_lock), got {limit}",
        )


def check_members(limits: Limits, members: tuple[bytes, ...]) -> None:
    """A batch of list members: 1..max_batch members of 1..max_member_bytes bytes each."""
    if not members:
        raise RefusedError(Reason.INVALID_ARGUMENT, "members must not be empty")
    if len(members) > limits.max_batch:
        raise RefusedError(
            Reason.LIMIT_EXCEEDED,
            f"batch of {len(members)} members is over max_batch={limits.max_batch}",
        )
    for index, member in enumerate(members):
        if not member:
            raise RefusedError(Reason.INVALID_ARGUMENT, f"member {index} is empty")
        if len(member) > limits.max_member_bytes:
            raise RefusedError(
                Reason.INVALID_ARGUMENT,
                f"member {index} is {len(member)} bytes, over "
                f"max_member_bytes={limits.max_member_bytes}",
            )


def check_capabilities(limits: Limits, capabilities: bytes) -> None:
    """A group member's capabilities value: 0..max_member_bytes bytes."""
    if len(capabilities) > limits.max_member_bytes:
        raise RefusedError(
            Reason.INVALID_ARGUMENT,
            f"capabilities are {len(capabilities)} bytes, over "
            f"max_member_bytes={limits.max_member_bytes}",
        )


def check_page(limits: Limits, limit: int) -> int:
    """A page size: 0 means the largest page; over max_page is clamped, negative refused."""
    if limit < 0:
        raise RefusedError(Reason.INVALID_ARGUMENT, f"limit must not be negative, got {limit}")
    return min(limit or limits.max_page, limits.max_page)
