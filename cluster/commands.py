"""Commands, results and events of the state machine, and their versioned msgpack codec.

A log entry is ``msgpack([FORMAT_VERSION, op, [field, ...]])``. Op codes are stable forever:
add new ones, never renumber. ``decode_command`` refuses an unknown version or op, a wrong
number of fields and a wrongly typed field with ``CodecError``; it never guesses. Results and
events use the same record encoding (results are kept in snapshots for exactly-once retries).
Format 1 (before commands carried ``term``) is still read, as term 0, so an old journal
replays; it is never written.

Every command carries ``now``: milliseconds of log time stamped by the leader, and ``term``:
the Raft term of the leadership that stamped it. The state machine refuses, with no effect
at all, a command stamped in a term older than one it has already applied (the term fence: a
deposed leader's late commands never act). Commands made on behalf of a client carry its
``session``, a per-session ``seq`` (request id, >= 1, reused by retries), ``acked``: every
seq <= acked has been answered, and ``answered``: seqs above acked that have been answered
too. Their results may be forgotten; ``answered`` keeps one long blocked acquire from pinning
every later result of its session.

``PROTOCOL_VERSION`` is the newest command set this build applies. A command class with
``SINCE`` above the cluster's replicated version is neither proposed nor applied: a leader
raises the cluster version (``SetClusterVersion``) only once every member reports it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any, ClassVar

import msgpack

from turnstile.cluster.limits import Limits
from turnstile.v1.reasons import Reason

FORMAT_VERSION = 2
#: Record formats ``decode_command`` reads: 1 has no ``term`` field (read as 0).
_READABLE_FORMATS = (1, 2)
#: The newest command set this build applies (see ``SINCE`` and ``SetClusterVersion``).
PROTOCOL_VERSION = 2


class CodecError(ValueError):
    """Bytes that are not a well-formed record of a known version and kind."""


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class OpenSession:
    """Open a session that lives while the leader hears keep-alives within ``ttl_ms``."""

    OP: ClassVar[int] = 1
    now: int
    ttl_ms: int
    client_name: str
    client_host: str
    client_pid: int
    term: int = 0


@dataclass(frozen=True, slots=True)
class CloseSession:
    """End a session on the client's request: release its locks, drop its waiters."""

    OP: ClassVar[int] = 2
    now: int
    session: int
    term: int = 0


@dataclass(frozen=True, slots=True)
class ExpireSession:
    """Proposed by the leader when a session's keep-alive deadline passes."""

    OP: ClassVar[int] = 3
    now: int
    session: int
    term: int = 0


@dataclass(frozen=True, slots=True)
class Acquire:
    """Take ``name``; if held, queue for up to ``wait_ms`` (0: refuse at once)."""

    OP: ClassVar[int] = 4
    now: int
    session: int
    seq: int
    acked: int
    name: str
    max_hold_ms: int
    wait_ms: int
    answered: tuple[int, ...] = ()
    term: int = 0


@dataclass(frozen=True, slots=True)
class CancelWait:
    """The acquire ``acquire_seq`` gave up: drop its waiter and, with ``release_grant``,
    release a grant that raced in.

    The leader proposes it, without a request id of its own (applying it twice changes nothing
    more than once), when the caller's connection went away: the caller may retry the same
    request, so a grant it may yet receive is left alone (``release_grant`` false). Format 1
    journals also hold cancels with ``release_grant`` true, from a wait that timed out on the
    server; they replay as they applied then. A grant is now given back only by the caller
    itself (``Abandon``), which alone knows that no retry of it received the grant.
    """

    OP: ClassVar[int] = 5
    now: int
    session: int
    name: str
    acquire_seq: int
    release_grant: bool = False
    term: int = 0


@dataclass(frozen=True, slots=True)
class Release:
    """Release ``name`` if ``token`` holds it; the head waiter is granted in the same step."""

    OP: ClassVar[int] = 6
    now: int
    session: int
    seq: int
    acked: int
    name: str
    token: int
    answered: tuple[int, ...] = ()
    term: int = 0


@dataclass(frozen=True, slots=True)
class Extend:
    """Reset the max-hold of the hold ``token`` to ``max_hold_ms`` from now (0: no cap)."""

    OP: ClassVar[int] = 7
    now: int
    session: int
    seq: int
    acked: int
    name: str
    token: int
    max_hold_ms: int
    answered: tuple[int, ...] = ()
    term: int = 0


@dataclass(frozen=True, slots=True)
class ForceRelease:
    """Operator action: take ``name`` from its holder, recording ``reason``.

    With ``token`` (non-zero) only that hold is taken, so a retried force-release cannot take
    the lock from the waiter it was handed to.
    """

    OP: ClassVar[int] = 8
    now: int
    name: str
    reason: str
    token: int = 0
    term: int = 0


@dataclass(frozen=True, slots=True)
class SetUpList:
    """Create the distinct list ``name`` or, if it exists, reset its TTL (0: no expiry)."""

    OP: ClassVar[int] = 9
    now: int
    session: int
    seq: int
    acked: int
    name: str
    ttl_ms: int
    answered: tuple[int, ...] = ()
    term: int = 0


@dataclass(frozen=True, slots=True)
class Insert:
    """Add members to a list; each gets a dense id, a duplicate the id it was first given."""

    OP: ClassVar[int] = 10
    now: int
    session: int
    seq: int
    acked: int
    name: str
    members: tuple[bytes, ...]
    answered: tuple[int, ...] = ()
    term: int = 0


@dataclass(frozen=True, slots=True)
class TearDownList:
    """Delete a list and its ids."""

    OP: ClassVar[int] = 11
    now: int
    session: int
    seq: int
    acked: int
    name: str
    answered: tuple[int, ...] = ()
    term: int = 0


@dataclass(frozen=True, slots=True)
class Tick:
    """Advance log time only: applies due expiries; also the barrier for linearizable reads."""

    OP: ClassVar[int] = 12
    now: int
    term: int = 0


@dataclass(frozen=True, slots=True)
class SetLimits:
    """Replace the bounds, so every replica checks the same ones from this entry on."""

    OP: ClassVar[int] = 13
    now: int
    limits: Limits
    term: int = 0


@dataclass(frozen=True, slots=True)
class SetMember:
    """Records a cluster member's addresses (the peer port for Raft, the client port for
    leader hints), so every node can name every member to clients."""

    OP: ClassVar[int] = 14
    now: int
    node_id: str
    peer_address: str
    client_address: str
    term: int = 0


@dataclass(frozen=True, slots=True)
class RemoveMember:
    """Forgets a member that has left the Raft configuration."""

    OP: ClassVar[int] = 15
    now: int
    node_id: str
    term: int = 0


@dataclass(frozen=True, slots=True)
class SetClusterVersion:
    """Raises the cluster's command set to ``version``: proposed by a leader once every member
    of the Raft configuration has reported that it supports it."""

    OP: ClassVar[int] = 16
    SINCE: ClassVar[int] = 2
    now: int
    version: int
    term: int = 0


@dataclass(frozen=True, slots=True)
class Abandon:
    """The client gave up on its acquire ``acquire_seq`` without learning the outcome: drop its
    waiter or release the grant it received, and refuse any late copy of it from now on."""

    OP: ClassVar[int] = 17
    SINCE: ClassVar[int] = 2
    now: int
    session: int
    seq: int
    acked: int
    name: str
    acquire_seq: int
    answered: tuple[int, ...] = ()
    term: int = 0


Command = (
    OpenSession
    | CloseSession
    | ExpireSession
    | Acquire
    | CancelWait
    | Release
    | Extend
    | ForceRelease
    | SetUpList
    | Insert
    | TearDownList
    | Tick
    | SetLimits
    | SetMember
    | RemoveMember
    | SetClusterVersion
    | Abandon
)

SessionCommand = Acquire | Release | Extend | SetUpList | Insert | TearDownList | Abandon

#: Commands deduplicated by (session, seq).
SESSION_COMMANDS = (Acquire, Release, Extend, SetUpList, Insert, TearDownList, Abandon)


def since(command: Command | type) -> int:
    """The cluster version from which a command may be proposed and applied (1: always)."""
    return getattr(command, "SINCE", 1)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Err:
    """A refused command. Nothing was changed."""

    CODE: ClassVar[int] = 1
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class Done:
    """Applied; nothing to report."""

    CODE: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class SessionOpened:
    CODE: ClassVar[int] = 3
    session: int
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class Granted:
    """The lock is held with ``token`` until ``expires_at`` in log time (0: no cap)."""

    CODE: ClassVar[int] = 4
    token: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Queued:
    """Waiting; the grant or the timeout arrives later as an event for (session, seq)."""

    CODE: ClassVar[int] = 5
    position: int
    deadline: int


@dataclass(frozen=True, slots=True)
class NotAcquired:
    """Held by someone else and no wait, or the wait ended without a grant."""

    CODE: ClassVar[int] = 6
    why: str


@dataclass(frozen=True, slots=True)
class Extended:
    CODE: ClassVar[int] = 7
    expires_at: int


@dataclass(frozen=True, slots=True)
class WaitCancelled:
    """``removed``: the waiter was dropped; ``released``: a grant that raced in was released."""

    CODE: ClassVar[int] = 8
    removed: bool
    released: bool


@dataclass(frozen=True, slots=True)
class ForceReleased:
    CODE: ClassVar[int] = 9
    session: int
    token: int


@dataclass(frozen=True, slots=True)
class ListSetUp:
    CODE: ClassVar[int] = 10
    created: bool
    expires_at: int


@dataclass(frozen=True, slots=True)
class Inserted:
    """One (added, id) per requested member, in request order."""

    CODE: ClassVar[int] = 11
    results: tuple[tuple[bool, int], ...]


@dataclass(frozen=True, slots=True)
class TornDown:
    CODE: ClassVar[int] = 12
    removed: bool


@dataclass(frozen=True, slots=True)
class Released:
    CODE: ClassVar[int] = 13
    token: int


Result = (
    Err
    | Done
    | SessionOpened
    | Granted
    | Queued
    | NotAcquired
    | Extended
    | WaitCancelled
    | ForceReleased
    | ListSetUp
    | Inserted
    | TornDown
    | Released
)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class WaiterResolved:
    """A queued acquire (session, seq) got its final result (Granted, NotAcquired or Err)."""

    session: int
    seq: int
    name: str
    result: Result


@dataclass(frozen=True, slots=True)
class LockFreed:
    """A hold ended. ``cause`` is one of the ``CAUSE_*`` strings."""

    name: str
    session: int
    token: int
    cause: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    session: int
    cause: str


@dataclass(frozen=True, slots=True)
class ListExpired:
    name: str


Event = WaiterResolved | LockFreed | SessionEnded | ListExpired

CAUSE_RELEASED = "released"
CAUSE_MAX_HOLD = "max_hold"
CAUSE_SESSION_EXPIRED = "session_expired"
CAUSE_SESSION_CLOSED = "session_closed"
CAUSE_FORCE_RELEASED = "force_released"
CAUSE_WAIT_CANCELLED = "wait_cancelled"
CAUSE_ABANDONED = "abandoned"


# --------------------------------------------------------------------------- codec

_COMMANDS: dict[int, type] = {
    cls.OP: cls
    for cls in (
        OpenSession,
        CloseSession,
        ExpireSession,
        Acquire,
        CancelWait,
        Release,
        Extend,
        ForceRelease,
        SetUpList,
        Insert,
        TearDownList,
        Tick,
        SetLimits,
        SetMember,
        RemoveMember,
        SetClusterVersion,
        Abandon,
    )
}
_RESULTS: dict[int, type] = {
    cls.CODE: cls
    for cls in (
        Err,
        Done,
        SessionOpened,
        Granted,
        Queued,
        NotAcquired,
        Extended,
        WaitCancelled,
        ForceReleased,
        ListSetUp,
        Inserted,
        TornDown,
        Released,
    )
}
_MAX_INT = 2**63 - 1


def _convert_int(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_INT:
        raise CodecError(f"expected a non-negative 64-bit integer, got {value!r}")
    return value


def _exact(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise CodecError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return convert


def _converter(hint: Any) -> Callable[[Any], Any]:
    """Builds a strict decoder for one annotated field type."""
    origin = typing.get_origin(hint)
    if hint is int:
        return _convert_int
    if hint in (str, bytes, bool):
        return _exact(hint)
    if isinstance(hint, type) and issubclass(hint, Enum):
        enum_type = hint

        def convert_enum(value: Any) -> Any:
            try:
                return enum_type(value)
            except ValueError:
                raise CodecError(f"unknown {enum_type.__name__} {value!r}") from None

        return convert_enum
    if isinstance(hint, type) and is_dataclass(hint):
        record = _RecordCodec(hint)
        return record.from_values
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0])

            def convert_seq(value: Any) -> tuple[Any, ...]:
                if not isinstance(value, list | tuple):
                    raise CodecError(f"expected an array, got {type(value).__name__}")
                return tuple(item(v) for v in value)

            return convert_seq
        items = [_converter(a) for a in args]

        def convert_fixed(value: Any) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple) or len(value) != len(items):
                raise CodecError(f"expected an array of {len(items)}")
            return tuple(conv(v) for conv, v in zip(items, value, strict=True))

        return convert_fixed
    raise TypeError(f"no codec for field type {hint!r}")


class _RecordCodec:
    """Encodes a dataclass as the list of its field values; decodes with type checks."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        hints = typing.get_type_hints(cls)
        self.names = tuple(f.name for f in fields(cls))
        self.converters = tuple(_converter(hints[name]) for name in self.names)

    def to_values(self, record: Any) -> list[Any]:
        return [_plain(getattr(record, name)) for name in self.names]

    def from_values(self, values: Any, version: int = FORMAT_VERSION) -> Any:
        if version == 1 and self.names[-1:] == ("term",) and isinstance(values, list | tuple):
            # Format 1 predates the term field: such a command was stamped in no term.
            values = [*values, 0]
        if not isinstance(values, list | tuple) or len(values) != len(self.names):
            raise CodecError(f"{self.cls.__name__} needs {len(self.names)} fields")
        return self.cls(*(conv(v) for conv, v in zip(self.converters, values, strict=True)))


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return _codec_for(type(value)).to_values(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


_CODECS: dict[type, _RecordCodec] = {}


def _codec_for(cls: type) -> _RecordCodec:
    codec = _CODECS.get(cls)
    if codec is None:
        codec = _CODECS[cls] = _RecordCodec(cls)
    return codec


for _cls in (*_COMMANDS.values(), *_RESULTS.values()):
    _codec_for(_cls)


def encode_command(command: Command) -> bytes:
    return msgpack.packb(
        [FORMAT_VERSION, command.OP, _codec_for(type(command)).to_values(command)],
        use_bin_type=True,
    )


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise CodecError(f"not msgpack: {exc}") from None


def _decode_record(data: Any, table: dict[int, type], what: str) -> Any:
    if not isinstance(data, list) or len(data) != 3:
        raise CodecError(f"a {what} is [version, code, fields]")
    version, code, values = data
    if type(version) is not int or version not in _READABLE_FORMATS:
        raise CodecError(f"unknown {what} format version {version!r}")
    cls = table.get(code) if type(code) is int else None
    if cls is None:
        raise CodecError(f"unknown {what} code {code!r}")
    return _codec_for(cls).from_values(values, version)


def decode_command(data: bytes) -> Command:
    """Decodes one log entry; raises CodecError for anything but a known, well-typed command."""
    return _decode_record(_unpack(data), _COMMANDS, "command")


#: Op code of a log entry that carries several commands, applied in order. Not a command:
#: the leader groups the commands proposed within one tick into one entry (one pickle, one
#: journal record, one apply call in pysyncobj instead of one each).
BATCH_OP = 100


def encode_batch(payloads: list[bytes]) -> bytes:
    """One log entry ``[version, BATCH_OP, [command, ...]]`` from encoded commands.

    The commands' bytes are spliced in as they are: a msgpack array is its header followed by
    its packed elements, so nothing is packed twice.
    """
    count = len(payloads)
    if count < 16:
        header = bytes([0x90 | count])
    elif count < 1 << 16:
        header = b"\xdc" + count.to_bytes(2, "big")
    else:
        header = b"\xdd" + count.to_bytes(4, "big")
    return (
        b"\x93"
        + msgpack.packb(FORMAT_VERSION)
        + msgpack.packb(BATCH_OP)
        + header
        + b"".join(payloads)
    )


def decode_entry(data: bytes) -> Command | list[Command | CodecError]:
    """One log entry: its command, or a batch's commands in order, where a command that does
    not decode is a ``CodecError`` in its place (the others still apply).

    :raises CodecError: the entry is neither a command nor a batch.
    """
    record = _unpack(data)
    if (
        isinstance(record, list)
        and len(record) == 3
        and type(record[0]) is int
        and record[0] in _READABLE_FORMATS
        and type(record[1]) is int
        and record[1] == BATCH_OP
    ):
        if not isinstance(record[2], list) or not record[2]:
            raise CodecError("a batch is [version, BATCH_OP, [command, ...]] with a command")
        decoded: list[Command | CodecError] = []
        for item in record[2]:
            try:
                decoded.append(_decode_record(item, _COMMANDS, "command"))
            except CodecError as exc:
                decoded.append(exc)
        return decoded
    return _decode_record(record, _COMMANDS, "command")


def result_to_plain(result: Result) -> list[Any]:
    return [FORMAT_VERSION, result.CODE, _codec_for(type(result)).to_values(result)]


def result_from_plain(data: Any) -> Result:
    return _decode_record(data, _RESULTS, "result")


def limits_to_plain(limits: Limits) -> list[Any]:
    return _codec_for(Limits).to_values(limits)


def limits_from_plain(data: Any) -> Limits:
    return _codec_for(Limits).from_values(data)
