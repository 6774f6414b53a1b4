"""The wire-code tables of log records: op codes of commands, codes of results.

Each command class is registered in ``COMMANDS`` by ``register_command`` with all that is
per-command: its op code, whether it is deduplicated by (session, seq), and the cluster
version it needs. The codec and the state machine both read that one table, and it refuses a
second class for an op code at import (a duplicate would silently decode old entries as the
wrong command). Results are registered in ``RESULTS`` by ``register_result`` likewise. The
record classes live in ``commands``, ``group_commands`` and ``semaphore_commands``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar


class DuplicateCodeError(TypeError):
    """Two record classes were given one wire code, or one class two entries."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What the log and the state machine know of one command class."""

    cls: type
    #: Stable forever: the record's op code in the log.
    code: int
    #: Deduplicated by (session, seq): a retry returns the first result, applied once.
    exactly_once: bool
    #: The cluster version from which it may be proposed and applied.
    since: int


@dataclass(frozen=True, slots=True)
class ResultSpec:
    """What snapshots know of one result class."""

    cls: type
    #: Stable forever: the record's code in retained results.
    code: int


Spec = TypeVar("Spec", CommandSpec, ResultSpec)
Record = TypeVar("Record", bound=type)


class CodeTable(Generic[Spec]):
    """Specs by wire code and by record class; an entry is never replaced."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._by_code: dict[int, Spec] = {}
        self._by_class: dict[type, Spec] = {}

    def add(self, spec: Spec) -> None:
        """Adds ``spec``; raises DuplicateCodeError, naming both classes, if its code or class
        already has an entry."""
        taken = self._by_code.get(spec.code)
        if taken is not None:
            raise DuplicateCodeError(
                f"{self.what} {spec.code} of {spec.cls.__name__} is already {taken.cls.__name__}'s"
            )
        registered = self._by_class.get(spec.cls)
        if registered is not None:
            raise DuplicateCodeError(
                f"{spec.cls.__name__} already has {self.what} {registered.code}"
            )
        self._by_code[spec.code] = spec
        self._by_class[spec.cls] = spec

    def by_code(self, code: int) -> Spec | None:
        return self._by_code.get(code)

    def of(self, record: object) -> Spec:
        """The spec of a record or record class; KeyError for one never registered."""
        return self._by_class[record if isinstance(record, type) else type(record)]

    def __iter__(self) -> Iterator[Spec]:
        return iter(self._by_code.values())


#: Every command of the log, by op code.
COMMANDS: CodeTable[CommandSpec] = CodeTable("op code")
#: Every result a command can have, by result code.
RESULTS: CodeTable[ResultSpec] = CodeTable("result code")


def register_command(
    op: int, *, exactly_once: bool = False, since: int = 1
) -> Callable[[Record], Record]:
    """Class decorator: enters a command class in ``COMMANDS``."""

    def register(cls: Record) -> Record:
        COMMANDS.add(CommandSpec(cls, op, exactly_once, since))
        return cls

    return register


def register_result(code: int) -> Callable[[Record], Record]:
    """Class decorator: enters a result class in ``RESULTS``."""

    def register(cls: Record) -> Record:
        RESULTS.add(ResultSpec(cls, code))
        return cls

    return register
