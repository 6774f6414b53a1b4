"""Commands, results and events of cluster version 6: semaphores, and lock acquires that take
several locks at once or say who holds them and why.

Registered in the same tables as every other record (``code_tables``), with op and result
codes after those of ``group_commands``, stable forever. Every command here but
``CancelPermitWait`` is a request of a client's session, deduplicated by (session, seq).

- ``AcquireLocks`` is the acquire of this version: one name or several, taken in one step or
  not at all, with an optional ``description`` kept with the hold and the waiter. ``Acquire``
  (one name, no description) stays for the log of an older version.
- A semaphore is a name with up to ``limit`` holders at once, each holding one permit with its
  own fencing token (from the counter locks use), max-hold and session, and a FIFO queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnstile.cluster.code_tables import register_command, register_result

#: The cluster version semaphores, several-lock acquires and descriptions need.
SEMAPHORES_SINCE = 6


@register_command(op=25, exactly_once=True, since=SEMAPHORES_SINCE)
@dataclass(frozen=True, slots=True)
class AcquireLocks:
    """Take every lock in ``names`` in one step, or none; if any is held or waited for, queue
    in all their queues as one waiter for up to ``wait_ms`` (0: refuse at once)."""

    now: int
    session: int
    seq: int
    acked: int
    names: tuple[str, ...]
    max_hold_ms: int
    wait_ms: int
    description: str
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=26, exactly_once=True, since=SEMAPHORES_SINCE)
@dataclass(frozen=True, slots=True)
class AcquirePermit:
    """Take one permit of the semaphore ``name``, which ``limit`` permits may hold at once (the
    request's limit becomes the semaphore's); queue FIFO for up to ``wait_ms`` if none is
    free."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    limit: int
    max_hold_ms: int
    wait_ms: int
    description: str
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=27, exactly_once=True, since=SEMAPHORES_SINCE)
@dataclass(frozen=True, slots=True)
class ReleasePermit:
    """Give back the permit ``token`` of ``name`` this session holds."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    token: int
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=28, exactly_once=True, since=SEMAPHORES_SINCE)
@dataclass(frozen=True, slots=True)
class ExtendPermit:
    """Restart the max-hold of the permit ``token`` from now (0: no cap)."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    token: int
    max_hold_ms: int
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=29, exactly_once=True, since=SEMAPHORES_SINCE)
@dataclass(frozen=True, slots=True)
class AbandonPermit:
    """As ``Abandon``, for an ``AcquirePermit``: drop its waiter or give back the permit it
    received, and refuse any late copy of it from now on."""

    now: int
    session: int
    seq: int
    acked: int
    name: str
    acquire_seq: int
    answered: tuple[int, ...] = ()
    term: int = 0


@register_command(op=30, since=SEMAPHORES_SINCE)
@dataclass(frozen=True, slots=True)
class CancelPermitWait:
    """As ``CancelWait`` without ``release_grant``: the caller of the acquire ``acquire_seq``
    went away, so its waiter is dropped; a permit that raced in is left to a retry."""

    now: int
    session: int
    name: str
    acquire_seq: int
    term: int = 0


SemaphoreCommand = (
    AcquireLocks | AcquirePermit | ReleasePermit | ExtendPermit | AbandonPermit | CancelPermitWait
)


@register_result(code=20)
@dataclass(frozen=True, slots=True)
class GrantedMany:
    """Every lock of an ``AcquireLocks`` of several names is held: one token per name, in the
    request's order, until ``expires_at`` in log time (0: no cap)."""

    tokens: tuple[int, ...]
    expires_at: int


@dataclass(frozen=True, slots=True)
class PermitGranted:
    """A permit of ``name`` was granted to ``session`` with ``token``."""

    name: str
    session: int
    token: int


@dataclass(frozen=True, slots=True)
class PermitFreed:
    """A permit's hold ended; ``cause`` is one of the lock ``CAUSE_*`` strings."""

    name: str
    session: int
    token: int
    cause: str
