"""Who holds what, shared by the sync and asyncio clients and doing no I/O: an acquire's
description (a string, or ``key=value`` labels rendered into one) and what ``describe()``
returns for a lock or a semaphore."""

from __future__ import annotations

import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from turnstile.v1 import turnstile_pb2 as pb

#: What ``description=`` takes: free text, or labels rendered as ``key=value`` pairs.
Description = str | Mapping[str, str]
#: The cluster's default bound on a description, in UTF-8 bytes (``max_reason_bytes``); a
#: cluster configured lower refuses a longer one with INVALID_ARGUMENT.
MAX_DESCRIPTION_BYTES = 1024


def render_description(description: Description | None) -> str:
    """The text an acquire sends: ``description`` itself, or its labels as space-separated
    ``key=value`` pairs, values shell-quoted where needed (``labels`` reads them back).
    ValueError, before anything is sent, for what the cluster would refuse."""
    if description is None:
        return ""
    if isinstance(description, str):
        text = description
    else:
        for key in description:
            if not key or any(c.isspace() or c in "='\"" for c in key):
                raise ValueError(
                    f"label key {key!r} must be non-empty, without spaces, = or quotes"
                )
        text = " ".join(f"{key}={shlex.quote(str(value))}" for key, value in description.items())
    size = len(text.encode("utf-8"))
    if size > MAX_DESCRIPTION_BYTES:
        raise ValueError(f"description is {size} bytes, over {MAX_DESCRIPTION_BYTES}")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ValueError("description contains a control character")
    return text


def labels(description: str) -> dict[str, str]:
    """The ``key=value`` pairs of ``description``; empty when it is not made of such pairs."""
    try:
        words = shlex.split(description)
    except ValueError:  # an unclosed quote: free text
        return {}
    found: dict[str, str] = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or not key:
            return {}
        found[key] = value
    return found


def _expiry(ms: int) -> float | None:
    return ms / 1000 if ms else None


@dataclass(frozen=True)
class HolderInfo:
    """One holder of a lock or of a semaphore's permit, as the cluster sees it."""

    session_id: int
    token: int
    #: The request seq of the acquire that was granted.
    seq: int
    held_for: float
    #: Seconds left before the max-hold releases it; None when uncapped.
    expires_in: float | None
    description: str
    client_name: str
    client_host: str
    client_pid: int

    @property
    def labels(self) -> dict[str, str]:
        return labels(self.description)

    @classmethod
    def from_pb(cls, holder: pb.LockHolder) -> HolderInfo:
        return cls(
            holder.session_id,
            holder.token,
            holder.seq,
            holder.held_for_ms / 1000,
            _expiry(holder.expires_in_ms),
            holder.description,
            holder.client_name,
            holder.client_host,
            holder.client_pid,
        )


@dataclass(frozen=True)
class WaiterInfo:
    """One queued acquire, head first in its queue."""

    session_id: int
    seq: int
    waited_for: float
    wait_remaining: float
    description: str
    client_name: str
    client_host: str
    client_pid: int
    #: Every lock it takes together (a ``lock_many``); empty for a single lock or a permit.
    names: tuple[str, ...]

    @property
    def labels(self) -> dict[str, str]:
        return labels(self.description)

    @classmethod
    def from_pb(cls, waiter: pb.LockWaiter) -> WaiterInfo:
        return cls(
            waiter.session_id,
            waiter.seq,
            waiter.waited_for_ms / 1000,
            waiter.wait_remaining_ms / 1000,
            waiter.description,
            waiter.client_name,
            waiter.client_host,
            waiter.client_pid,
            tuple(waiter.names),
        )


@dataclass(frozen=True)
class LockInfo:
    """A lock's holder (None when free) and FIFO queue."""

    name: str
    holder: HolderInfo | None
    waiters: tuple[WaiterInfo, ...]

    @classmethod
    def from_pb(cls, info: pb.LockInfo) -> LockInfo:
        holder = HolderInfo.from_pb(info.holder) if info.HasField("holder") else None
        return cls(info.name, holder, tuple(WaiterInfo.from_pb(w) for w in info.waiters))


@dataclass(frozen=True)
class SemaphoreInfo:
    """A semaphore's limit (0 when unused), permit holders in grant order, and FIFO queue."""

    name: str
    limit: int
    holders: tuple[HolderInfo, ...]
    waiters: tuple[WaiterInfo, ...]

    @classmethod
    def from_pb(cls, info: pb.SemaphoreInfo) -> SemaphoreInfo:
        return cls(
            info.name,
            info.limit,
            tuple(HolderInfo.from_pb(h) for h in info.holders),
            tuple(WaiterInfo.from_pb(w) for w in info.waiters),
        )
