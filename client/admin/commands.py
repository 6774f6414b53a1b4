"""Registers the admin commands on the ``turnstile`` parser and runs them with one error
policy: one line on stderr and a distinct exit code per kind of failure."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeAlias

from turnstile.client.admin import (
    control,
    groups,
    health,
    inspect,
    run_locked,
    semaphores,
    snapshot,
    status,
)
from turnstile.client.admin.context import Context, add_common_options
from turnstile.client.admin.printer import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
)
from turnstile.client.errors import NotFoundError, TurnstileError, UnavailableError

Handler = Callable[[Context, argparse.Namespace], int]
#: ``register``'s ``add``: (name, handler, help, parent) -> the new parser.
Adder = Callable[[str, Handler, str, "Subcommands"], argparse.ArgumentParser]
#: What ``add_subparsers`` returns (generic only in the stubs, so quoted).
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
_LOCK_VERBS = ("show", "release")


def register(commands: Subcommands) -> Subcommands:
    """Adds the admin commands; returns the ``snapshot`` verbs, for the node-side restore."""
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common)

    def add(
        name: str, handler: Handler, help_text: str, parent: Subcommands = commands
    ) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, parents=[common], help=help_text)
        parser.set_defaults(admin=handler)
        return parser

    add("status", status.run, "every node's role, term, indices and health")
    add("health", health.run, "gRPC health check of each endpoint (exit 0: all serving)")
    parser = add("locks", inspect.locks, "locks in use, with holders and waiters")
    parser.add_argument("prefix", nargs="?", help="only names starting with this")
    add("sessions", inspect.sessions, "live sessions and what they hold")
    add("lists", inspect.lists, "distinct lists").add_argument(
        "prefix", nargs="?", help="only names starting with this"
    )
    _register_groups(commands, add)
    _register_semaphores(commands, add)

    lock = commands.add_parser(
        "lock",
        help="lock show NAME | lock release NAME --force --reason TEXT | "
        "lock NAME [--max-hold S] [--wait S] -- COMMAND...",
    )
    lock_verbs = lock.add_subparsers(dest="lock_verb", metavar="{show,release,NAME}")
    parser = add("show", inspect.lock_show, "a lock's holder and FIFO queue", lock_verbs)
    parser.add_argument("name")
    parser = add("release", control.force_release, "take a lock from its holder", lock_verbs)
    parser.add_argument("name")
    parser.add_argument("--force", action="store_true", help="yes, take it from its holder")
    parser.add_argument("--reason", required=True, help="recorded in the log and metrics")

    _register_lists(commands, add)

    members = commands.add_parser("members", help="members [list] | add ID PEER CLIENT | remove ID")
    member_verbs = members.add_subparsers(dest="members_verb")
    members.set_defaults(admin=control.members_list)
    add_common_options(members)
    add("list", control.members_list, "every member with its addresses", member_verbs)
    parser = add("add", control.members_add, "add a member (one change at a time)", member_verbs)
    parser.add_argument("node", help="the new node's id")
    parser.add_argument("peer_address", help="its Raft address, host:port")
    parser.add_argument("client_address", help="its client address, host:port")
    parser = add("remove", control.members_remove, "remove a member", member_verbs)
    parser.add_argument("node", help="the node's id (not the leader's)")

    leader = commands.add_parser("leader", help="leader transfer [NODE]")
    leader_verbs = leader.add_subparsers(dest="leader_verb", required=True)
    parser = add("transfer", control.transfer_leadership, "hand leadership over", leader_verbs)
    parser.add_argument("node", nargs="?", help="node id (default: most caught-up follower)")

    snapshot_cmd = commands.add_parser(
        "snapshot", help="snapshot save FILE | snapshot restore FILE --config NODE.toml"
    )
    snapshot_verbs = snapshot_cmd.add_subparsers(dest="snapshot_verb", required=True)
    parser = add(
        "save", snapshot.save, "write the whole state, from the leader, to FILE", snapshot_verbs
    )
    parser.add_argument("file", help="where to write it (replaced atomically)")
    return snapshot_verbs


def _register_lists(commands: Subcommands, add: Adder) -> None:
    """``list show``, ``list get``, ``list insert``."""
    list_cmd = commands.add_parser(
        "list", help="list show NAME | list get NAME ID | list insert NAME KEY..."
    )
    list_verbs = list_cmd.add_subparsers(dest="list_verb", required=True)
    parser = add("show", inspect.list_show, "members with their ids, one page", list_verbs)
    parser.add_argument("name")
    parser.add_argument("--after", type=count, default=0, help="only ids above this")
    parser.add_argument("--limit", type=count, default=100, help="page size (default 100)")
    parser = add("get", inspect.list_get, "the member that got an id", list_verbs)
    parser.add_argument("name")
    parser.add_argument("id", type=count)
    parser = add("insert", control.list_insert, "insert keys, print their ids", list_verbs)
    parser.add_argument("name")
    parser.add_argument("keys", nargs="+")
    parser.add_argument(
        "--ttl", type=non_negative, default=0, help="seconds to live if created (0: none)"
    )


def _register_groups(commands: Subcommands, add: Adder) -> None:
    """``groups``, ``group show``, ``elections``, ``election show``."""
    parser = add("groups", groups.groups, "groups, with their member counts", commands)
    parser.add_argument("prefix", nargs="?", help="only names starting with this")
    parser = add("elections", groups.elections, "elections with candidates, and leaders", commands)
    parser.add_argument("prefix", nargs="?", help="only names starting with this")
    group_cmd = commands.add_parser("group", help="group show NAME")
    group_verbs = group_cmd.add_subparsers(dest="group_verb", required=True)
    parser = add("show", groups.group_show, "a group's members", group_verbs)
    parser.add_argument("name")
    election_cmd = commands.add_parser("election", help="election show NAME")
    election_verbs = election_cmd.add_subparsers(dest="election_verb", required=True)
    parser = add("show", groups.election_show, "an election's leader and queue", election_verbs)
    parser.add_argument("name")


def _register_semaphores(commands: Subcommands, add: Adder) -> None:
    """``semaphores``, ``semaphore show``."""
    parser = add(
        "semaphores", semaphores.semaphores, "semaphores in use, with their limits", commands
    )
    parser.add_argument("prefix", nargs="?", help="only names starting with this")
    semaphore_cmd = commands.add_parser("semaphore", help="semaphore show NAME")
    semaphore_verbs = semaphore_cmd.add_subparsers(dest="semaphore_verb", required=True)
    parser = add(
        "show", semaphores.semaphore_show, "a semaphore's permit holders and queue", semaphore_verbs
    )
    parser.add_argument("name")


def run_lock_command(argv: list[str]) -> int:
    """``turnstile lock NAME [options] -- COMMAND...`` (NAME is not show/release)."""
    parser = argparse.ArgumentParser(
        prog="turnstile lock",
        usage="turnstile lock NAME [--max-hold S] [--wait S] [--kill-after S] -- COMMAND...",
        description=run_locked.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    parser.add_argument("name")
    parser.add_argument("--max-hold", type=positive, default=None, help="seconds; none by default")
    parser.add_argument(
        "--wait", type=non_negative, default=None, help="seconds; forever by default"
    )
    parser.add_argument("--kill-after", type=non_negative, default=10.0, help="SIGKILL delay (s)")
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("a command is needed after --")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    args.command = argv[split + 1 :]
    return execute(run_locked.run, args)


def is_lock_command(argv: list[str]) -> bool:
    return len(argv) >= 2 and argv[0] == "lock" and argv[1] not in (*_LOCK_VERBS, "-h", "--help")


def execute(handler: Handler, args: argparse.Namespace) -> int:
    try:
        ctx = Context.from_args(args)
    except ValueError as error:
        print(f"turnstile: {error}", file=sys.stderr)
        return 2
    try:
        return handler(ctx, args)
    except UnavailableError as error:
        print(f"turnstile: cannot reach the cluster: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except NotFoundError as error:
        print(f"turnstile: not found: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except TurnstileError as error:
        code = EXIT_REFUSED if error.reason is not None else EXIT_FAILURE
        print(f"turnstile: refused: {error}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("turnstile: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise  # the reader of stdout quit: the command ends quietly (turnstile.cluster.cli)
    except (ValueError, OSError) as error:
        print(f"turnstile: {error}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        ctx.client.close()


def _number(kind: Callable[[str], float], minimum: float, strict: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum or (strict and value == minimum):
            bound = f"> {minimum}" if strict else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


positive = _number(float, 0, strict=True)
non_negative = _number(float, 0, strict=False)
count = _number(int, 0, strict=False)
