"""A real three-process cluster on free loopback ports, and a small wire-level client.

The client here speaks the raw v1 API (the client library is tested on its own): it follows
NOT_LEADER redirects through the ``turnstile-leader`` trailing metadata and numbers requests
per session, so tests can also replay a request id on purpose.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_status import rpc_status

from turnstile.cluster.config import NodeConfig
from turnstile.cluster.launcher import (
    NodeProcess,
    Security,
    admin_credentials,
    node_status,
    read_config,
    write_cluster,
)
from turnstile.cluster.limits import Limits
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc
from turnstile.v1.error_info import reason_of
from turnstile.v1.metadata import LEADER_METADATA_KEY
from turnstile.v1.reasons import Reason

T = TypeVar("T")
C = TypeVar("C", bound="Cluster")


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of series ``name{labels}`` on a /metrics page; 0 if it is not there (a
    counter never counted)."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_until(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Polls ``condition`` until it returns something truthy; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Stubs:
    sessions: pb_grpc.SessionsStub
    locks: pb_grpc.LocksStub
    lists: pb_grpc.DistinctListsStub
    cluster: pb_grpc.ClusterStub
    groups: pb_grpc.GroupsStub
    elections: pb_grpc.ElectionsStub
    watches: pb_grpc.WatchesStub
    semaphores: pb_grpc.SemaphoresStub


class Cluster:
    """Three ``turnstile serve`` processes, each stopped by PID in ``close`` (or ``stop_all``).

    With ``security``, the stubs and probes here speak TLS and send the admin token."""

    def __init__(
        self,
        directory: Path,
        nodes: int = 3,
        limits: Limits | None = None,
        security: Security | None = None,
        forward_streams: bool = True,
    ) -> None:
        self.directory = directory
        self.paths = write_cluster(
            directory, nodes, limits=limits, security=security, forward_streams=forward_streams
        )
        self.configs: list[NodeConfig] = [read_config(p) for p in self.paths]
        self.credentials = admin_credentials(directory)
        self.nodes = [NodeProcess(p) for p in self.paths]
        self._channels: dict[str, grpc.Channel] = {}

    @property
    def addresses(self) -> list[str]:
        return [c.client_address for c in self.configs]

    def start_all(self) -> None:
        for node in self.nodes:
            node.start()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
        stop_together(self.nodes)

    def index_of(self, address: str) -> int:
        return self.addresses.index(address)

    def stubs(self, address: str) -> Stubs:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = self.credentials.channel(address)
        return Stubs(
            pb_grpc.SessionsStub(channel),
            pb_grpc.LocksStub(channel),
            pb_grpc.DistinctListsStub(channel),
            pb_grpc.ClusterStub(channel),
            pb_grpc.GroupsStub(channel),
            pb_grpc.ElectionsStub(channel),
            pb_grpc.WatchesStub(channel),
            pb_grpc.SemaphoresStub(channel),
        )

    def leader(self, timeout: float = 20.0, exclude: str | None = None) -> str:
        """Client address of the serving leader (not ``exclude``)."""

        def serving_leader() -> str | None:
            for address in self.addresses:
                if address == exclude:
                    continue
                status = node_status(address, timeout=0.5, credentials=self.credentials)
                if status is not None and status.role == pb.ROLE_LEADER:
                    try:
                        self.stubs(address).locks.Validate(
                            pb.ValidateRequest(name="probe", token=1),
                            timeout=2,
                            metadata=self.credentials.metadata,
                        )
                    except grpc.RpcError:
                        continue
                    return address
            return None

        return wait_until(serving_leader, timeout)

    def lock_info(self, name: str) -> pb.LockInfo:
        """Lock ``name`` (holder and queue) as the serving leader sees it, linearizably."""
        response = self.stubs(self.leader()).locks.Describe(
            pb.DescribeLockRequest(name=name), timeout=5, metadata=self.credentials.metadata
        )
        return response.lock

    def followers(self, leader: str) -> list[str]:
        return [a for a in self.addresses if a != leader]

    def metrics(self, address: str) -> str:
        """The /metrics page of the node at client ``address``."""
        url = f"http://{self.configs[self.index_of(address)].metrics_address}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def forwarded_calls(self, address: str, kind: str) -> float:
        """``turnstile_forwarded_calls_total{kind}`` of a node (0 before its first one)."""
        return metric(self.metrics(address), "turnstile_forwarded_calls_total", f'kind="{kind}"')

    def critical_lines(self) -> list[str]:
        return critical_lines(self.nodes)


def stop_together(nodes: Iterable[NodeProcess], timeout: float = 15.0) -> None:
    """``NodeProcess.stop`` for every node at once: SIGTERM to each running one by PID, then
    each waited for, and SIGKILLed if it has not exited ``timeout`` seconds after its SIGTERM.

    For teardown: the nodes' clean shutdowns (each up to a second of gRPC grace) overlap
    instead of adding up. A test that stops nodes as part of what it checks uses
    ``NodeProcess.stop`` or ``Cluster.stop_all``, one after the other as before."""
    started = [node for node in nodes if node.process is not None]
    for node in started:
        assert node.process is not None
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node in started:
        assert node.process is not None
        try:
            node.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
        node.process = None


def critical_lines(nodes: Iterable[NodeProcess]) -> list[str]:
    """Every CRITICAL line the nodes logged, each prefixed with its node's directory."""
    lines = []
    for node in nodes:
        if node.log_path.exists():
            lines += [
                f"{node.config_path.parent.name}: {line}"
                for line in node.log_path.read_text(errors="replace").splitlines()
                if " CRITICAL " in line
            ]
    return lines


def error_reason(error: grpc.RpcError) -> Reason | None:
    return reason_of(rpc_status.from_call(error))  # type: ignore[arg-type]


def trailing(error: grpc.RpcError) -> dict[str, Any]:
    return dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]


@dataclass
class WireClient:
    """One session on the cluster, speaking the raw API; follows leader redirects."""

    cluster: Cluster
    address: str
    ttl_ms: int = 5000
    name: str = "test"
    session: int = 0
    seq: int = 0
    answered: set[int] = field(default_factory=set)

    def open(self) -> WireClient:
        response = self.call(
            "sessions",
            "Open",
            pb.OpenSessionRequest(ttl_ms=self.ttl_ms, client_name=self.name, client_pid=1),
        )
        self.session = response.session_id
        return self

    def request_id(self, seq: int | None = None) -> pb.RequestId:
        """A fresh request id, or ``seq`` again to replay one."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        acked = 0
        while acked + 1 in self.answered and acked + 1 < seq:
            acked += 1
        return pb.RequestId(session_id=self.session, seq=seq, acked=acked)

    def call(self, service: str, method: str, request: Any, timeout: float = 10.0) -> Any:
        """Calls the leader, following NOT_LEADER hints until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            stub = getattr(self.cluster.stubs(self.address), service)
            try:
                response = getattr(stub, method)(
                    request, timeout=max(0.1, deadline - time.monotonic())
                )
            except grpc.RpcError as error:
                reason = error_reason(error)
                retry = reason in (Reason.NOT_LEADER, Reason.UNKNOWN_OUTCOME) or (
                    error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
                )
                if not retry or time.monotonic() > deadline:
                    raise
                hint = trailing(error).get(LEADER_METADATA_KEY)
                if hint and hint != self.address:
                    self.address = hint
                else:
                    others = [a for a in self.cluster.addresses if a != self.address]
                    self.address = others[int(time.monotonic() * 10) % len(others)]
                    time.sleep(0.1)
                continue
            if hasattr(request, "request"):
                self.answered.add(request.request.seq)
            return response

    def keep_alive(self) -> pb.KeepAliveResponse:
        return self.call("sessions", "KeepAlive", pb.KeepAliveRequest(session_id=self.session))

    def acquire(
        self, name: str, max_hold_ms: int = 0, wait_ms: int = 0, seq: int | None = None
    ) -> pb.AcquireResponse:
        request = pb.AcquireRequest(
            request=self.request_id(seq), name=name, max_hold_ms=max_hold_ms, wait_ms=wait_ms
        )
        return self.call("locks", "Acquire", request, timeout=10 + wait_ms / 1000)

    def release(self, name: str, token: int) -> pb.ReleaseResponse:
        request = pb.ReleaseRequest(request=self.request_id(), name=name, token=token)
        return self.call("locks", "Release", request)

    def set_up(self, name: str, ttl_ms: int = 0) -> pb.SetUpListResponse:
        request = pb.SetUpListRequest(request=self.request_id(), name=name, ttl_ms=ttl_ms)
        return self.call("lists", "SetUp", request)

    def insert(self, name: str, *members: bytes, seq: int | None = None) -> list[tuple[bool, int]]:
        request = pb.InsertRequest(request=self.request_id(seq), name=name, members=members)
        response = self.call("lists", "Insert", request)
        return [(r.added, r.id) for r in response.results]


@contextlib.contextmanager
def running(cluster: C) -> Iterator[C]:
    """``cluster`` started with a leader elected; afterwards every node is stopped by PID, and
    a CRITICAL line in any node's log fails the test."""
    try:
        cluster.start_all()
        cluster.leader(timeout=30)
        yield cluster
    finally:
        cluster.close()
    critical = cluster.critical_lines()
    assert not critical, "a node logged CRITICAL:\n" + "\n".join(critical)
