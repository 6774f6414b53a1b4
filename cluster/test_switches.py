"""Test-only switches of a node, read from the environment.

``TURNSTILE_TEST_NO_TERM_FENCE=1`` turns the term fence, the no-forwarding rule and the
duties' leadership re-check off (the chaos control run that shows what they prevent; every
node of a cluster must agree on it); ``TURNSTILE_TEST_PROTOCOL_VERSION=N`` makes the node
report protocol version N (an old member during an upgrade).
"""

from __future__ import annotations

from collections.abc import Mapping

from turnstile.cluster.commands import PROTOCOL_VERSION
from turnstile.cluster.config import ConfigError

NO_TERM_FENCE_ENV = "TURNSTILE_TEST_NO_TERM_FENCE"
PROTOCOL_VERSION_ENV = "TURNSTILE_TEST_PROTOCOL_VERSION"


def read_test_switches(env: Mapping[str, str]) -> tuple[bool, int]:
    """(term fence on, protocol version to report), from the test-only variables in ``env``.

    :raises ConfigError: a protocol version that is not an integer in 1..PROTOCOL_VERSION.
    """
    term_fence = env.get(NO_TERM_FENCE_ENV, "") not in ("1", "true")
    text = env.get(PROTOCOL_VERSION_ENV, "")
    if not text:
        return term_fence, PROTOCOL_VERSION
    if not text.isdigit() or not 1 <= int(text) <= PROTOCOL_VERSION:
        raise ConfigError(
            f"{PROTOCOL_VERSION_ENV}: must be an integer from 1 to {PROTOCOL_VERSION}, got {text!r}"
        )
    return term_fence, int(text)
