"""The versioned msgpack codec of commands (log entries) and results (kept in snapshots).

A log entry is ``msgpack([FORMAT_VERSION, op, [field, ...]])``, its op code the command's in
``COMMANDS``. ``decode_command`` refuses an unknown version or op, a wrong number of fields
and a wrongly typed field with ``CodecError``; it never guesses. Results use the same record
encoding with their codes in ``RESULTS`` (results are kept in snapshots for exactly-once
retries). Format 1 (before commands carried ``term``) is still read, as term 0, so an old
journal replays; it is never written.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Any

import msgpack

from turnstile.cluster.code_tables import COMMANDS, RESULTS, CodeTable
from turnstile.cluster.commands import Command, Result
from turnstile.cluster.limits import Limits

FORMAT_VERSION = 2
#: Record formats ``decode_command`` reads: 1 has no ``term`` field (read as 0).
_READABLE_FORMATS = (1, 2)


class CodecError(ValueError):
    """Bytes that are not a well-formed record of a known version and kind."""


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


for _spec in (*COMMANDS, *RESULTS):
    _codec_for(_spec.cls)


def encode_command(command: Command) -> bytes:
    return msgpack.packb(
        [FORMAT_VERSION, COMMANDS.of(command).code, _codec_for(type(command)).to_values(command)],
        use_bin_type=True,
    )


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise CodecError(f"not msgpack: {exc}") from None


def _decode_record(data: Any, table: CodeTable[Any], what: str) -> Any:
    """The record ``data`` holds, of the class its code names in ``table``."""
    if not isinstance(data, list) or len(data) != 3:
        raise CodecError(f"a {what} is [version, code, fields]")
    version, code, values = data
    if type(version) is not int or version not in _READABLE_FORMATS:
        raise CodecError(f"unknown {what} format version {version!r}")
    spec = table.by_code(code) if type(code) is int else None
    if spec is None:
        raise CodecError(f"unknown {what} code {code!r}")
    return _codec_for(spec.cls).from_values(values, version)


def decode_command(data: bytes) -> Command:
    """Decodes one log entry; raises CodecError for anything but a known, well-typed command."""
    command: Command = _decode_record(_unpack(data), COMMANDS, "command")
    return command


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
                decoded.append(_decode_record(item, COMMANDS, "command"))
            except CodecError as exc:
                decoded.append(exc)
        return decoded
    command: Command = _decode_record(record, COMMANDS, "command")
    return command


def result_to_plain(result: Result) -> list[Any]:
    return [FORMAT_VERSION, RESULTS.of(result).code, _codec_for(type(result)).to_values(result)]


def result_from_plain(data: Any) -> Result:
    result: Result = _decode_record(data, RESULTS, "result")
    return result


def encode_result(result: Result) -> bytes:
    """A result as bytes: a leader's answer to a command a follower forwarded."""
    return msgpack.packb(result_to_plain(result), use_bin_type=True)


def decode_result(data: bytes) -> Result:
    """:raises CodecError: anything but a known, well-typed result."""
    return result_from_plain(_unpack(data))


def limits_to_plain(limits: Limits) -> list[Any]:
    return _codec_for(Limits).to_values(limits)


def limits_from_plain(data: Any) -> Limits:
    limits: Limits = _codec_for(Limits).from_values(data)
    return limits
