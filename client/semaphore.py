"""``Semaphore``: up to ``limit`` holders at once, each permit a hold of its own (``Held``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnstile.client import acquiring
from turnstile.client.core import (
    Hold,
    check_max_hold,
)
from turnstile.client.describe_core import Description, SemaphoreInfo
from turnstile.client.permit_core import (
    HeldState,
    check_limit,
    entered,
    leaving,
    permit_attempts,
    releasing_on_exit,
)
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.client import Client
    from turnstile.client.session import Session


class Held(HeldState["Session"]):
    """One hold as an object of its own: a semaphore's permit, or one lock of a ``lock_many``.

    It follows ``Lock``'s rules: held while its session is alive and within its max-hold
    (``locked()``); ``release()`` raises ``LockLostError`` when it had ended already, and
    keeps it (to call again) while the Release's outcome is unknown. A context manager that
    releases it on exit.
    """

    def __init__(self, client: Client, hold: Hold[Session]) -> None:
        super().__init__(hold, client.retry.clock)
        self.client = client

    def release(self) -> None:
        """Gives the hold back; see ``Lock.release`` (RuntimeError once released)."""
        acquiring.release(self.client, self._releasing(), self._left)

    def extend(self, max_hold: float | None) -> None:
        """Restarts the max-hold at ``max_hold`` seconds from now; see ``Lock.extend``."""
        self._hold = acquiring.extend(self.client, self.name, self._hold, max_hold)

    def __enter__(self) -> Held:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        with releasing_on_exit(repr(self), exc, self._hand_over):
            self.release()


class Semaphore:
    """Up to ``limit`` holders at once across the cluster, each permit a ``Held`` of its own
    with its own fencing token, max-hold and session (several threads of one client may each
    hold one). Waiters queue FIFO on the server; ``limit`` is set by every acquire, so raising
    it grants waiters at once.

    .. code-block:: python

        with client.semaphore("gpu", limit=3) as permit:
            train(fence=permit.token)
    """

    def __init__(
        self, client: Client, name: str, limit: int, max_hold: float | None = None
    ) -> None:
        check_limit(limit)
        check_max_hold(max_hold)
        self.client = client
        self.name = name
        self.limit = limit
        self.max_hold = max_hold

    def acquire(
        self,
        blocking: bool = True,
        timeout: float | None = None,
        description: Description | None = None,
    ) -> Held | None:
        """One permit, or None if none was free until the timeout (``Lock.acquire``'s rules:
        max-hold counted from the send, an acquire ended without its answer abandoned).

        :param timeout: longest wait in seconds; None waits as long as it takes.
        :param description: who holds it and why (see ``Lock.acquire``).
        """
        attempts = permit_attempts(
            self.name,
            self.limit,
            self.max_hold,
            blocking=blocking,
            timeout=timeout,
            description=description,
            retry=self.client.retry,
        )
        holds = acquiring.acquire(self.client, attempts)
        return None if holds is None else Held(self.client, holds[0])

    def release(self, permit: Held) -> None:
        """``permit.release()``."""
        permit.release()

    def extend(self, permit: Held, max_hold: float | None) -> None:
        """``permit.extend(max_hold)``."""
        permit.extend(max_hold)

    def describe(self) -> SemaphoreInfo:
        """The limit, the permit holders and the queue, as the cluster sees them."""
        response = self.client.invoke(pb.DescribeSemaphoreRequest(name=self.name))
        return SemaphoreInfo.from_pb(response.semaphore)

    def __enter__(self) -> Held:
        permit = self.acquire()
        assert permit is not None  # a wait without a timeout ends granted or raises
        entered(self, permit)
        return permit

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        permit: Held = leaving(self)
        permit.__exit__(exc_type, exc, traceback)

    def __repr__(self) -> str:
        return f"<turnstile Semaphore {self.name!r} limit {self.limit}>"
