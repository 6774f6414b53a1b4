"""What semaphores and ``lock_many`` share between the sync and asyncio clients and does no
I/O: their Acquire requests, the ``timeout`` convention, and which permit a ``with`` block
entered (so several threads or tasks may each hold one of the same ``Semaphore``)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from turnstile.client.core import max_hold_ms
from turnstile.client.describe_core import Description, render_description
from turnstile.client.errors import LockLostError, TurnstileError
from turnstile.v1 import turnstile_pb2 as pb

log = logging.getLogger(__name__)


def permit_request(
    name: str, limit: int, max_hold: float | None, description: Description | None
) -> pb.AcquirePermitRequest:
    """A Semaphores.Acquire of one permit of ``name`` but for its wait."""
    return pb.AcquirePermitRequest(
        name=name,
        limit=limit,
        max_hold_ms=max_hold_ms(max_hold),
        description=render_description(description),
    )


def check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")


def many_request(
    names: Sequence[str], max_hold: float | None, description: Description | None
) -> pb.AcquireManyRequest:
    """A Locks.AcquireMany of ``names`` but for its wait. ValueError for a str (a sequence of
    one-letter names, surely not meant), no names, or a name twice (the cluster refuses)."""
    if isinstance(names, str):
        raise TypeError("names is a sequence of lock names, not one str")
    names = list(names)
    if not names:
        raise ValueError("lock_many needs at least one name")
    if len(set(names)) != len(names):
        raise ValueError(f"lock_many names a lock twice: {names}")
    return pb.AcquireManyRequest(
        names=names, max_hold_ms=max_hold_ms(max_hold), description=render_description(description)
    )


def wait_timeout(timeout: float | None) -> float:
    """``timeout`` in ``Lock.acquire``'s terms: None (or -1) waits as long as it takes."""
    return -1 if timeout is None else timeout


#: The holds ``with`` blocks entered in this thread or task, innermost last, with their owner.
_ENTERED: contextvars.ContextVar[tuple[tuple[object, Any], ...]] = contextvars.ContextVar(
    "turnstile_entered", default=()
)


def entered(owner: object, held: Any) -> None:
    """``held`` was taken by entering a ``with`` block on ``owner``."""
    _ENTERED.set((*_ENTERED.get(), (owner, held)))


def leaving(owner: object) -> Any:
    """The hold the innermost ``with`` block on ``owner`` of this thread or task took."""
    stack = _ENTERED.get()
    for index in range(len(stack) - 1, -1, -1):
        if stack[index][0] is owner:
            _ENTERED.set(stack[:index] + stack[index + 1 :])
            return stack[index][1]
    raise RuntimeError("leaving a with block this thread or task did not enter")


@contextlib.contextmanager
def releasing_on_exit(what: str, exc: object, hand_over: Callable[[], None]) -> Iterator[None]:
    """Around the release that ends a ``with`` block which raised ``exc`` (or None): a hold
    lost meanwhile is only logged when the block raised already; a Release whose outcome is
    unknown is handed to the keep-alive loop (``hand_over``), as nobody calls again."""
    try:
        yield
    except LockLostError:
        if exc is None:
            raise
        log.warning("%s was lost inside a block that raised", what)
    except TurnstileError:
        hand_over()
        raise
