"""``lock_many``: several locks taken together, all or none, in one replicated step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from turnstile.client import acquiring
from turnstile.client.describe_core import Description
from turnstile.client.permit_core import HeldLocksState, many_attempts
from turnstile.client.semaphore import Held

if TYPE_CHECKING:
    from turnstile.client.client import Client


class HeldLocks(HeldLocksState[Held]):
    """The holds one ``lock_many`` got: a ``Held`` per name, in the order asked for, each with
    its own fencing token (``holds["a"].token``). Each can be released or extended alone;
    ``release()`` releases those still held, and so does leaving a ``with`` block."""

    def release(self) -> None:
        """Releases every lock still held, each with its token; raises the first error once all
        were tried (``LockLostError`` for one that had ended already)."""
        first: Exception | None = None
        for held in self._unreleased():
            try:
                held.release()
            except Exception as error:
                first = first or error
        if first is not None:
            raise first

    def extend(self, max_hold: float | None) -> None:
        """Restarts the max-hold of every lock at ``max_hold`` seconds from now."""
        for held in self._holds.values():
            held.extend(max_hold)

    def __enter__(self) -> HeldLocks:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        first: Exception | None = None
        for held in self._holds.values():
            if held.released:
                continue  # released inside the block
            try:
                held.__exit__(exc_type, exc, traceback)
            except Exception as error:
                first = first or error
        if first is not None:
            raise first


def lock_many(
    client: Client,
    names: Sequence[str],
    max_hold: float | None = None,
    timeout: float | None = None,
    description: Description | None = None,
) -> HeldLocks | None:
    """Takes every lock of ``names`` at once, or none (see ``Client.lock_many``)."""
    attempts = many_attempts(names, max_hold, timeout, description, client.retry)
    holds = acquiring.acquire(client, attempts)
    return None if holds is None else HeldLocks([Held(client, hold) for hold in holds])
