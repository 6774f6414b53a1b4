"""``turnstile bench``: the subcommand's options, checks and output."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from turnstile.bench import report
from turnstile.bench.runner import UNKNOWN_DURABILITY, Plan, System, SystemRun
from turnstile.bench.workers import WorkerError
from turnstile.cluster.config import DURABILITY_MODES

EXIT_USAGE = 2
EXIT_VIOLATIONS = 1
PEERS = ("etcd", "zookeeper")


def build_parser() -> argparse.ArgumentParser:
    bench = argparse.ArgumentParser(
        prog="turnstile bench",
        description="Throughput, latency, failover and idle cost of Turnstile, with "
        "correctness counters next to every number. See docs/benchmarks.md.",
    )
    bench.add_argument(
        "--compare", default="", metavar="SYSTEMS", help="also run etcd,zookeeper (comma list)"
    )
    bench.add_argument(
        "--endpoints",
        default="",
        metavar="HOST:PORT,...",
        help="benchmark this running Turnstile cluster (throughput rows only)",
    )
    bench.add_argument(
        "--durability",
        metavar="MODES",
        help="Turnstile's durability: fsync, none, or fsync,none to measure both side by side "
        "(default fsync; not with --endpoints)",
    )
    bench.add_argument(
        "--forwarding",
        metavar="MODES",
        help="whether Turnstile's followers forward their stream clients' calls to the leader: "
        "on, off, or on,off to measure both side by side (default on; not with --endpoints)",
    )
    bench.add_argument(
        "--clients", default="", metavar="N,N", help="client counts (default 3,16,64; quick: 4)"
    )
    bench.add_argument(
        "--processes", type=int, default=0, help="client processes (default 8; quick: 2)"
    )
    bench.add_argument("--duration", type=float, default=0.0, help="seconds per row (default 10)")
    bench.add_argument("--quick", action="store_true", help="a short smoke run")
    bench.add_argument("--json", action="store_true", help="print JSON instead of the table")
    bench.add_argument(
        "--plot",
        metavar="DIR",
        help="also draw the charts (PNG) into DIR (needs the plot extra: matplotlib)",
    )
    bench.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="run nothing: print (and --plot) the results a --json run saved in FILE",
    )
    return bench


def main(argv: list[str]) -> int:
    """``turnstile bench ARGS``."""
    return run(build_parser().parse_args(argv))


class UsageError(Exception):
    """Bad bench options; the message says which."""


def build_plan(args: argparse.Namespace) -> Plan:
    plan = Plan.quick() if args.quick else Plan()
    changes: dict[str, Any] = {}
    if args.clients:
        try:
            clients = tuple(int(c) for c in args.clients.split(","))
        except ValueError:
            raise UsageError(f"--clients: comma-separated counts, got {args.clients!r}") from None
        if not clients or min(clients) < 2:
            raise UsageError("--clients: every count must be at least 2 (lists use pairs)")
        changes["clients"] = clients
    if args.processes:
        if args.processes < 1:
            raise UsageError("--processes: must be at least 1")
        changes["processes"] = args.processes
    if args.duration:
        if not 0 < args.duration <= 3600:
            raise UsageError("--duration: seconds, more than 0 and at most 3600")
        changes["duration"] = args.duration
    return Plan(**{**plan.__dict__, **changes})


def durabilities(args: argparse.Namespace, endpoints: list[str] | None) -> list[str]:
    """The Turnstile runs' durability modes, in the order given. A running cluster
    (``--endpoints``) has its own, which the bench cannot set or see: it is recorded as
    unknown, and asking for a mode with it is refused rather than silently mislabelled."""
    if args.durability is None:
        return [UNKNOWN_DURABILITY] if endpoints else ["fsync"]
    if endpoints:
        raise UsageError(
            "--durability: cannot be chosen with --endpoints (the running cluster keeps its "
            "own; it is reported as unknown)"
        )
    modes = [m.strip() for m in args.durability.split(",") if m.strip()]
    unknown = [m for m in modes if m not in DURABILITY_MODES]
    if not modes or unknown:
        got = repr(unknown[0]) if unknown else "nothing"
        raise UsageError(f"--durability: a comma list of {','.join(DURABILITY_MODES)}, got {got}")
    return list(dict.fromkeys(modes))


def forwardings(args: argparse.Namespace, endpoints: list[str] | None) -> list[bool]:
    """Whether followers forward, per Turnstile run, in the order given (``--forwarding``)."""
    if args.forwarding is None:
        return [True]
    if endpoints:
        raise UsageError(
            "--forwarding: cannot be chosen with --endpoints (the running cluster keeps its own)"
        )
    modes = [m.strip() for m in args.forwarding.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ("on", "off")]
    if not modes or unknown:
        got = repr(unknown[0]) if unknown else "nothing"
        raise UsageError(f"--forwarding: a comma list of on,off, got {got}")
    return [mode == "on" for mode in dict.fromkeys(modes)]


def systems(args: argparse.Namespace, endpoints: list[str] | None) -> list[System]:
    """Turnstile once per durability mode and forwarding mode, then the peers of
    ``--compare``."""
    chosen = [s.strip() for s in args.compare.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in PEERS]
    if unknown:
        raise UsageError(f"--compare: unknown system {unknown[0]!r}; choose from {','.join(PEERS)}")
    return [
        *(
            System("turnstile", mode, forwarding)
            for mode in durabilities(args, endpoints)
            for forwarding in forwardings(args, endpoints)
        ),
        *(System(peer) for peer in dict.fromkeys(chosen)),
    ]


def saved_results(path: str) -> dict[str, Any]:
    """The results a ``--json`` run wrote to ``path``."""
    try:
        results = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"--from: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"--from: {path} is not JSON (save `turnstile bench --json`)") from None
    if not isinstance(results, dict) or not isinstance(results.get("systems"), dict):
        raise UsageError(f"--from: {path} holds no bench results (no 'systems')")
    return results


def output(results: dict[str, Any], args: argparse.Namespace) -> int:
    """Prints the table or JSON, draws the charts if asked; the exit status of the run."""
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(report.table(results))
    if args.plot:
        from turnstile.bench import plot  # noqa: PLC0415 - matplotlib only when asked

        try:
            charts = plot.draw(results, Path(args.plot))
        except (plot.PlotError, OSError) as exc:
            print(f"turnstile bench: --plot: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{len(charts)} charts in {args.plot}", file=sys.stderr)
    return EXIT_VIOLATIONS if results.get("violations") or results.get("failed_rows") else 0


def run(args: argparse.Namespace) -> int:
    """Runs the bench; exit 0, 1 when a correctness counter is not zero or a row failed, 2 on
    bad options."""
    if args.from_file:
        try:
            return output(saved_results(args.from_file), args)
        except UsageError as exc:
            print(f"turnstile bench: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        plan = build_plan(args)
        endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()] or None
        if endpoints and any(":" not in e for e in endpoints):
            raise UsageError(f"--endpoints: host:port addresses, got {args.endpoints!r}")
        chosen = systems(args, endpoints)
    except UsageError as exc:
        print(f"turnstile bench: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "command": "turnstile bench " + " ".join(sys.argv[2:]),
        "plan": plan.__dict__,
        "systems": {},
    }
    try:
        for system in chosen:
            target = endpoints if system.kind == "turnstile" else None
            info = results["systems"][system.name] = SystemRun(system, plan, progress, target).run()
            if not info.get("available"):
                progress(f"{system.name}: skipped: {info['reason']}")
    except WorkerError as exc:
        print(f"turnstile bench: {exc}", file=sys.stderr)
        return EXIT_VIOLATIONS
    except KeyboardInterrupt:
        print("turnstile bench: interrupted; clusters stopped", file=sys.stderr)
        return 130
    results["violations"] = sum(
        row.get("violations", 0)
        for info in results["systems"].values()
        for row in info.get("rows", {}).values()
    )
    results["failed_rows"] = sum(
        1
        for info in results["systems"].values()
        for row in info.get("rows", {}).values()
        if "error" in row
    )
    return output(results, args)
