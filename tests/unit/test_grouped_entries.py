"""Grouped log entries: many commands in one entry, each with its own result."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from pysyncobj import FAIL_REASON

from turnstile.cluster.code_tables import COMMANDS
from turnstile.cluster.codec import (
    BATCH_OP,
    FORMAT_VERSION,
    CodecError,
    decode_command,
    decode_entry,
    encode_batch,
    encode_command,
)
from turnstile.cluster.commands import Tick
from turnstile.cluster.proposals import split_group
from turnstile.cluster.raft import SUCCESS
from turnstile.cluster.state import Applied

pytestmark = pytest.mark.unit


def test_a_one_command_entry_decodes_as_before() -> None:
    data = encode_command(Tick(7))
    assert decode_entry(data) == decode_command(data) == Tick(7)


@pytest.mark.parametrize("count", [1, 2, 15, 16, 1000, 70_000])
def test_a_group_is_its_commands_in_order(count: int) -> None:
    commands = [Tick(i) for i in range(count)]
    data = encode_batch([encode_command(c) for c in commands])
    assert decode_entry(data) == commands
    assert msgpack.unpackb(data)[:2] == [FORMAT_VERSION, BATCH_OP]


def test_a_bad_command_in_a_group_is_refused_alone() -> None:
    bad = msgpack.packb([FORMAT_VERSION, 99, []])
    decoded = decode_entry(encode_batch([encode_command(Tick(1)), bad, encode_command(Tick(2))]))
    assert isinstance(decoded, list)
    assert decoded[0] == Tick(1)
    assert isinstance(decoded[1], CodecError)
    assert decoded[2] == Tick(2)


@pytest.mark.parametrize(
    "entry",
    [
        msgpack.packb([FORMAT_VERSION, BATCH_OP, []]),
        msgpack.packb([FORMAT_VERSION, BATCH_OP, "x"]),
        msgpack.packb([FORMAT_VERSION + 1, BATCH_OP, [encode_command(Tick(1))]]),
        msgpack.packb([True, BATCH_OP, [[FORMAT_VERSION, COMMANDS.of(Tick).code, [1]]]]),
        b"\xc1",
    ],
)
def test_a_malformed_group_is_a_codec_error(entry: bytes) -> None:
    with pytest.raises(CodecError):
        decode_entry(entry)


def _recorder() -> tuple[list[tuple[Any, int]], Any]:
    seen: list[tuple[Any, int]] = []
    return seen, lambda result, error: seen.append((result, error))


def test_each_command_of_a_group_gets_its_own_result() -> None:
    (first, one), (second, two) = _recorder(), _recorder()
    results = [Applied(Tick(1), ()), Applied(Tick(2), ())]
    split_group([one, two])(results, SUCCESS)
    assert first == [(results[0], SUCCESS)]
    assert second == [(results[1], SUCCESS)]


def test_a_group_that_failed_fails_every_command_with_its_reason() -> None:
    (first, one), (second, two) = _recorder(), _recorder()
    split_group([one, two])(None, FAIL_REASON.NOT_LEADER)
    assert first == second == [(None, FAIL_REASON.NOT_LEADER)]


def test_a_callback_that_raises_does_not_stop_the_others() -> None:
    def broken(_result: Any, _error: int) -> None:
        raise RuntimeError("callback bug")

    seen, fine = _recorder()
    split_group([broken, fine])([Applied(Tick(1), ()), Applied(Tick(2), ())], SUCCESS)
    assert seen == [(Applied(Tick(2), ()), SUCCESS)]
