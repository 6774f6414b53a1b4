"""Peer authentication: the shared password, and every peer message that fails it logged.

pysyncobj encrypts peer traffic with Fernet under the peer password and drops a connection
whose message fails decryption (a wrong or missing password, or not a Turnstile peer) without
a word (``tcp_connection.py``, ``TcpConnection.__processParseMessage``). ``log_refused_peers``
wraps its encryptor so each refusal is logged with the remote address, rate-limited so that a
flood cannot fill the disk. Without it tests/integration/test_peer_auth.py::
test_impostor_without_the_password_is_refused_and_changes_nothing fails. Upstream:
bakwc/PySyncObj#175 (an open pull request logging such drops).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pysyncobj import SyncObj

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


class AuthenticatedFernet:
    """pysyncobj's encryptor with refusals reported (it only needs these three methods)."""

    def __init__(self, fernet: Fernet, refusals: PeerRefusals, peer: str) -> None:
        self._fernet = fernet
        self._refusals = refusals
        self._peer = peer

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        return self._fernet.encrypt_at_time(data, current_time)

    def extract_timestamp(self, token: bytes) -> int:
        try:
            return self._fernet.extract_timestamp(token)
        except InvalidToken:
            self._refusals.refused(self._peer)
            raise

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            self._refusals.refused(self._peer)
            raise


def log_refused_peers(replica: SyncObj, transport: Any) -> None:
    """Wraps the replica's encryptor (``SyncObj._SyncObj__encryptor``, taken by outgoing
    connections) and that of every incoming connection (set in the TCP server's
    ``_TcpServer__onNewConnectionCallback``) so that refusals are logged."""
    fernet = replica.encryptor
    if fernet is None:
        return
    refusals = PeerRefusals()
    # Outgoing connections take the replica's encryptor as it is when they are made.
    replica._SyncObj__encryptor = AuthenticatedFernet(  # pysyncobj internal
        fernet, refusals, "a peer this node connected to"
    )
    server = transport._server  # pysyncobj internal: created (bound or not) in __init__
    accept = server._TcpServer__onNewConnectionCallback  # pysyncobj internal

    def accept_labelled(conn: Any) -> None:
        accept(conn)
        try:
            host, port = conn._TcpConnection__socket.getpeername()[:2]  # pysyncobj internal
            peer = f"{host}:{port}"
        except (AttributeError, OSError):
            peer = "an unknown address"
        conn.encryptor = AuthenticatedFernet(fernet, refusals, peer)

    server._TcpServer__onNewConnectionCallback = accept_labelled  # pysyncobj internal
