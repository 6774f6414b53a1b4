"""The state machine's handler of each command class in ``COMMANDS``.

``StateMachine.apply`` looks a command's class up in ``HANDLERS``. A handler is a method of
the state machine or a function of a rules module (``list_rules``, ``group_rules``) taking the
machine first, entered by the ``handles`` decorator: an exactly-once command's handler
takes (session, command) and runs once ``exactly_once.admit`` has let the request through;
any other's takes the command. A second handler for one class is refused at import, and so,
by ``check_every_command_is_handled``, is a registered command with none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from turnstile.cluster.code_tables import COMMANDS, CommandSpec
from turnstile.cluster.commands import Result

Method = TypeVar("Method", bound=Callable[..., Result])


@dataclass(frozen=True, slots=True)
class Handler:
    spec: CommandSpec
    #: (machine, command) or, for an exactly-once command, (machine, session, command).
    method: Callable[..., Result]


#: The handler of each command class, entered by ``handles``.
HANDLERS: dict[type, Handler] = {}


def handles(cls: type) -> Callable[[Method], Method]:
    """Method decorator: the handler of the command class ``cls``."""
    spec = COMMANDS.of(cls)

    def register(method: Method) -> Method:
        if cls in HANDLERS:
            raise TypeError(f"{cls.__name__} has two handlers")
        HANDLERS[cls] = Handler(spec, method)
        return method

    return register


def check_every_command_is_handled() -> None:
    """Raises TypeError naming each registered command class without a handler."""
    unhandled = [spec.cls.__name__ for spec in COMMANDS if spec.cls not in HANDLERS]
    if unhandled:
        raise TypeError(f"the state machine has no handler for {', '.join(unhandled)}")
