"""The one command table: op codes, exactly-once and versions per command, refused duplicates."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import pytest

from turnstile.cluster import group_commands as group
from turnstile.cluster import handlers, state
from turnstile.cluster import semaphore_commands as sem
from turnstile.cluster.code_tables import (
    COMMANDS,
    RESULTS,
    CodeTable,
    CommandSpec,
    DuplicateCodeError,
    register_command,
    register_result,
)
from turnstile.cluster.commands import (
    Abandon,
    Acquire,
    Command,
    Extend,
    Granted,
    Insert,
    Release,
    Result,
    SetClusterVersion,
    SetUpList,
    TearDownList,
    Tick,
    since,
)

pytestmark = pytest.mark.unit


def test_the_tables_hold_exactly_the_command_and_result_types() -> None:
    assert {spec.cls for spec in COMMANDS} == set(typing.get_args(Command))
    assert {spec.cls for spec in RESULTS} == set(typing.get_args(Result))


def test_exactly_once_commands_and_versions_are_as_registered() -> None:
    once = {spec.cls for spec in COMMANDS if spec.exactly_once}
    groups = set(typing.get_args(group.GroupCommand))
    semaphores = set(typing.get_args(sem.SemaphoreCommand))
    assert once == {
        Acquire,
        Release,
        Extend,
        SetUpList,
        Insert,
        TearDownList,
        Abandon,
        *groups,
        *semaphores - {sem.CancelPermitWait},
    }
    assert {spec.cls: spec.since for spec in COMMANDS if spec.since != 1} == {
        SetClusterVersion: 2,
        Abandon: 2,
        **dict.fromkeys(groups, 5),
        **dict.fromkeys(semaphores, 6),
    }
    assert since(Abandon) == since(Abandon(0, 1, 2, 1, "L", 1)) == 2
    assert since(Tick) == 1


def test_the_state_machine_handles_every_registered_command() -> None:
    assert {spec.cls for spec in COMMANDS} == set(handlers.HANDLERS)
    handlers.check_every_command_is_handled()


def test_a_second_class_for_an_op_code_is_refused_naming_both() -> None:
    with pytest.raises(DuplicateCodeError, match=r"op code 4 of Grab is already Acquire's"):

        @register_command(op=4, exactly_once=True)
        @dataclass(frozen=True, slots=True)
        class Grab:
            now: int
            term: int = 0

    spec = COMMANDS.by_code(4)
    assert spec is not None and spec.cls is Acquire
    assert "Grab" not in {spec.cls.__name__ for spec in COMMANDS}


def test_a_second_class_for_a_result_code_is_refused_naming_both() -> None:
    with pytest.raises(DuplicateCodeError, match=r"result code 4 of Taken is already Granted's"):

        @register_result(code=4)
        @dataclass(frozen=True, slots=True)
        class Taken:
            token: int

    spec = RESULTS.by_code(4)
    assert spec is not None and spec.cls is Granted


def test_a_table_refuses_one_class_twice() -> None:
    table: CodeTable[CommandSpec] = CodeTable("op code")
    table.add(CommandSpec(Tick, 1, exactly_once=False, since=1))
    with pytest.raises(DuplicateCodeError, match="Tick already has op code 1"):
        table.add(CommandSpec(Tick, 2, exactly_once=False, since=1))
    assert [spec.code for spec in table] == [1]


def test_a_second_handler_for_a_command_is_refused() -> None:
    with pytest.raises(TypeError, match="Tick has two handlers"):
        handlers.handles(Tick)(state.StateMachine._tick)
