"""The versioned msgpack codec of commands and results, and SetLimits validation."""

from __future__ import annotations

import typing
from dataclasses import fields, replace
from typing import Any, cast

import msgpack
import pytest
from helpers import Driver, assert_unchanged, err, result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turnstile.cluster import code_tables, views
from turnstile.cluster import group_commands as group
from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster.codec import (
    FORMAT_VERSION,
    CodecError,
    decode_command,
    encode_command,
    limits_from_plain,
    limits_to_plain,
    result_from_plain,
    result_to_plain,
)
from turnstile.cluster.commands import (
    Abandon,
    Acquire,
    CancelWait,
    CloseSession,
    Command,
    Done,
    Err,
    ExpireSession,
    Extend,
    Extended,
    ForceRelease,
    ForceReleased,
    Granted,
    Insert,
    Inserted,
    ListSetUp,
    NotAcquired,
    OpenSession,
    Queued,
    Release,
    Released,
    RemoveMember,
    Result,
    SessionOpened,
    SetClusterVersion,
    SetLimits,
    SetMember,
    SetUpList,
    TearDownList,
    Tick,
    TornDown,
    WaitCancelled,
)
from turnstile.cluster.limits import Limits
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

MAX_INT = 2**63 - 1

COMMANDS: list[Command] = [
    OpenSession(now=1, ttl_ms=5_000, client_name="worker-ü", client_host="host-1", client_pid=42),
    CloseSession(now=2, session=3),
    ExpireSession(now=3, session=4),
    Acquire(now=4, session=1, seq=7, acked=6, name="lock/é", max_hold_ms=30_000, wait_ms=1_000),
    CancelWait(now=5, session=1, name="L", acquire_seq=7, release_grant=True),
    Release(now=6, session=1, seq=9, acked=8, name="L", token=MAX_INT),
    Extend(now=7, session=1, seq=10, acked=9, name="L", token=12, max_hold_ms=0),
    ForceRelease(now=8, name="L", reason="operator: stuck\nworker"),
    SetUpList(now=9, session=2, seq=1, acked=0, name="runs", ttl_ms=3_600_000),
    Insert(now=10, session=2, seq=2, acked=1, name="runs", members=(b"a", b"\x00\xff", b"")),
    Insert(now=10, session=2, seq=3, acked=1, name="runs", members=()),
    TearDownList(now=11, session=2, seq=4, acked=3, name="runs"),
    Tick(now=MAX_INT),
    SetLimits(now=13, limits=Limits(max_batch=7, max_page=3)),
    SetMember(now=14, node_id="n4", peer_address="10.0.0.4:7101", client_address="10.0.0.4:7001"),
    RemoveMember(now=15, node_id="n4"),
    SetClusterVersion(now=16, version=2, term=3),
    Abandon(now=17, session=1, seq=11, acked=10, name="L", acquire_seq=7, term=MAX_INT),
    group.CreateGroup(now=18, session=1, seq=12, acked=11, name="workers"),
    group.DeleteGroup(now=19, session=1, seq=13, acked=11, name="workers", answered=(12,)),
    group.JoinGroup(
        now=20, session=1, seq=14, acked=13, name="g", member_id="m-ü", capabilities=b"\x00\xff"
    ),
    group.LeaveGroup(now=21, session=1, seq=15, acked=14, name="g", member_id="m"),
    group.UpdateCapabilities(
        now=22, session=1, seq=16, acked=15, name="g", member_id="m", capabilities=b""
    ),
    group.Campaign(now=23, session=1, seq=17, acked=16, name="boss", member_id="m", term=4),
    group.Resign(now=24, session=1, seq=18, acked=17, name="boss"),
    sem.AcquireLocks(
        now=25,
        session=1,
        seq=19,
        acked=18,
        names=("a", "b-ü"),
        max_hold_ms=5,
        wait_ms=6,
        description="job=7 host=w1",
        term=5,
    ),
    sem.AcquirePermit(
        now=26,
        session=1,
        seq=20,
        acked=19,
        name="pool",
        limit=3,
        max_hold_ms=0,
        wait_ms=9,
        description="",
        answered=(22,),
    ),
    sem.ReleasePermit(now=27, session=1, seq=21, acked=20, name="pool", token=MAX_INT),
    sem.ExtendPermit(now=28, session=1, seq=23, acked=22, name="pool", token=4, max_hold_ms=1),
    sem.AbandonPermit(now=29, session=1, seq=24, acked=23, name="pool", acquire_seq=20),
    sem.CancelPermitWait(now=30, session=1, name="pool", acquire_seq=20, term=6),
]

RESULTS: list[Result] = [
    Err(Reason.NOT_HOLDER, "token 3 does not hold lock 'L'"),
    Done(),
    SessionOpened(session=1, ttl_ms=5_000),
    Granted(token=5, expires_at=0),
    Queued(position=2, deadline=9_000),
    NotAcquired(why="wait timed out"),
    Extended(expires_at=12),
    WaitCancelled(removed=True, released=False),
    ForceReleased(session=1, token=2),
    ListSetUp(created=False, expires_at=0),
    Inserted(results=((True, 1), (False, 1))),
    Inserted(results=()),
    TornDown(removed=True),
    Released(token=9),
    group.GroupCreated(created=True),
    group.GroupJoined(joined=False),
    group.GroupLeft(left=True),
    group.CapabilitiesUpdated(updated=False),
    group.Standing(elected=True, token=MAX_INT, position=1),
    group.Resigned(was_candidate=True, was_leader=False),
    sem.GrantedMany(tokens=(3, MAX_INT), expires_at=0),
]

STABLE_OP_CODES = {
    OpenSession: 1,
    CloseSession: 2,
    ExpireSession: 3,
    Acquire: 4,
    CancelWait: 5,
    Release: 6,
    Extend: 7,
    ForceRelease: 8,
    SetUpList: 9,
    Insert: 10,
    TearDownList: 11,
    Tick: 12,
    SetLimits: 13,
    SetMember: 14,
    RemoveMember: 15,
    SetClusterVersion: 16,
    Abandon: 17,
    group.CreateGroup: 18,
    group.DeleteGroup: 19,
    group.JoinGroup: 20,
    group.LeaveGroup: 21,
    group.UpdateCapabilities: 22,
    group.Campaign: 23,
    group.Resign: 24,
    sem.AcquireLocks: 25,
    sem.AcquirePermit: 26,
    sem.ReleasePermit: 27,
    sem.ExtendPermit: 28,
    sem.AbandonPermit: 29,
    sem.CancelPermitWait: 30,
}


def op(command: Command | type) -> int:
    return code_tables.COMMANDS.of(command).code


def result_code(result: Result | type) -> int:
    return code_tables.RESULTS.of(result).code


def packed(*document: Any) -> bytes:
    return msgpack.packb(list(document), use_bin_type=True)


def fields_of(command: Command) -> list[Any]:
    """The plain field list of an encoded command."""
    version, code, values = msgpack.unpackb(encode_command(command), raw=False)
    assert (version, code) == (FORMAT_VERSION, op(command))
    return values


# --------------------------------------------------------------------------- round trip


def test_the_samples_cover_every_command_and_result_kind() -> None:
    assert {type(c) for c in COMMANDS} == set(typing.get_args(Command))
    assert {type(r) for r in RESULTS} == set(typing.get_args(Result))


def test_op_codes_are_stable() -> None:
    assert {cls: op(cls) for cls in typing.get_args(Command)} == STABLE_OP_CODES


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: Command) -> None:
    data = encode_command(command)
    decoded = decode_command(data)
    assert decoded == command
    assert type(decoded) is type(command)
    assert encode_command(decoded) == data


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_the_encoding_is_version_op_and_fields_in_declaration_order(command: Command) -> None:
    values = fields_of(command)
    assert len(values) == len(fields(command))
    assert values[0] == command.now


@pytest.mark.parametrize("value", RESULTS, ids=lambda r: type(r).__name__)
def test_every_result_round_trips(value: Result) -> None:
    plain = result_to_plain(value)
    assert plain[:2] == [FORMAT_VERSION, result_code(value)]
    # Through msgpack too, as a snapshot stores it.
    through = msgpack.unpackb(msgpack.packb(plain, use_bin_type=True), raw=False)
    decoded = result_from_plain(through)
    assert decoded == value
    assert type(decoded) is type(value)


def test_an_err_reason_decodes_to_the_enum_member() -> None:
    decoded = result_from_plain([FORMAT_VERSION, result_code(Err), ["NOT_FOUND", "x"]])
    assert isinstance(decoded, Err)
    assert decoded.reason is Reason.NOT_FOUND


def test_limits_round_trip() -> None:
    limits = Limits(max_name_bytes=9, min_session_ttl_ms=1, max_session_ttl_ms=2)
    assert limits_from_plain(limits_to_plain(limits)) == limits


# --------------------------------------------------------------------------- refused bytes

GOOD_TICK = packed(FORMAT_VERSION, op(Tick), [5, 0])
GOOD_ACQUIRE = fields_of(Acquire(1, 1, 1, 0, "L", 0, 0))

BAD_INPUTS: dict[str, Any] = {
    "empty": b"",
    "garbage": b"\xc1\xc1\xc1",
    "truncated": encode_command(COMMANDS[3])[:-3],
    "trailing bytes": GOOD_TICK + b"\x00",
    "not bytes (str)": "[1, 12, [5]]",
    "not bytes (None)": None,
    "not bytes (int)": 12,
    "json": b"[1, 12, [5]]",
    "top level is a map": msgpack.packb({"version": 1, "op": 12}),
    "top level is an int": msgpack.packb(1),
    "map with int keys": msgpack.packb({1: 2}),
    "too short": packed(FORMAT_VERSION, op(Tick)),
    "too long": packed(FORMAT_VERSION, op(Tick), [5], None),
    "unknown version 0": packed(0, op(Tick), [5]),
    "unknown version 3": packed(3, op(Tick), [5, 0]),
    "format 1 with a term": packed(1, op(Tick), [5, 0]),
    "version as text": packed("1", op(Tick), [5]),
    "version missing": packed(None, op(Tick), [5]),
    "unknown op 0": packed(FORMAT_VERSION, 0, [5]),
    "unknown op 18": packed(FORMAT_VERSION, 18, [5, 0]),
    "unknown op 2**40": packed(FORMAT_VERSION, 2**40, [5]),
    "negative op": packed(FORMAT_VERSION, -12, [5]),
    "op as text": packed(FORMAT_VERSION, "12", [5]),
    "op as bool": packed(FORMAT_VERSION, True, [5]),
    "op as float": packed(FORMAT_VERSION, 12.0, [5]),
    "fields not an array": packed(FORMAT_VERSION, op(Tick), 5),
    "fields a map": packed(FORMAT_VERSION, op(Tick), {"now": 5}),
    "too few fields": packed(FORMAT_VERSION, op(Acquire), GOOD_ACQUIRE[:-1]),
    "too many fields": packed(FORMAT_VERSION, op(Acquire), [*GOOD_ACQUIRE, 0]),
    "no fields": packed(FORMAT_VERSION, op(Tick), []),
    "negative int": packed(FORMAT_VERSION, op(Tick), [-1, 0]),
    "int over 63 bits": packed(FORMAT_VERSION, op(Tick), [2**63, 0]),
    "uint64 max": packed(FORMAT_VERSION, op(Tick), [2**64 - 1, 0]),
    "float for int": packed(FORMAT_VERSION, op(Tick), [5.0, 0]),
    "bool for int": packed(FORMAT_VERSION, op(Tick), [True, 0]),
    "none for int": packed(FORMAT_VERSION, op(Tick), [None, 0]),
    "text for int": packed(FORMAT_VERSION, op(Tick), ["5", 0]),
    "bytes for str": packed(FORMAT_VERSION, op(Acquire), [1, 1, 1, 0, b"L", 0, 0, [], 0]),
    "int for str": packed(FORMAT_VERSION, op(Acquire), [1, 1, 1, 0, 7, 0, 0, [], 0]),
    "str for bytes member": packed(FORMAT_VERSION, op(Insert), [1, 1, 1, 0, "runs", ["a"], [], 0]),
    "members not an array": packed(FORMAT_VERSION, op(Insert), [1, 1, 1, 0, "runs", b"ab", [], 0]),
    "members a map": packed(FORMAT_VERSION, op(Insert), [1, 1, 1, 0, "runs", {"a": b"a"}, [], 0]),
    "nested member array": packed(
        FORMAT_VERSION, op(Insert), [1, 1, 1, 0, "runs", [[b"a"]], [], 0]
    ),
    "invalid utf-8 name": b"\x93\x01\x04\x98\x01\x01\x01\x00\xa2\xff\xfe\x00\x00\x90",
    "limits not an array": packed(FORMAT_VERSION, op(SetLimits), [1, 5, 0]),
    "limits too short": packed(FORMAT_VERSION, op(SetLimits), [1, [1] * 13, 0]),
    "limits negative": packed(FORMAT_VERSION, op(SetLimits), [1, [1] * 13 + [-1], 0]),
    "limits text": packed(FORMAT_VERSION, op(SetLimits), [1, [1] * 13 + ["1"], 0]),
    "a result record (Done has no fields)": packed(*result_to_plain(Done())),
}


@pytest.mark.parametrize("data", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_anything_but_a_well_formed_command_is_a_codec_error(data: Any) -> None:
    with pytest.raises(CodecError):
        decode_command(data)


def test_the_bad_inputs_are_bad_only_where_they_say() -> None:
    """Guards the table above: the same shapes with good values do decode."""
    assert decode_command(GOOD_TICK) == Tick(5)
    assert decode_command(packed(FORMAT_VERSION, op(Acquire), GOOD_ACQUIRE)) == Acquire(
        1, 1, 1, 0, "L", 0, 0
    )
    assert decode_command(packed(FORMAT_VERSION, op(Tick), [MAX_INT, 0])) == Tick(MAX_INT)
    good_insert = packed(FORMAT_VERSION, op(Insert), [1, 1, 1, 0, "runs", [b"a"], [], 0])
    assert decode_command(good_insert) == Insert(1, 1, 1, 0, "runs", (b"a",))
    good_limits = packed(FORMAT_VERSION, op(SetLimits), [1, [1] * 14, 0])
    assert isinstance(decode_command(good_limits), SetLimits)
    assert decode_command(b"\x93\x01\x04\x98\x01\x01\x01\x00\xa1L\x00\x00\x90") == Acquire(
        1, 1, 1, 0, "L", 0, 0
    )


def test_format_1_commands_predate_the_term_and_decode_as_term_0() -> None:
    """An old journal replays: its commands were stamped in no term."""
    assert decode_command(packed(1, op(Tick), [5])) == Tick(5, term=0)
    old_acquire = packed(1, op(Acquire), [1, 2, 3, 0, "L", 0, 0, []])
    assert decode_command(old_acquire) == Acquire(1, 2, 3, 0, "L", 0, 0, (), term=0)
    assert decode_command(packed(2, op(Tick), [5, 7])) == Tick(5, term=7)


def test_codec_error_is_a_value_error() -> None:
    assert issubclass(CodecError, ValueError)


@pytest.mark.parametrize("version", [True, 1.0])
def test_a_version_of_the_wrong_type_is_a_codec_error(version: Any) -> None:
    with pytest.raises(CodecError):
        decode_command(packed(version, op(Tick), [5]))


@pytest.mark.parametrize(
    "plain",
    [
        None,
        [FORMAT_VERSION, 99, []],
        [3, result_code(Done), []],
        [FORMAT_VERSION, result_code(Err), ["NOT_A_REASON", "x"]],
        [FORMAT_VERSION, result_code(Err), [["NOT_HOLDER"], "x"]],
        [FORMAT_VERSION, result_code(Err), [{"a": 1}, "x"]],
        [FORMAT_VERSION, result_code(Granted), [1]],
        [FORMAT_VERSION, result_code(Granted), [1, -2]],
        [FORMAT_VERSION, result_code(WaitCancelled), [1, 0]],
        [FORMAT_VERSION, result_code(Inserted), [[[True, 1, 2]]]],
        [FORMAT_VERSION, result_code(Inserted), [[[1, 1]]]],
        [FORMAT_VERSION, result_code(Inserted), [[True, 1]]],
    ],
)
def test_a_bad_result_record_is_a_codec_error(plain: Any) -> None:
    with pytest.raises(CodecError):
        result_from_plain(plain)


# --------------------------------------------------------------------------- properties

_INT = st.integers(min_value=0, max_value=MAX_INT)
_BY_TYPE: dict[Any, st.SearchStrategy[Any]] = {
    int: _INT,
    str: st.text(max_size=20),
    bytes: st.binary(max_size=20),
    tuple[bytes, ...]: st.lists(st.binary(max_size=8), max_size=5).map(tuple),
    tuple[int, ...]: st.lists(_INT, max_size=5).map(tuple),
    tuple[str, ...]: st.lists(st.text(max_size=8), max_size=5).map(tuple),
    bool: st.booleans(),
    Limits: st.builds(Limits, **{f.name: _INT for f in fields(Limits)}),
}


def _command_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _BY_TYPE[hints[f.name]] for f in fields(cls)})


ANY_COMMAND = st.one_of(*(_command_strategy(cls) for cls in typing.get_args(Command)))

_PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=20,
)


@given(ANY_COMMAND)
def test_any_well_typed_command_round_trips(command: Command) -> None:
    assert decode_command(encode_command(command)) == command


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    try:
        command = decode_command(data)
    except CodecError:
        return
    assert isinstance(command, typing.get_args(Command))


@given(
    st.sampled_from([FORMAT_VERSION, 0, 2]),
    st.integers(min_value=-1, max_value=15),
    st.lists(_PLAIN, max_size=9),
)
def test_fuzzed_records_decode_strictly_or_raise_codec_error(
    version: int, op: int, values: list[Any]
) -> None:
    data = packed(version, op, values)
    try:
        command = decode_command(data)
    except CodecError:
        return
    # Accepted only when it is exactly a command: it re-encodes to the same bytes.
    assert encode_command(command) == data


@given(ANY_COMMAND, st.data())
def test_a_command_with_one_field_of_the_wrong_type_is_a_codec_error(
    command: Command, data: st.DataObject
) -> None:
    values = fields_of(command)
    index = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    original = values[index]
    wrong = data.draw(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**63), max_value=-1),
            st.floats(allow_nan=False),
            st.text(max_size=3),
            st.binary(max_size=3),
            st.dictionaries(st.text(max_size=2), st.integers(0, 9), max_size=2),
        ).filter(lambda v: type(v) is not type(original))
    )
    values[index] = wrong
    with pytest.raises(CodecError):
        decode_command(packed(FORMAT_VERSION, op(command), values))


# --------------------------------------------------------------------------- SetLimits


@pytest.mark.parametrize(
    ("limits", "detail"),
    [
        (Limits(max_batch=0), "max_batch must be a positive integer below 2**63, got 0"),
        (Limits(max_page=-3), "max_page must be a positive integer below 2**63, got -3"),
        (Limits(max_sessions=True), "max_sessions must be a positive integer"),
        (Limits(max_name_bytes=cast(int, 2.5)), "max_name_bytes must be a positive integer"),
        (
            Limits(min_session_ttl_ms=10, max_session_ttl_ms=5),
            "min_session_ttl_ms must not exceed max_session_ttl_ms",
        ),
    ],
)
def test_set_limits_with_bad_limits_is_invalid_argument_and_changes_nothing(
    limits: Limits, detail: str
) -> None:
    d = Driver(Limits(max_batch=5))
    d.session()
    before = d.dump()
    applied = d.set_limits(limits)
    err(applied, Reason.INVALID_ARGUMENT, detail)
    assert_unchanged(before, d)
    assert d.sm.limits == Limits(max_batch=5)


def test_set_limits_names_every_bad_field() -> None:
    d = Driver()
    refused = err(d.set_limits(Limits(max_batch=0, max_lists=0)), Reason.INVALID_ARGUMENT)
    assert "max_batch" in refused.detail and "max_lists" in refused.detail


def test_set_limits_takes_effect_from_that_entry_on() -> None:
    d = Driver()
    s = d.session()
    result(d.set_up(s, "runs"), ListSetUp)
    result(d.insert(s, "runs", b"a", b"b", b"c"), Inserted)
    assert d.set_limits(replace(Limits(), max_batch=2)).result == Done()
    err(d.insert(s, "runs", b"d", b"e", b"f"), Reason.LIMIT_EXCEEDED, "max_batch=2")
    # Lowering a bound never drops what is already stored.
    assert views.contains(d.sm, "runs", (b"a", b"b")) == [1, 2]
    assert d.sm.limits.max_batch == 2


def test_set_limits_survives_the_codec() -> None:
    command = SetLimits(now=1, limits=Limits(max_batch=0))
    decoded = decode_command(encode_command(command))
    assert decoded == command  # the codec carries it; the state machine refuses it
    d = Driver()
    err(d.apply(decoded), Reason.INVALID_ARGUMENT, "max_batch")
