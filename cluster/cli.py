"""The ``turnstile`` command: run a node or a local cluster, and operate a running one.

``turnstile serve`` parses and starts a node without loading the operator tools (the admin
commands and the client library, the launcher, backup and certificate code): a third of a
second less per node start, on a node restarted by its supervisor and in every test cluster.
They load for the commands that use them, as the bench does for ``turnstile bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from turnstile.cluster import logs
from turnstile.cluster.auth import token_hash
from turnstile.cluster.config import (
    DURABILITY_MODES,
    ROLES,
    ConfigError,
    is_loopback,
    load_config,
    option_names,
)
from turnstile.cluster.peer_auth import read_peer_password
from turnstile.cluster.peers import NODE_ID, NODE_ID_RULE
from turnstile.cluster.raftlog import RaftLogError
from turnstile.cluster.server import PortInUseError, serve
from turnstile.cluster.test_switches import read_test_switches
from turnstile.cluster.tls import server_credentials

EXIT_CONFIG = 2
EXIT_START = 1
#: Exit status when the reader of stdout went away (``turnstile status | head``).
EXIT_BROKEN_PIPE = 1
BENCH_HELP = "benchmark a local cluster (optionally side by side with etcd and ZooKeeper)"


def _flag(option: str) -> str:
    return "--" + option.replace(".", "-").replace("_", "-")


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[Any]]:
    parser = argparse.ArgumentParser(
        prog="turnstile", description="Turnstile: fault-tolerant distributed mutexes and lists."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run one node")
    serve_cmd.add_argument("--config", type=Path, help="TOML file (flags and env override it)")
    for option in option_names():
        serve_cmd.add_argument(_flag(option), dest=f"option:{option}", metavar="VALUE")
    return parser, commands


def build_parser() -> argparse.ArgumentParser:
    """Every command's parser (the admin commands' loads the operator tools)."""
    from turnstile.client.admin import commands as admin  # noqa: PLC0415

    parser, commands = _parser()

    cluster_cmd = commands.add_parser("cluster", help="a local cluster on this machine")
    cluster_sub = cluster_cmd.add_subparsers(dest="cluster_command", required=True)
    up = cluster_sub.add_parser("up", help="start a local cluster and run until Ctrl-C")
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path("turnstile-data"),
        help="cluster directory (default: ./turnstile-data); reused if it exists",
    )
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (default: 3)")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    up.add_argument(
        "--tls", action="store_true", help="new cluster: TLS on the client ports (dev CA)"
    )
    up.add_argument("--mtls", action="store_true", help="new cluster: mutual TLS (implies --tls)")
    up.add_argument(
        "--auth", action="store_true", help="new cluster: require admin/worker bearer tokens"
    )
    up.add_argument(
        "--durability",
        choices=DURABILITY_MODES,
        default="fsync",
        help="new cluster: fsync the Raft log before an entry counts (default), or never",
    )

    certs = commands.add_parser(
        "certs", help="write a development CA with node and client certificates"
    )
    certs.add_argument("directory", type=Path, help="where to write the PEM files")
    certs.add_argument(
        "--node",
        action="append",
        default=[],
        help="a node name (and DNS name on its certificate); repeat per node (default: n1 n2 n3)",
    )
    certs.add_argument(
        "--host",
        action="append",
        default=[],
        help="another name or IP on every node certificate; repeatable, '*.' wildcards allowed "
        "(default: 127.0.0.1 localhost)",
    )

    token = commands.add_parser("token", help="token new | token hash")
    token_verbs = token.add_subparsers(dest="token_verb", required=True)
    new = token_verbs.add_parser(
        "new", help="make a random token: write it to FILE, print its [[tokens]] config entry"
    )
    new.add_argument("file", type=Path, help="where the token goes (mode 0600); give it to clients")
    new.add_argument("--name", required=True, help="who holds it, as logs should name them")
    new.add_argument("--role", required=True, choices=ROLES)
    token_verbs.add_parser("hash", help="print the sha256 of the token read from stdin")

    snapshot_verbs = admin.register(commands)
    restore_cmd = snapshot_verbs.add_parser(
        "restore",
        help="make FILE the initial state of a new node (run on every node before its first start)",
    )
    restore_cmd.add_argument("file", type=Path, help="a file written by snapshot save")
    restore_cmd.add_argument(
        "--config", type=Path, required=True, help="the new node's TOML config"
    )
    # Listed here for --help; its options are turnstile.bench's, parsed by _bench.
    commands.add_parser("bench", help=BENCH_HELP, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command. A closed stdout (the reader quit early) ends it quietly, as it ends
    Unix tools: no traceback, no "Broken pipe"; see the signal module's note on SIGPIPE."""
    try:
        code = _run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at devnull so that flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _run(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        return _serve(_parser()[0].parse_args(argv))
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    from turnstile.client.admin import commands as admin  # noqa: PLC0415
    from turnstile.cluster import launcher  # noqa: PLC0415

    if admin.is_lock_command(argv):
        return admin.run_lock_command(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "admin", None) is not None:
        return admin.execute(args.admin, args)
    if args.command == "lock":
        print("turnstile: lock needs show NAME, release NAME, or NAME -- COMMAND", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "serve":
        return _serve(args)
    if args.command == "certs":
        return _certs(args)
    if args.command == "token":
        return _token(args)
    if args.command == "snapshot":
        return _restore(args)
    if args.nodes < 1 or args.nodes % 2 == 0:
        print("turnstile: --nodes must be an odd number >= 1", file=sys.stderr)
        return EXIT_CONFIG
    security = launcher.Security(tls=args.tls or args.mtls, mtls=args.mtls, auth=args.auth)
    if not is_loopback(f"{args.host}:1") and not (security.tls and security.auth):
        print(
            f"turnstile: --host {args.host} is not a loopback address: the cluster needs "
            "--tls (or --mtls) and --auth there",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return launcher.cluster_up(
        args.data_dir.resolve(), args.nodes, args.host, security, args.durability
    )


def _bench(argv: list[str]) -> int:
    """``turnstile bench``: the benchmark (its drivers, the peers' clients) loads only for it."""
    from turnstile.bench import cli as bench  # noqa: PLC0415

    return bench.main(argv)


def _certs(args: argparse.Namespace) -> int:
    from turnstile.cluster.certs import write_dev_pki  # noqa: PLC0415

    nodes = args.node or ["n1", "n2", "n3"]
    bad = [node for node in nodes if not NODE_ID.fullmatch(node)]
    if bad:
        print(f"turnstile: --node {bad[0]!r}: {NODE_ID_RULE}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        issued = write_dev_pki(args.directory, nodes, args.host or ["127.0.0.1", "localhost"])
    except OSError as exc:
        print(f"turnstile: cannot write {args.directory}: {exc}", file=sys.stderr)
        return EXIT_START
    for name, files in issued.items():
        print(f"{name:<12} {files.cert}  {files.key}")
    print("development use only: the CA key sits beside the certificates it signed")
    return 0


def _token(args: argparse.Namespace) -> int:
    if args.token_verb == "hash":
        token = sys.stdin.readline().strip()
        if not token:
            print("turnstile: no token on stdin", file=sys.stderr)
            return EXIT_CONFIG
        print(token_hash(token))
        return 0
    if not NODE_ID.fullmatch(args.name):
        print(f"turnstile: --name: {NODE_ID_RULE}", file=sys.stderr)
        return EXIT_CONFIG
    from turnstile.cluster import launcher  # noqa: PLC0415

    token = secrets.token_urlsafe(32)
    try:
        launcher.write_secret(args.file, token)
    except OSError as exc:
        print(f"turnstile: cannot write {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_START
    print("[[tokens]]")
    print(f'name = "{args.name}"')
    print(f'role = "{args.role}"')
    print(f'sha256 = "{token_hash(token)}"')
    return 0


def _restore(args: argparse.Namespace) -> int:
    from turnstile.cluster.backup import RestoreError, restore  # noqa: PLC0415

    try:
        config = load_config(args.config, env=os.environ, flags={})
        restored = restore(args.file, config)
    except ConfigError as exc:
        print(f"turnstile: bad configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RestoreError as exc:
        print(f"turnstile: cannot restore: {exc}", file=sys.stderr)
        return EXIT_START
    counts, saved = restored.counts, restored.saved
    print(
        f"{config.node_id}: wrote {restored.path} with {counts.lists} lists, {counts.members} "
        f"list members; the backup's {saved.sessions} sessions ended ({saved.locks_held} locks "
        f"freed), clients open new ones; members are now "
        f"{', '.join(p.node_id for p in config.peers)}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    flags = {
        key.removeprefix("option:"): value
        for key, value in vars(args).items()
        if key.startswith("option:") and value is not None
    }
    try:
        config = load_config(args.config, env=os.environ, flags=flags)
        read_peer_password(config.peer_password_file)
        server_credentials(config)
        read_test_switches(os.environ)
    except ConfigError as exc:
        print(f"turnstile: bad configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.log_level, config.log_format, config.node_id)
    try:
        asyncio.run(serve(config))
    except (PortInUseError, RaftLogError) as exc:
        print(f"turnstile: cannot start: {exc}", file=sys.stderr)
        return EXIT_START
    return 0


if __name__ == "__main__":
    sys.exit(main())
