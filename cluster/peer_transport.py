"""The peer transport: Raft messages between replicas sealed with AES-GCM, not Fernet.

pysyncobj's TCP connection (``tcp_connection.py``, ``TcpConnection.send`` and
``__processParseMessage``) turns each message into ``Fernet(zlib(pickle protocol 2))`` under a
key from the peer password, once per follower per message on the leader, and on receipt
checks the HMAC twice (``extract_timestamp``, then ``decrypt``). Measured CPU per message sent
and received (``python -m turnstile.bench.peer_transport stages``): about 80 µs for an ack,
130 µs for an entry of ten commands, 1.7 ms for one of a thousand; AES-GCM over pickle
protocol 5 without zlib costs a tenth to a twentieth of that (msgpack would save nothing
more, and cannot carry pysyncobj's tuples). ``PeerConnection`` frames messages so:

- ``frame = kind, [connection id,] AES-GCM(pickle protocol 5)``, the header authenticated
  as associated data. Each direction of each TCP connection has its own key: HKDF-SHA256 of
  the password (stretched once by PBKDF2, so a captured frame is as costly to guess from as
  a Fernet token) with this module's fixed salt, and the sender's role and a random 32-byte
  connection id as info; the first frame (``HELLO``) carries the id. The nonce is a counter,
  never sent: no nonce repeats under a key (a random nonce under one password key shared by
  every node for the cluster's life would reach the 2**32-message bound within two years of
  heartbeats alone, and a repeat lets anyone forge frames), and a frame dropped, replayed, reordered
  or reflected back to its sender fails authentication. Nothing is unpickled before it has
  authenticated. pysyncobj's random connection keys (``sendRandKey``, in every message and
  checked after decryption) still refuse a whole connection replayed as a new one.
- zlib only for messages from ``COMPRESS_FROM_BYTES``: below, it costs the leader ten times
  what encryption does, for bandwidth a LAN has (catch-up batches and snapshot chunks above
  it are compressed, at level 1).
- Fernet frames (they start with ``g``, base64 of Fernet's version byte) are still read and
  answered in kind, so a node of the previous build and this one understand each other. A
  connection's dialer seals once ``seal_when()`` (the cluster version, raised only when every
  member runs this build); the listener seals once it has read a sealed frame. From then on
  that direction refuses Fernet.

Every refused frame is logged (``peer_auth.PeerRefusals``, as the password check was before)
with the peer's address, and the connection closed. ``PeerTransport`` is pysyncobj's
``TCPTransport`` (``transport.py``) with its connections made ``PeerConnection``s by
``adopt``: those it dials (``addNode``) and those it accepts (``_onNewIncomingConnection``),
re-classed before any byte passed through them. It relies on pysyncobj 0.3.17's
``TcpConnection`` internals (its read and write buffers, ``__trySendBuffer``,
``__processParseMessage``, ``recvLastTimestamp``, the ``sendRandKey`` handshake of
``TCPTransport``), each use marked ``# pysyncobj internal``.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pysyncobj.pickle
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from pysyncobj.monotonic import monotonic
from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.transport import TCPTransport

from turnstile.cluster.peer_auth import PeerRefusals

log = logging.getLogger(__name__)

#: The cluster version from which dialers seal (``commands.PROTOCOL_VERSION`` 4).
SEALED_FRAMES_VERSION = 4

#: Fixed salt of both derivations: this protocol's name and version.
KDF_SALT = b"turnstile peer transport v1"
#: PBKDF2 rounds for the password, as pysyncobj's own key (``encryptor.py``): once per start.
PASSWORD_ROUNDS = 100_000
#: The sender's role in each direction's key: a frame reflected to its sender never opens.
DIALER, LISTENER = b"dialer", b"listener"

#: Header byte of a sealed frame: its kind and flags.
SEALED, HELLO, COMPRESSED = 0x01, 0x02, 0x04
#: How every Fernet token starts (base64url of its version byte 0x80).
FERNET_PREFIX = b"g"
CONNECTION_ID_BYTES = 32
#: Messages from this size are zlib-compressed (level 1) before sealing.
COMPRESS_FROM_BYTES = 1024 * 1024
PICKLE_PROTOCOL = 5
#: pysyncobj's Fernet frames as the previous build sends them (``TcpConnection.send``).
FERNET_ZLIB_LEVEL = 3


class FrameRefusedError(Exception):
    """A frame that failed authentication or broke the framing rules."""


def password_key(password: str) -> bytes:
    """The 32-byte secret every direction key is derived from (PBKDF2, once per node)."""
    kdf = PBKDF2HMAC(hashes.SHA256(), 32, KDF_SALT, PASSWORD_ROUNDS)
    return kdf.derive(password.encode())


def direction_key(secret: bytes, sender: bytes, connection_id: bytes) -> AESGCM:
    """The cipher of one direction of one connection (HKDF, fixed salt, role and id as info)."""
    info = KDF_SALT + b" " + sender + b" " + connection_id
    return AESGCM(HKDF(hashes.SHA256(), 32, KDF_SALT, info).derive(secret))


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


class Sealer:
    """Seals the messages of one direction of one connection."""

    def __init__(self, secret: bytes, sender: bytes) -> None:
        self._connection_id = os.urandom(CONNECTION_ID_BYTES)
        self._cipher = direction_key(secret, sender, self._connection_id)
        self._counter = 0

    def seal(self, message: Any) -> bytes:
        body = pickle.dumps(message, PICKLE_PROTOCOL)
        kind = SEALED
        if len(body) >= COMPRESS_FROM_BYTES:
            body, kind = zlib.compress(body, 1), kind | COMPRESSED
        if self._counter == 0:
            header = bytes([kind | HELLO]) + self._connection_id
        else:
            header = bytes([kind])
        sealed = self._cipher.encrypt(_nonce(self._counter), body, header)
        self._counter += 1
        return header + sealed


class Opener:
    """Opens the sealed frames of one direction of one connection, in order."""

    def __init__(self, secret: bytes, sender: bytes) -> None:
        self._secret = secret
        self._sender = sender
        self._cipher: AESGCM | None = None
        self._counter = 0

    @property
    def opened(self) -> bool:
        """Whether a sealed frame has opened: this direction takes no Fernet from now on."""
        return self._cipher is not None

    def open(self, frame: bytes) -> Any:
        """The message of ``frame``.

        :raises FrameRefusedError: not sealed, sealed under another key, not the next frame, or a
            second hello.
        """
        kind = frame[0] if frame else 0
        if not kind & SEALED or kind & ~(SEALED | HELLO | COMPRESSED):
            raise FrameRefusedError("not a sealed frame")
        cipher = self._cipher
        if kind & HELLO:
            if cipher is not None:
                raise FrameRefusedError("a second hello on one connection")
            split = 1 + CONNECTION_ID_BYTES
            cipher = direction_key(self._secret, self._sender, frame[1:split])
        elif cipher is None:
            raise FrameRefusedError("a sealed frame before the hello")
        else:
            split = 1
        try:
            body = cipher.decrypt(_nonce(self._counter), frame[split:], frame[:split])
        except InvalidTag:
            raise FrameRefusedError("a sealed frame that does not authenticate") from None
        self._cipher = cipher
        self._counter += 1
        if kind & COMPRESSED:
            body = zlib.decompress(body)
        return pickle.loads(body)


def fernet_frame(fernet: Fernet, message: Any) -> bytes:
    """``message`` as the previous build frames it (pysyncobj's ``TcpConnection.send``)."""
    data = zlib.compress(pysyncobj.pickle.dumps(message), FERNET_ZLIB_LEVEL)
    return fernet.encrypt_at_time(data, int(monotonic()))


def open_fernet(fernet: Fernet, frame: bytes, not_before: int) -> tuple[Any, int]:
    """The message of a Fernet frame and its timestamp, which must not be below
    ``not_before`` (pysyncobj's ``recvLastTimestamp`` check).

    :raises FrameRefusedError: it does not authenticate or is older than the last one.
    """
    try:
        timestamp = fernet.extract_timestamp(frame)
        data = fernet.decrypt(frame)
    except InvalidToken:
        raise FrameRefusedError("a Fernet frame that does not authenticate") from None
    if timestamp < not_before:
        raise FrameRefusedError("a Fernet frame older than the last one")
    return pysyncobj.pickle.loads(zlib.decompress(data)), timestamp


@dataclass(frozen=True, slots=True)
class PeerKeys:
    """What every connection of one node shares."""

    #: ``password_key`` of the peer password.
    secret: bytes
    #: pysyncobj's Fernet of the same password (``encryptor.py``), for the previous build.
    fernet: Fernet
    refusals: PeerRefusals
    #: Whether a dialer seals (checked at each send until it does).
    seal_when: Callable[[], bool]


class PeerConnection(TcpConnection):  # type: ignore[misc]
    """pysyncobj's TCP connection framing as described above; made by ``adopt``."""

    _keys: PeerKeys
    _dialer: bool
    _own_role: bytes
    peer: str
    _sealer: Sealer | None
    _opener: Opener
    # pysyncobj's, set in TcpConnection.__init__ (pysyncobj internal):
    _TcpConnection__readBuffer: bytes
    recvLastTimestamp: int  # noqa: N815 - pysyncobj's name

    def reset_framing(self) -> None:
        """A new TCP connection (pysyncobj reuses a dialer's object across reconnects)."""
        own, theirs = (DIALER, LISTENER) if self._dialer else (LISTENER, DIALER)
        self._sealer = None
        self._opener = Opener(self._keys.secret, theirs)
        self._own_role = own

    def disconnect(self) -> None:
        self.reset_framing()
        super().disconnect()

    def send(self, message: Any) -> None:
        if self.sendRandKey:
            message = (self.sendRandKey, message)
        sealer = self._sealer
        if sealer is None and (self._keys.seal_when() if self._dialer else self._opener.opened):
            sealer = self._sealer = Sealer(self._keys.secret, self._own_role)
        frame = sealer.seal(message) if sealer else fernet_frame(self._keys.fernet, message)
        self._TcpConnection__writeBuffer += struct.pack("i", len(frame)) + frame  # internal
        self._TcpConnection__trySendBuffer()  # pysyncobj internal

    def _TcpConnection__processParseMessage(self) -> Any:  # noqa: N802 - pysyncobj internal
        """The next whole message in the read buffer, or None; a refused frame closes the
        connection (pysyncobj's loop then stops reading it)."""
        buffer = self._TcpConnection__readBuffer  # pysyncobj internal
        if len(buffer) < 4:
            return None
        length = struct.unpack("i", buffer[:4])[0]
        if len(buffer) - 4 < length:
            return None
        try:
            if length < 0:
                raise FrameRefusedError("a negative frame length")
            message = self._open(buffer[4 : 4 + length])
        except FrameRefusedError as refused:
            log.debug("peer %s: %s", self.peer, refused)
            self._keys.refusals.refused(self.peer)
            self.disconnect()
            return None
        except Exception:
            log.exception("an authenticated message from %s could not be decoded", self.peer)
            self.disconnect()
            return None
        self._TcpConnection__readBuffer = buffer[4 + length :]  # pysyncobj internal
        return message

    def _open(self, frame: bytes) -> Any:
        if frame[:1] == FERNET_PREFIX:
            if self._opener.opened:
                raise FrameRefusedError("a Fernet frame after sealed ones")
            message, self.recvLastTimestamp = open_fernet(
                self._keys.fernet, frame, self.recvLastTimestamp
            )
        else:
            message = self._opener.open(frame)
        if self.recvRandKey:
            if not (isinstance(message, tuple) and len(message) == 2):
                raise FrameRefusedError("a message without the connection's random key")
            rand_key, message = message
            if rand_key != self.recvRandKey:
                raise FrameRefusedError("a message with another connection's random key")
        return message


def adopt(conn: TcpConnection, keys: PeerKeys, dialer: bool, peer: str) -> PeerConnection:
    """Makes pysyncobj's new connection ``conn`` a ``PeerConnection`` in place: pysyncobj's
    callbacks already hold ``conn`` itself, and nothing was sent or read on it yet."""
    conn.__class__ = PeerConnection
    adopted = cast(PeerConnection, conn)
    adopted._keys, adopted._dialer, adopted.peer = keys, dialer, peer
    adopted.reset_framing()
    return adopted


class PeerTransport(TCPTransport):  # type: ignore[misc]
    """pysyncobj's TCP transport whose every connection is a ``PeerConnection``; pass
    ``functools.partial(PeerTransport, seal_when=...)`` as ``SyncObj(transportClass=)``."""

    def __init__(
        self, sync_obj: Any, self_node: Any, other_nodes: Any, seal_when: Callable[[], bool]
    ) -> None:
        # SyncObj makes its Fernet from conf.password before the transport (``syncobj.py``).
        if sync_obj.encryptor is None:
            raise ValueError("the peer transport needs a peer password")
        secret = password_key(sync_obj.conf.password)
        self._keys = PeerKeys(secret, sync_obj.encryptor, PeerRefusals(), seal_when)
        super().__init__(sync_obj, self_node, other_nodes)  # calls addNode for every peer

    def addNode(self, node: Any) -> None:  # noqa: N802 - pysyncobj's name
        super().addNode(node)
        conn = self._connections.get(node)  # pysyncobj internal: made here if we dial it
        if conn is not None and not isinstance(conn, PeerConnection):
            adopt(conn, self._keys, dialer=True, peer=node.address)

    def _onNewIncomingConnection(self, conn: TcpConnection) -> None:  # noqa: N802
        try:
            host, port = conn._TcpConnection__socket.getpeername()[:2]  # pysyncobj internal
            peer = f"{host}:{port}"
        except OSError:
            peer = "an unknown address"
        adopt(conn, self._keys, dialer=False, peer=peer)
        super()._onNewIncomingConnection(conn)
