"""What semaphores and ``lock_many`` share between the sync and asyncio clients and does no
I/O: their Acquire requests, the ``timeout`` convention, the local state of a hold owned as an
object (``HeldState``) and of several (``HeldLocksState``), and which permit a ``with`` block
entered (so several threads or tasks may each hold one of the same ``Semaphore``)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from turnstile.client.core import (
    AcquireAttempts,
    Hold,
    SessionT,
    check_max_hold,
    hand_release_over,
    held,
    lock_repr,
    max_hold_ms,
)
from turnstile.client.describe_core import Description, render_description
from turnstile.client.errors import LockLostError, TurnstileError
from turnstile.client.retry import RetryPolicy
from turnstile.client.routes import SEMAPHORES
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


def permit_attempts(
    name: str,
    limit: int,
    max_hold: float | None,
    *,
    blocking: bool,
    timeout: float | None,
    description: Description | None,
    retry: RetryPolicy,
) -> AcquireAttempts:
    """The attempts of one ``Semaphore.acquire``."""
    return AcquireAttempts(
        name,
        max_hold,
        blocking,
        wait_timeout(timeout),
        retry,
        request=permit_request(name, limit, max_hold, description),
        service=SEMAPHORES,
        what=f"semaphore {name!r}",
    )


def many_attempts(
    names: Sequence[str],
    max_hold: float | None,
    timeout: float | None,
    description: Description | None,
    retry: RetryPolicy,
) -> AcquireAttempts:
    """The attempts of one ``lock_many``: abandoned, if need be, by its first name."""
    check_max_hold(max_hold)
    request = many_request(names, max_hold, description)
    return AcquireAttempts(
        request.names[0],
        max_hold,
        True,
        wait_timeout(timeout),
        retry,
        request=request,
        what=f"locks {list(request.names)}",
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


class HeldState(Generic[SessionT]):
    """What ``Held`` and ``AsyncHeld`` share: the hold, read locally. They add the calls."""

    def __init__(self, hold: Hold[SessionT], clock: Callable[[], float]) -> None:
        self.name = hold.name
        #: The fencing token of the grant: kept after the release, to name what was held.
        self.token = hold.token
        self._hold: Hold[SessionT] | None = hold
        self._clock = clock

    @property
    def expires_at(self) -> float | None:
        """``time.monotonic()`` value when the max-hold ends; None if uncapped or released."""
        hold = self._hold
        return hold.expires_at if hold else None

    @property
    def released(self) -> bool:
        """True once released (or its Release handed to the keep-alive loop), even if the
        hold was found lost then."""
        return self._hold is None

    def locked(self) -> bool:
        """True until released, while the session is alive and the max-hold has not passed."""
        return held(self._hold, self._clock)

    def _releasing(self) -> Hold[SessionT]:
        """The hold a ``release()`` gives back; the object counts as released from now."""
        hold = self._hold
        if hold is None:
            raise RuntimeError(f"release of {self!r}")
        self._hold = None
        return hold

    def _left(self, hold: Hold[SessionT] | None) -> None:
        self._hold = hold

    def _hand_over(self) -> None:
        """See ``Lock._hand_over``."""
        if hand_release_over(self.name, self._hold):
            self._hold = None

    def __repr__(self) -> str:
        hold = self._hold
        kind = "permit of" if hold is None or hold.service == SEMAPHORES else "hold of"
        return lock_repr(f"{kind} token {self.token}", self.name, hold)


HeldT = TypeVar("HeldT", bound=HeldState[Any])


class HeldLocksState(Mapping[str, HeldT]):
    """What ``HeldLocks`` and ``AsyncHeldLocks`` share: the holds by name, in the order asked
    for, read locally. They add the calls."""

    def __init__(self, holds: Sequence[HeldT]) -> None:
        self._holds = {held.name: held for held in holds}

    def __getitem__(self, name: str) -> HeldT:
        return self._holds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._holds)

    def __len__(self) -> int:
        return len(self._holds)

    @property
    def tokens(self) -> dict[str, int]:
        """The fencing token of each lock, by name."""
        return {name: held.token for name, held in self._holds.items()}

    def locked(self) -> bool:
        """True while every lock is still held (see ``Held.locked``)."""
        return all(held.locked() for held in self._holds.values())

    def _unreleased(self) -> list[HeldT]:
        """The holds not released yet; RuntimeError when there are none."""
        left = [held for held in self._holds.values() if not held.released]
        if not left:
            raise RuntimeError(f"release of {self!r}: released already")
        return left

    def __repr__(self) -> str:
        return f"<turnstile {type(self).__name__} {self.tokens}>"
