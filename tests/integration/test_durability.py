"""The Raft log's durability, judged from outside: the system calls of real node processes.

``strace`` attached to a running node shows what reached the disk and what left on the wire,
in order. A follower must not send on a peer socket (an AppendEntries acknowledgement, most
of all) while ``raft.log`` holds a write not yet followed by an fdatasync of it; with
``durability = "none"`` the same check must find violations, which shows it can fail. Every
member, the leader included, must sync under load. A node whose ``raft.log`` is not a
Turnstile log refuses to start, naming the file.

The strace tests skip when strace is not installed (``tests/chaos/install-tools`` installs it,
as root on Debian); wherever it is installed they run.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, WireClient, metric, running, wait_until
from turnstile.cluster.cli import EXIT_START
from turnstile.cluster.config import config_to_toml
from turnstile.cluster.launcher import NodeProcess, node_status, read_config, write_cluster
from turnstile.cluster.raftlog import LOG_FILE
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.integration

STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(
    STRACE is None,
    reason="strace is not installed (tests/chaos/install-tools installs it as root with apt): "
    "the syscall-order and sync-rate tests need it",
)

#: What the ordering check reads: log writes and syncs, and every way bytes leave on a socket.
ORDER_SYSCALLS = "pwrite64,fdatasync,fsync,sendto,sendmsg,write"
#: Each member must sync at least once per this many acknowledged client writes.
WRITES_PER_SYNC_AT_MOST = 20


# ---------------------------------------------------------------------------- trace parsing

_LINE = re.compile(
    r"^(?:\[pid\s+)?(?P<tid>\d+)?\]?\s*(?:\d\d:\d\d:\d\d(?:\.\d+)?\s+)?(?P<call>.*)$"
)
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>.*\)\s+=\s+(?P<ret>-?\d+|\?)")
_STARTED = re.compile(
    # The first argument's fd as -yy prints it: a socket (TCPv6 endpoints hold brackets and
    # its "->" a ">") or a path.
    r"^(?P<name>\w+)\((?:\d+<(?P<fd>[A-Za-z0-9-]+:\[(?:[^\[\]]|\[[^\]]*\])*\]|[^>]*)>)?"
    r"(?P<rest>.*)$"
)
_FINISHED = re.compile(r"\)\s+=\s+(?P<ret>-?\d+|\?)")
_TCP = re.compile(r"^TCP(?:v6)?:\[(?P<local>.+)->(?P<remote>.+)\]$")

_LOG_WRITES = frozenset({"pwrite64", "pwrite", "pwritev", "pwritev2", "write", "writev"})
_LOG_SYNCS = frozenset({"fdatasync", "fsync"})
_SENDS = frozenset({"sendto", "send", "sendmsg", "sendmmsg", "write", "writev"})


@dataclass
class OrderReport:
    """What ``check_ack_order`` found in one trace."""

    #: Writes to the log file, and syncs of it that succeeded.
    log_writes: int = 0
    log_syncs: int = 0
    #: Sends on a peer socket; those with a log write since the previous one (they carry the
    #: acknowledgement of new entries); those with a write still unsynced (the violations).
    peer_sends: int = 0
    sends_after_writes: int = 0
    violations: list[str] = field(default_factory=list)
    #: Calls whose start was before the trace began, or whose end came after it stopped.
    unmatched: int = 0


@dataclass
class _Call:
    name: str
    fd: str | None
    write_id: int | None = None
    covers: frozenset[int] = frozenset()


def _port(endpoint: str) -> int | None:
    _, _, port = endpoint.rpartition(":")
    return int(port) if port.isdigit() else None


def _is_peer_socket(fd: str | None, peer_ports: set[int]) -> bool:
    match = _TCP.match(fd or "")
    return bool(match) and bool(
        {_port(match["local"]), _port(match["remote"])} & peer_ports  # type: ignore[index]
    )


def _log_fd(fd: str | None, log_path: str) -> bool:
    return fd is not None and (fd == log_path or fd == log_path + " (deleted)")


def check_ack_order(lines: Iterable[str], log_path: str, peer_ports: set[int]) -> OrderReport:
    """Checks an ``strace -f -yy`` trace of one node: no send on a peer socket while
    ``log_path`` has a write not yet followed by a sync of it.

    Calls of several threads interleave: a call split into ``<unfinished ...>`` and
    ``<... resumed>`` lines starts at the first and ends at the second. A write counts from
    its start; a sync covers the writes that had finished when it started, from the moment
    it returns 0; a send is judged at its start. A call whose other half is outside the trace
    is counted in ``unmatched`` and covers nothing.
    """
    report = OrderReport()
    in_flight: dict[str, _Call] = {}
    unsynced: set[int] = set()  # started, not yet covered by a sync that returned
    finished: set[int] = set()  # of those, the writes that returned
    writes_since_send = False

    def start(tid: str, call: _Call, line: str) -> None:
        nonlocal writes_since_send
        if call.name in _LOG_WRITES and _log_fd(call.fd, log_path):
            call.write_id = report.log_writes
            report.log_writes += 1
            unsynced.add(call.write_id)
            writes_since_send = True
        elif call.name in _LOG_SYNCS and _log_fd(call.fd, log_path):
            call.covers = frozenset(unsynced & finished)
        elif call.name in _SENDS and _is_peer_socket(call.fd, peer_ports):
            report.peer_sends += 1
            if writes_since_send:
                report.sends_after_writes += 1
            writes_since_send = False
            if unsynced:
                report.violations.append(line)
        in_flight[tid] = call

    def finish(tid: str, returned: str) -> None:
        call = in_flight.pop(tid)
        if call.write_id is not None:
            finished.add(call.write_id)
        elif call.name in _LOG_SYNCS and _log_fd(call.fd, log_path) and returned == "0":
            report.log_syncs += 1
            unsynced.difference_update(call.covers)
            finished.difference_update(call.covers)

    for raw in lines:
        line = raw.rstrip("\n")
        parsed = _LINE.match(line)
        if parsed is None:
            continue
        tid, text = parsed["tid"] or "", parsed["call"]
        resumed = _RESUMED.match(text)
        if resumed:
            if tid in in_flight and in_flight[tid].name == resumed["name"]:
                finish(tid, resumed["ret"])
            else:
                report.unmatched += 1  # started before the trace: its arguments are unknown
            continue
        started = _STARTED.match(text)
        if started is None or text.startswith(("+++", "---")):
            continue
        if tid in in_flight:
            report.unmatched += 1  # a resumed line that never came
            in_flight.pop(tid)
        start(tid, _Call(started["name"], started["fd"]), line)
        if text.rstrip().endswith("<unfinished ...>"):
            continue
        done = _FINISHED.search(started["rest"])
        finish(tid, done["ret"] if done else "?")
    report.unmatched += len(in_flight)
    return report


def count_log_syncs(lines: Iterable[str], log_path: str) -> int:
    """Syncs of ``log_path`` that returned 0, in an ``strace -f -yy`` trace."""
    return check_ack_order(lines, log_path, set()).log_syncs


def test_check_ack_order_reads_interleaved_threads() -> None:
    """The parser on a hand-written trace: split calls, other files, other sockets."""
    log = "/d/raft.log"
    peer = "TCP:[127.0.0.1:7001->127.0.0.1:50000]"
    lines = [
        '11 10:00:00.000001 pwrite64(6</d/raft.log>, "a"..., 10, 24) = 10',
        "12 10:00:00.000002 sendmsg(9<TCP:[127.0.0.1:8001->127.0.0.1:40000]>, {}, 0) = 5",
        "11 10:00:00.000003 fdatasync(6</d/raft.log> <unfinished ...>",
        '12 10:00:00.000004 write(7</d/raft.meta.tmp>, "x", 1) = 1',
        "11 10:00:00.000005 <... fdatasync resumed>) = 0",
        f'11 10:00:00.000006 sendto(18<{peer}>, "d"..., 360, 0, NULL, 0) = 360',
        '14 10:00:00.0000065 sendto(21<TCPv6:[[::1]:50001->[::1]:7002]>, "d", 1, 0, NULL, 0) = 1',
        '11 10:00:00.000007 pwrite64(6</d/raft.log>, "b"..., 10, 34 <unfinished ...>',
        "11 10:00:00.000008 <... pwrite64 resumed>) = 10",
        f'13 10:00:00.000009 sendto(19<{peer}>, "d"..., 360, 0, NULL, 0 <unfinished ...>',
        "13 10:00:00.000010 <... sendto resumed>) = 360",
        "11 10:00:00.000011 fdatasync(6</d/raft.log>) = -1 EIO (Input/output error)",
        "11 10:00:00.000012 +++ exited with 0 +++",
    ]
    report = check_ack_order(lines, log, {7001, 7002})
    assert (report.log_writes, report.log_syncs) == (2, 1)
    assert (report.peer_sends, report.sends_after_writes) == (3, 2)
    assert report.violations == [lines[9]]  # the second write was never synced
    assert report.unmatched == 0


# ---------------------------------------------------------------------------- processes


class DurabilityCluster(Cluster):
    """``Cluster`` with every node's ``durability`` option set."""

    def __init__(self, directory: Path, durability: str) -> None:
        super().__init__(directory)
        for path, config in zip(self.paths, self.configs, strict=True):
            path.write_text(config_to_toml(replace(config, durability=durability)))
        self.configs = [read_config(path) for path in self.paths]
        assert {config.durability for config in self.configs} == {durability}

    def log_path(self, address: str) -> str:
        return str(self.configs[self.index_of(address)].data_dir / LOG_FILE)

    def peer_ports(self) -> set[int]:
        return {int(config.peer_address.rpartition(":")[2]) for config in self.configs}


@contextlib.contextmanager
def strace(pid: int, output: Path, syscalls: str) -> Iterator[Path]:
    """``strace -f -tt -yy`` attached to ``pid`` for the duration; the trace is complete in
    ``output`` once this exits (strace detaches on SIGINT and is stopped by its PID)."""
    assert STRACE is not None
    messages = output.with_name(output.name + ".stderr")
    command = [STRACE, "-f", "-tt", "-yy", "-e", f"trace={syscalls}", "-o", str(output)]
    with messages.open("wb") as stderr:
        tracer = subprocess.Popen(
            [*command, "-p", str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_until(
            lambda: tracer.poll() is not None or " attached" in messages.read_text(), timeout=30
        )
        if tracer.poll() is not None:
            raise AssertionError(f"strace could not attach to {pid}: {messages.read_text()}")
        yield output
    finally:
        if tracer.poll() is None:
            tracer.send_signal(signal.SIGINT)
            try:
                tracer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                tracer.kill()
                tracer.wait()


def leadership(cluster: DurabilityCluster) -> list[tuple[float, float]]:
    """Each node's (term, leader changes it saw): equal before and after a round means
    leadership did not move during it."""
    views = []
    for address in cluster.addresses:
        text = cluster.metrics(address)
        views.append(
            (metric(text, "turnstile_raft_term"), metric(text, "turnstile_raft_leader_changes"))
        )
    return views


def log_syncs_metric(cluster: DurabilityCluster, address: str) -> float:
    return metric(cluster.metrics(address), "turnstile_raft_log_syncs_total")


def load(cluster: Cluster, leader: str, clients: int, rounds: int, tag: str) -> int:
    """``clients`` threads, each with its own session: ``rounds`` times acquire, release and
    insert. Returns the writes acknowledged to them (opens, set-ups and closes included)."""
    for address in cluster.addresses:
        cluster.stubs(address)  # the shared channels, made before the threads use them
    acked = [0] * clients
    errors: list[BaseException] = []

    def work(number: int) -> None:
        try:
            client = WireClient(cluster, leader, ttl_ms=30_000, name=f"{tag}-{number}").open()
            acked[number] += 1
            client.set_up(f"{tag}-list-{number}")
            acked[number] += 1
            for i in range(rounds):
                lock = f"{tag}-lock-{(number + i) % 3}"
                response = client.acquire(lock, wait_ms=10_000)
                assert response.acquired, f"{lock}: not acquired"
                client.release(lock, response.token)
                client.insert(f"{tag}-list-{number}", f"m{i}".encode())
                acked[number] += 3
            client.call("sessions", "Close", pb.CloseSessionRequest(session_id=client.session))
            acked[number] += 1
        except BaseException as error:  # reported by the caller
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a load thread did not finish"
    if errors:
        raise errors[0]
    return sum(acked)


def caught_up(cluster: Cluster, leader: str) -> None:
    """Waits until every node knows the commit index the leader had once the load ended:
    each has then acknowledged (and so synced) every entry of the load."""
    status = node_status(leader, timeout=5, credentials=cluster.credentials)
    assert status is not None, f"leader {leader} stopped answering"
    target = status.commit_index

    def all_there() -> bool:
        for address in cluster.addresses:
            seen = node_status(address, timeout=2, credentials=cluster.credentials)
            if seen is None or seen.commit_index < target:
                return False
        return True

    wait_until(all_there, timeout=30)


# ---------------------------------------------------------------------------- the tests


@needs_strace
@pytest.mark.parametrize("durability", ["fsync", "none"])
def test_a_follower_syncs_its_log_before_it_sends_on_a_peer_socket(
    tmp_path: Path, durability: str
) -> None:
    with running(DurabilityCluster(tmp_path / "cluster", durability)) as cluster:
        for attempt in range(1, 4):
            leader = cluster.leader(timeout=30)
            follower = cluster.followers(leader)[0]
            pid = cluster.nodes[cluster.index_of(follower)].pid
            assert pid is not None
            trace = tmp_path / f"follower-round-{attempt}.strace"
            with strace(pid, trace, ORDER_SYSCALLS):
                before = leadership(cluster)
                syncs_before = log_syncs_metric(cluster, follower)
                acked = load(cluster, leader, clients=4, rounds=40, tag=f"order{attempt}")
                caught_up(cluster, leader)
            after = leadership(cluster)
            if after == before:
                break
            print(
                f"round {attempt}: leadership moved during the trace (term, leader changes per "
                f"node: {before} -> {after}); tracing another round"
            )
        else:
            pytest.fail("leadership moved during each of 3 traced rounds")
        synced_by_metric = log_syncs_metric(cluster, follower) - syncs_before
        report = check_ack_order(
            trace.read_text(errors="replace").splitlines(),
            cluster.log_path(follower),
            cluster.peer_ports(),
        )
    print(
        f"durability={durability} follower {follower}, {acked} acknowledged writes: "
        f"{report.log_writes} raft.log writes, {report.log_syncs} fdatasyncs "
        f"({synced_by_metric:.0f} by turnstile_raft_log_syncs_total), {report.peer_sends} "
        f"peer sends ({report.sends_after_writes} after new writes), "
        f"{len(report.violations)} violations, {report.unmatched} unmatched calls"
    )
    # Not vacuous: the follower appended entries of the load and acknowledged them.
    assert report.log_writes >= 50, report
    assert report.sends_after_writes >= 50, report
    if durability == "fsync":
        assert report.violations == [], (
            f"{len(report.violations)} sends on a peer socket with raft.log unsynced, first:\n"
            + "\n".join(report.violations[:5])
        )
        assert report.log_syncs >= 50, report
        # strace saw every sync the node counted (it was attached before the baseline).
        assert report.log_syncs >= synced_by_metric > 0, (report.log_syncs, synced_by_metric)
    else:
        # The control: nothing synced, so the same check finds acknowledgements of unsynced
        # writes. It shows the check can fail.
        assert report.log_syncs == 0 and synced_by_metric == 0, report
        assert len(report.violations) > 0, report


@needs_strace
def test_every_member_syncs_at_least_once_per_twenty_acknowledged_writes(
    tmp_path: Path,
) -> None:
    with running(DurabilityCluster(tmp_path / "cluster", "fsync")) as cluster:
        leader = cluster.leader(timeout=30)
        traces = {
            address: tmp_path / f"node-{i}.strace" for i, address in enumerate(cluster.addresses)
        }
        with contextlib.ExitStack() as tracing:
            for address, trace in traces.items():
                pid = cluster.nodes[cluster.index_of(address)].pid
                assert pid is not None
                tracing.enter_context(strace(pid, trace, "fdatasync"))
            acked = load(cluster, leader, clients=8, rounds=25, tag="rate")
            caught_up(cluster, leader)
        syncs = {
            address: count_log_syncs(
                trace.read_text(errors="replace").splitlines(), cluster.log_path(address)
            )
            for address, trace in traces.items()
        }
        roles = {address: "leader" if address == leader else "follower" for address in syncs}
    figures = ", ".join(
        f"{roles[address]} {address}: {count} fdatasyncs of raft.log, "
        f"{acked / count if count else float('inf'):.1f} writes per sync"
        for address, count in syncs.items()
    )
    print(f"8 clients, {acked} acknowledged writes; {figures}")
    for address, count in syncs.items():
        assert count * WRITES_PER_SYNC_AT_MOST >= acked, (
            f"{roles[address]} {address}: {count} syncs for {acked} acknowledged writes; {figures}"
        )


def _serve(config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnstile.cluster", "serve", "--config", str(config_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\x00\xffnot a raft log at all\n" * 64, id="garbage"),
        pytest.param(b"TURNSTILE-RAFT-LOG\0\0" + struct.pack("<I", 99), id="newer-format"),
    ],
)
def test_a_node_refuses_to_start_on_a_log_that_is_not_a_turnstile_log(
    tmp_path: Path, content: bytes
) -> None:
    paths = write_cluster(tmp_path / "cluster", 3)
    config = read_config(paths[0])
    log_file = config.data_dir / LOG_FILE
    node = NodeProcess(paths[0])
    try:
        node.start()
        # It started on a log of its own (alone: it serves Status without a leader).
        wait_until(lambda: node_status(config.client_address, timeout=1) is not None, timeout=30)
        assert log_file.exists()
    finally:
        node.stop()
    log_file.write_bytes(content)
    refused = _serve(paths[0])
    assert refused.returncode == EXIT_START, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if "cannot start:" in line]
    assert lines and str(log_file) in lines[0], refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
    assert log_file.read_bytes() == content  # left as it was, for the operator to look at
