"""The ``turnstile`` command: run a node or a local cluster, and operate a running one."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from turnstile.client.admin import commands as admin
from turnstile.cluster import launcher, logs
from turnstile.cluster.config import ConfigError, load_config, option_names
from turnstile.cluster.server import PortInUseError, serve
from turnstile.cluster.tls import server_credentials

EXIT_CONFIG = 2
EXIT_START = 1


def _flag(option: str) -> str:
    return "--" + option.replace(".", "-").replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnstile", description="Turnstile: fault-tolerant distributed mutexes and lists."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run one node")
    serve_cmd.add_argument("--config", type=Path, help="TOML file (flags and env override it)")
    for option in option_names():
        serve_cmd.add_argument(_flag(option), dest=f"option:{option}", metavar="VALUE")

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
    admin.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
    if args.nodes < 1 or args.nodes % 2 == 0:
        print("turnstile: --nodes must be an odd number >= 1", file=sys.stderr)
        return EXIT_CONFIG
    return launcher.cluster_up(args.data_dir.resolve(), args.nodes, args.host)


def _serve(args: argparse.Namespace) -> int:
    flags = {
        key.removeprefix("option:"): value
        for key, value in vars(args).items()
        if key.startswith("option:") and value is not None
    }
    try:
        config = load_config(args.config, env=os.environ, flags=flags)
        config.read_password()
        server_credentials(config)
    except ConfigError as exc:
        print(f"turnstile: bad configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.log_level, config.log_format, config.node_id)
    try:
        asyncio.run(serve(config))
    except PortInUseError as exc:
        print(f"turnstile: cannot start: {exc}", file=sys.stderr)
        return EXIT_START
    return 0


if __name__ == "__main__":
    sys.exit(main())
