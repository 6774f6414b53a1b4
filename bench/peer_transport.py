"""What one Raft peer message costs the leader, stage by stage, and per committed command.

    python -m turnstile.bench.peer_transport stages [--commands 1,10,100,1000]
    python -m turnstile.bench.peer_transport leader [--commands 20000] [--in-flight 200]

``stages`` times, in CPU microseconds per message (``time.thread_time``, best of
``--repeats`` runs), the whole framing of a message before (pysyncobj's Fernet(zlib(pickle
2)), as ``peer_transport`` still speaks it to the previous build) and after (sealed), then
each step on its own and the candidates considered, on the messages a leader sends most: an
AppendEntries holding one log entry that groups N encoded commands (as ``proposals`` groups
what was submitted within a tick), an empty heartbeat, and a follower's ack.

``leader`` runs three real replicas (``RaftNode``) in this process on loopback, commits
``--commands`` commands with ``--in-flight`` outstanding, and prints the CPU time of the
leader's loop thread (the Raft thread that encrypts every send and decrypts every ack) and of
the whole process, per committed command. It first commits ``SetClusterVersion`` to this
build's protocol version, as a real leader does once every member reports it. Run each
several times on a quiet machine; wall-clock figures are printed only as context.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from turnstile.cluster.codec import encode_batch, encode_command
from turnstile.cluster.commands import PROTOCOL_VERSION, Acquire, OpenSession, SetClusterVersion
from turnstile.cluster.launcher import free_ports
from turnstile.cluster.peer_transport import (
    DIALER,
    Opener,
    Sealer,
    fernet_frame,
    open_fernet,
    password_key,
)
from turnstile.cluster.raft import SUCCESS, RaftNode
from turnstile.cluster.raft_options import RaftOptions

#: pysyncobj's pickle protocol for peer messages (``pysyncobj/pickle.py``).
PYSYNCOBJ_PICKLE = 2


def command(i: int, term: int = 12) -> bytes:
    """One realistic command: an acquire of one of a thousand job locks."""
    return encode_command(
        Acquire(
            now=1_700_000_000_000 + i,
            session=1,
            seq=i + 1,
            acked=i,
            name=f"jobs/batch-2026-12/unit-{i % 1000:04d}",
            max_hold_ms=30_000,
            wait_ms=5_000,
            term=term,
        )
    )


def append_entries(commands: int) -> Any:
    """An AppendEntries as the leader's transport pickles it: (the receiver's random key,
    the message), one log entry grouping ``commands`` commands (none: a heartbeat)."""
    entries = []
    if commands:
        payloads = [command(i) for i in range(commands)]
        entry = payloads[0] if commands == 1 else encode_batch(payloads)
        # pysyncobj's @replicated apply(payload): command type byte, pickle(funcID, args).
        data = b"\x00" + pickle.dumps((0, (entry,)), PYSYNCOBJ_PICKLE)
        entries = [(data, 123_457, 12)]
    message = {
        "type": "append_entries",
        "term": 12,
        "commit_index": 123_450,
        "entries": entries,
        "prevLogIdx": 123_456,
        "prevLogTerm": 12,
    }
    return (os.urandom(32), message)


def ack() -> Any:
    """A follower's reply, as ``RaftNode._send_next_index`` sends it."""
    reply = {
        "type": "next_node_idx",
        "next_node_idx": 123_458,
        "reset": False,
        "success": True,
        "turnstile_protocol": PROTOCOL_VERSION,
    }
    return (os.urandom(32), reply)


def per_call_us(step: Callable[[], object], repeats: int, budget_s: float = 0.05) -> float:
    """CPU microseconds per call of ``step``: the best of ``repeats`` timed runs."""
    calls = 1
    while True:  # calibrate: enough calls for about ``budget_s`` of CPU
        started = time.thread_time()
        for _ in range(calls):
            step()
        if time.thread_time() - started > budget_s / 4:
            break
        calls *= 4
    runs = []
    for _ in range(repeats):
        started = time.thread_time_ns()
        for _ in range(calls):
            step()
        runs.append((time.thread_time_ns() - started) / calls / 1000)
    return min(runs)


def stage_costs(message: Any, repeats: int) -> dict[str, float]:
    """Each stage, in µs per message, fed what the stage before it produced."""
    fernet = Fernet(Fernet.generate_key())
    key = os.urandom(32)
    chacha, aes = ChaCha20Poly1305(key), AESGCM(key)
    nonce = os.urandom(12)
    now = int(time.monotonic())

    p2 = pickle.dumps(message, PYSYNCOBJ_PICKLE)
    p5 = pickle.dumps(message, 5)
    z = zlib.compress(p2, 3)
    token = fernet.encrypt_at_time(z, now)
    sealed_chacha = chacha.encrypt(nonce, p5, None)
    sealed_aes = aes.encrypt(nonce, p5, None)
    packed = msgpack.packb(message, use_bin_type=True)

    def fernet_open() -> bytes:
        fernet.extract_timestamp(token)  # pysyncobj checks the timestamp, then decrypts
        return fernet.decrypt(token)

    # This build's framing, whole: the previous build's (Fernet) and the sealed one.
    secret = password_key("peer-transport-bench-password")
    sealer, opener = Sealer(secret, DIALER), Opener(secret, DIALER)
    opener.open(sealer.seal(message))  # the hello
    second = sealer.seal(message)
    legacy = fernet_frame(fernet, message)

    def open_second() -> object:
        opener._counter = 1  # the frame after the hello, again
        return opener.open(second)

    steps: dict[str, Callable[[], object]] = {
        "BEFORE send (all)": lambda: fernet_frame(fernet, message),
        "BEFORE receive (all)": lambda: open_fernet(fernet, legacy, 0),
        "AFTER send (all)": lambda: sealer.seal(message),
        "AFTER receive (all)": open_second,
        "pickle2 dumps": lambda: pickle.dumps(message, PYSYNCOBJ_PICKLE),
        "zlib3 compress": lambda: zlib.compress(p2, 3),
        "fernet encrypt": lambda: fernet.encrypt_at_time(z, now),
        "fernet ts+decrypt": fernet_open,
        "zlib decompress": lambda: zlib.decompress(z),
        "pickle2 loads": lambda: pickle.loads(p2),
        "pickle5 dumps": lambda: pickle.dumps(message, 5),
        "pickle5 loads": lambda: pickle.loads(p5),
        "chacha encrypt": lambda: chacha.encrypt(nonce, p5, None),
        "chacha decrypt": lambda: chacha.decrypt(nonce, sealed_chacha, None),
        "aesgcm encrypt": lambda: aes.encrypt(nonce, p5, None),
        "aesgcm decrypt": lambda: aes.decrypt(nonce, sealed_aes, None),
        "msgpack packb": lambda: msgpack.packb(message, use_bin_type=True),
        "msgpack unpackb": lambda: msgpack.unpackb(packed, raw=False),
    }
    costs = {name: per_call_us(step, repeats) for name, step in steps.items()}
    costs["bytes pickle2"] = len(p2)
    costs["bytes zlib"] = len(z)
    costs["bytes fernet"] = len(token)
    costs["bytes pickle5"] = len(p5)
    costs["bytes sealed"] = len(second)
    return costs


def run_stages(args: argparse.Namespace) -> None:
    messages = {"ack": ack(), "heartbeat": append_entries(0)}
    for n in args.commands:
        messages[f"AE {n} cmds"] = append_entries(n)
    rows = {name: stage_costs(message, args.repeats) for name, message in messages.items()}
    names = list(next(iter(rows.values())))
    print(f"{'CPU µs / message':<20}" + "".join(f"{name:>14}" for name in rows))
    for stage in names:
        cells = "".join(
            f"{rows[m][stage]:>14.0f}" if stage.startswith("bytes") else f"{rows[m][stage]:>14.2f}"
            for m in rows
        )
        print(f"{stage:<20}{cells}")


def thread_cpu_s(thread: threading.Thread) -> float:
    """CPU seconds ``thread`` has used so far (Linux: its per-thread clock)."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def commit(leader: RaftNode, payload: bytes) -> None:
    done = threading.Event()
    outcome: list[int] = []

    def finished(_result: object, error: int) -> None:
        outcome.append(error)
        done.set()

    leader.submit(payload, finished, leader.term)
    if not done.wait(20) or outcome != [SUCCESS]:
        raise SystemExit(f"a setup command failed: {outcome}")


def run_leader(args: argparse.Namespace) -> None:
    for round_ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="turnstile-peer-bench-") as directory:
            print(f"run {round_ + 1}: " + leader_run(directory, args))


def leader_run(directory: str, args: argparse.Namespace) -> str:
    addresses = [f"127.0.0.1:{port}" for port in free_ports(3)]
    nodes = [
        RaftNode(
            RaftOptions(
                self_address=address,
                other_addresses=tuple(a for a in addresses if a != address),
                data_dir=os.path.join(directory, str(i)),
                password="peer-transport-bench-password",
                durable=args.durable,
                compaction_min_entries=10 * args.commands,
            )
        )
        for i, address in enumerate(addresses)
    ]
    try:
        for node in nodes:
            node.start()
        deadline = time.monotonic() + 20
        while not any(n.is_leader for n in nodes):
            if time.monotonic() > deadline:
                raise SystemExit("no leader elected")
            time.sleep(0.01)
        leader = next(n for n in nodes if n.is_leader)
        now = 1_700_000_000_000
        commit(leader, encode_command(SetClusterVersion(now, args.cluster_version, leader.term)))
        session = OpenSession(now, 60_000, "bench", "localhost", 1, leader.term)
        commit(leader, encode_command(session))
        time.sleep(0.5)  # let the cluster settle before measuring

        in_flight = threading.Semaphore(args.in_flight)
        all_done = threading.Event()
        failures: list[int] = []
        finished_count = [0]

        def finished(_result: object, error: int) -> None:
            if error != SUCCESS:
                failures.append(error)
            finished_count[0] += 1
            in_flight.release()
            if finished_count[0] == args.commands:
                all_done.set()

        payloads = [command(i, leader.term) for i in range(args.commands)]
        leader_cpu, process_cpu = thread_cpu_s(leader._thread), time.process_time()
        wall = time.monotonic()
        for payload in payloads:
            in_flight.acquire()
            leader.submit(payload, finished, leader.term)
        if not all_done.wait(120):
            raise SystemExit("the load did not finish")
        wall = time.monotonic() - wall
        leader_cpu = thread_cpu_s(leader._thread) - leader_cpu
        process_cpu = time.process_time() - process_cpu
        if failures:
            raise SystemExit(f"{len(failures)} commands failed: {sorted(set(failures))}")
        per = 1e6 / args.commands
        return (
            f"leader thread {leader_cpu * per:.1f} µs CPU/command, process "
            f"{process_cpu * per:.1f} µs CPU/command ({args.commands} commands, "
            f"{args.commands / wall:.0f}/s wall)"
        )
    finally:
        for node in nodes:
            node.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m turnstile.bench.peer_transport")
    sub = parser.add_subparsers(dest="what", required=True)
    stages = sub.add_parser("stages", help="CPU per message of each transport stage")
    stages.add_argument(
        "--commands",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 10, 100, 1000],
        help="commands per AppendEntries entry, comma-separated",
    )
    stages.add_argument("--repeats", type=int, default=3)
    leader = sub.add_parser("leader", help="leader CPU per committed command, 3 replicas")
    leader.add_argument("--commands", type=int, default=20_000)
    leader.add_argument("--in-flight", type=int, default=200)
    leader.add_argument("--repeats", type=int, default=3)
    leader.add_argument("--cluster-version", type=int, default=PROTOCOL_VERSION)
    leader.add_argument("--durable", action=argparse.BooleanOptionalAction, default=False)
    args = parser.parse_args(argv)
    (run_stages if args.what == "stages" else run_leader)(args)


if __name__ == "__main__":
    main()
