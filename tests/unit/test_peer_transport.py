"""The peer transport (``cluster/peer_transport.py``): sealed frames open only in order, on the
direction and connection they were sealed for, under the password's key; nothing unpickles
before it authenticates; Fernet peers of the previous build are read and answered in kind.

Connections here have no socket: what one sends stays in its write buffer, and ``_carry``
moves it into the other's read buffer and parses it there, as pysyncobj's poll loop would.
"""

from __future__ import annotations

import logging
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest
from pysyncobj.encryptor import getEncryptor
from pysyncobj.tcp_connection import TcpConnection

from turnstile.cluster.peer_auth import PeerRefusals
from turnstile.cluster.peer_transport import (
    COMPRESS_FROM_BYTES,
    COMPRESSED,
    DIALER,
    HELLO,
    LISTENER,
    SEALED,
    FrameRefusedError,
    Opener,
    PeerConnection,
    PeerKeys,
    Sealer,
    adopt,
    fernet_frame,
    open_fernet,
    password_key,
)

pytestmark = pytest.mark.unit

PASSWORD = "peer-transport-unit-password"
SECRET = password_key(PASSWORD)
FERNET = getEncryptor(PASSWORD)
APPEND = {"type": "append_entries", "term": 3, "entries": [(b"\x00cmd", 7, 3)], "prevLogIdx": 6}


class _LeavesAMark:
    """Unpickling this creates ``path``: proof that bytes were unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.path),))


def _keys(seal: bool = True, password: str = PASSWORD) -> PeerKeys:
    fernet = FERNET if password == PASSWORD else getEncryptor(password)
    return PeerKeys(password_key(password), fernet, PeerRefusals(), lambda: seal)


def _connection(keys: PeerKeys, dialer: bool) -> PeerConnection:
    return adopt(TcpConnection(poller=None), keys, dialer, "dialer" if not dialer else "listener")


def _old_connection() -> Any:
    """A connection of the previous build: pysyncobj's own, with the password's Fernet."""
    conn = TcpConnection(poller=None)
    conn.encryptor = FERNET
    return conn


def _frames(conn: Any) -> list[bytes]:
    """The frames ``conn`` has sent (pysyncobj's 4-byte length prefix stripped)."""
    buffer, frames = conn._TcpConnection__writeBuffer, []
    while buffer:
        length = int.from_bytes(buffer[:4], "little", signed=True)
        frames.append(buffer[4 : 4 + length])
        buffer = buffer[4 + length :]
    return frames


def _carry(source: Any, target: Any) -> list[Any]:
    """Moves what ``source`` sent to ``target`` and returns the messages ``target`` reads
    (a refused frame closes ``target``: its read buffer is then empty)."""
    target._TcpConnection__readBuffer += source._TcpConnection__writeBuffer
    source._TcpConnection__writeBuffer = b""
    messages = []
    while (message := target._TcpConnection__processParseMessage()) is not None:
        messages.append(message)
    return messages


def _sealed(count: int, sender: bytes = DIALER, secret: bytes = SECRET) -> list[bytes]:
    sealer = Sealer(secret, sender)
    return [sealer.seal({"n": i}) for i in range(count)]


# --------------------------------------------------------------------------- Sealer, Opener


def test_frames_open_in_order_and_only_the_first_is_a_hello() -> None:
    frames = _sealed(3)
    opener = Opener(SECRET, DIALER)
    assert [opener.open(f) for f in frames] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [f[0] for f in frames] == [SEALED | HELLO, SEALED, SEALED]


def test_a_big_message_is_compressed_and_a_small_one_is_not() -> None:
    big = {"entries": [(os.urandom(16) * (COMPRESS_FROM_BYTES // 16), 1, 1)]}
    sealer, opener = Sealer(SECRET, DIALER), Opener(SECRET, DIALER)
    small_frame, big_frame = sealer.seal({"n": 1}), sealer.seal(big)
    assert not small_frame[0] & COMPRESSED
    assert big_frame[0] & COMPRESSED
    assert len(big_frame) < COMPRESS_FROM_BYTES // 2
    assert opener.open(small_frame) == {"n": 1}
    assert opener.open(big_frame) == big


@pytest.mark.parametrize(
    "where",
    [0, 1, 32, 33, -1],
    ids=["kind byte", "connection id", "connection id end", "ciphertext", "tag"],
)
def test_a_tampered_frame_is_refused(where: int) -> None:
    frame = bytearray(_sealed(1)[0])
    frame[where] ^= COMPRESSED if where == 0 else 0x01
    with pytest.raises(FrameRefusedError):
        Opener(SECRET, DIALER).open(bytes(frame))


def test_a_frame_sealed_under_another_password_is_refused() -> None:
    with pytest.raises(FrameRefusedError):
        Opener(SECRET, DIALER).open(_sealed(1, secret=password_key("another-password-16+"))[0])


def test_a_frame_reflected_to_its_sender_is_refused() -> None:
    # The dialer opens what the listener sealed; its own hello sent back must not open.
    with pytest.raises(FrameRefusedError):
        Opener(SECRET, LISTENER).open(_sealed(1, sender=DIALER)[0])


def test_replayed_reordered_and_unannounced_frames_are_refused() -> None:
    hello, first, second = _sealed(3)
    opener = Opener(SECRET, DIALER)
    opener.open(hello)
    with pytest.raises(FrameRefusedError):
        opener.open(second)  # skips one
    opener = Opener(SECRET, DIALER)
    opener.open(hello)
    opener.open(first)
    with pytest.raises(FrameRefusedError):
        opener.open(first)  # again
    opener = Opener(SECRET, DIALER)
    opener.open(hello)
    with pytest.raises(FrameRefusedError, match="second hello"):
        opener.open(hello)
    with pytest.raises(FrameRefusedError, match="before the hello"):
        Opener(SECRET, DIALER).open(first)


def test_unauthenticated_bytes_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    raw = pickle.dumps(_LeavesAMark(marker))
    for frame in (
        zlib.compress(raw),
        bytes([SEALED]) + raw,
        bytes([SEALED | HELLO]) + os.urandom(32) + raw,
        bytes([SEALED | HELLO | COMPRESSED]) + os.urandom(32) + zlib.compress(raw),
        b"",
    ):
        with pytest.raises(FrameRefusedError):
            Opener(SECRET, DIALER).open(frame)
    assert not marker.exists()


def test_a_fernet_frame_opens_unless_older_than_the_last() -> None:
    frame = fernet_frame(FERNET, APPEND)
    message, timestamp = open_fernet(FERNET, frame, 0)
    assert message == APPEND
    with pytest.raises(FrameRefusedError):
        open_fernet(FERNET, frame, timestamp + 1)
    with pytest.raises(FrameRefusedError):
        open_fernet(getEncryptor("another-password-16+"), frame, 0)


# --------------------------------------------------------------------------- connections


def test_the_dialer_seals_and_the_listener_answers_sealed() -> None:
    dialer, listener = _connection(_keys(), True), _connection(_keys(), False)
    dialer.send(APPEND)
    assert _frames(dialer)[0][0] == SEALED | HELLO
    assert _carry(dialer, listener) == [APPEND]
    listener.send({"type": "next_node_idx"})
    assert _frames(listener)[0][0] == SEALED | HELLO
    assert _carry(listener, dialer) == [{"type": "next_node_idx"}]


def test_before_the_cluster_version_both_sides_speak_fernet() -> None:
    dialer, listener = _connection(_keys(seal=False), True), _connection(_keys(), False)
    dialer.send(APPEND)
    assert _frames(dialer)[0][:1] == b"g"
    assert _carry(dialer, listener) == [APPEND]
    listener.send("reply")
    assert _frames(listener)[0][:1] == b"g"  # in kind, although its own keys would seal
    assert _carry(listener, dialer) == ["reply"]


def test_a_node_of_the_previous_build_is_read_and_answered_in_kind() -> None:
    old = _old_connection()
    listener = _connection(_keys(), False)
    old.send(APPEND)
    assert _carry(old, listener) == [APPEND]
    listener.send("reply")
    assert _carry(listener, old) == ["reply"]


def test_a_node_of_the_previous_build_refuses_sealed_frames() -> None:
    """Why dialers wait for the cluster version: the previous build drops the connection."""
    dialer, old = _connection(_keys(), True), _old_connection()
    dialer.send(APPEND)
    assert _carry(dialer, old) == []
    assert old._TcpConnection__readBuffer == b""  # closed


def test_after_a_sealed_frame_a_fernet_one_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = _keys()
    dialer, listener = _connection(keys, True), _connection(keys, False)
    dialer.send(APPEND)
    _carry(dialer, listener)
    downgrade = fernet_frame(FERNET, APPEND)
    listener._TcpConnection__readBuffer = len(downgrade).to_bytes(4, "little") + downgrade
    with caplog.at_level(logging.WARNING, logger="turnstile.cluster.peer_auth"):
        assert listener._TcpConnection__processParseMessage() is None
    assert keys.refusals.total == 1
    assert "refused a peer connection from dialer" in caplog.text


def test_a_frame_under_another_password_closes_the_connection_and_is_logged() -> None:
    impostor, keys = _connection(_keys(password="another-password-16+"), True), _keys()
    listener = _connection(keys, False)
    impostor.send(APPEND)
    assert _carry(impostor, listener) == []
    assert keys.refusals.total == 1


def test_a_message_with_another_connections_random_key_is_refused() -> None:
    keys = _keys()
    dialer, listener = _connection(keys, True), _connection(keys, False)
    listener.recvRandKey = os.urandom(32)
    dialer.sendRandKey = os.urandom(32)  # a recorded connection's key, not this one's
    dialer.send(APPEND)
    assert _carry(dialer, listener) == []
    assert keys.refusals.total == 1
    listener = _connection(keys, False)
    listener.recvRandKey = dialer.sendRandKey = os.urandom(32)
    dialer.reset_framing()
    dialer.send(APPEND)
    assert _carry(dialer, listener) == [APPEND]


def test_a_reconnect_starts_a_new_sealed_connection() -> None:
    dialer = _connection(_keys(), True)
    dialer.send(APPEND)
    first = _frames(dialer)[0]
    dialer.disconnect()  # pysyncobj reuses the dialer's object for the next connection
    dialer.send(APPEND)
    second = _frames(dialer)[0]
    assert second[0] == SEALED | HELLO
    assert second[1:33] != first[1:33]
    listener = _connection(_keys(), False)
    assert _carry(dialer, listener) == [APPEND]
