"""Peer authentication: the shared password, and every peer message that fails it logged.

Peer messages are authenticated under the peer password (``peer_transport``). pysyncobj drops
a connection whose message fails that (a wrong or missing password, or not a Turnstile peer)
without a word (``tcp_connection.py``, ``TcpConnection.__processParseMessage``);
``peer_transport.PeerConnection`` reports each refusal to ``PeerRefusals``, which logs it with
the remote address, rate-limited so that a flood cannot fill the disk. Without it
tests/integration/test_peer_auth.py::
test_impostor_without_the_password_is_refused_and_changes_nothing fails. Upstream:
bakwc/PySyncObj#175 (an open pull request logging such drops).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from turnstile.cluster.config import ConfigError

log = logging.getLogger(__name__)

#: Shortest peer password accepted; shorter ones are too easy to guess for a cluster secret.
MIN_PASSWORD_CHARS = 16


def read_peer_password(path: Path) -> str:
    """The shared peer secret from ``path`` (the ``peer_password_file`` option), read on
    demand so it is never kept in the config or logged.

    :raises ConfigError: unreadable, not UTF-8, empty, or too short.
    """
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"peer_password_file: cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"peer_password_file: {path} is not UTF-8 text") from exc
    if not password:
        raise ConfigError(f"peer_password_file: {path} is empty")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(
            f"peer_password_file: the password in {path} has {len(password)} characters, "
            f"need at least {MIN_PASSWORD_CHARS}"
        )
    return password


class PeerRefusals:
    """Logs peer messages that failed authentication: the first at once, then at most one
    line per ``interval`` seconds with a count."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.total = 0
        self._suppressed = 0
        self._last_logged = -interval

    def refused(self, peer: str) -> None:
        self.total += 1
        now = time.monotonic()
        if now - self._last_logged < self.interval:
            self._suppressed += 1
            return
        self._last_logged = now
        also = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
        self._suppressed = 0
        log.warning(
            "refused a peer connection from %s: its message failed authentication (wrong or "
            "no peer password, or not a Turnstile peer); connection closed%s",
            peer,
            also,
        )
