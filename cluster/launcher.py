"""The local three-node cluster behind ``turnstile cluster up``, and the pieces tests reuse.

A cluster directory holds ``peer.secret`` (the shared peer password) and one directory per
node with ``node.toml``, its Raft journal and snapshot, and ``node.log``. With TLS it also
holds ``tls/`` (a development CA, node and client certificates); with authentication
``admin.token`` and ``worker.token``. Starting again on the same directory restarts the same
cluster with its state and security settings.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from turnstile.client.credentials import Credentials
from turnstile.cluster.auth import ADMIN, WORKER, token_hash
from turnstile.cluster.certs import CA_NAME, CLIENT_NAME, write_dev_pki
from turnstile.cluster.commands import PROTOCOL_VERSION
from turnstile.cluster.config import (
    ConfigError,
    NodeConfig,
    Token,
    config_to_toml,
    load_config,
)
from turnstile.cluster.limits import Limits
from turnstile.cluster.peers import Peer
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc

CONFIG_NAME = "node.toml"
LOG_NAME = "node.log"
SECRET_NAME = "peer.secret"
TLS_DIR = "tls"


@dataclass(frozen=True, slots=True)
class Security:
    """What protects the client ports of a new local cluster."""

    #: TLS with certificates of a development CA written to ``tls/``.
    tls: bool = False
    #: Clients must also present a certificate of that CA.
    mtls: bool = False
    #: Bearer tokens required: ``admin.token`` and ``worker.token``.
    auth: bool = False


def token_path(directory: Path, role: str) -> Path:
    return directory / f"{role}.token"


def write_secret(path: Path, text: str) -> None:
    """Writes a secret readable by its owner only (mode 0600 from the start)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text + "\n", encoding="utf-8")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports: all held open at once while the OS picks them."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((host, 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def write_cluster(
    directory: Path,
    nodes: int = 3,
    host: str = "127.0.0.1",
    *,
    limits: Limits | None = None,
    hosts: Sequence[str] | None = None,
    security: Security | None = None,
    durability: str = "fsync",
    forward_streams: bool = True,
) -> list[Path]:
    """Writes configs for a new local cluster on free ports; returns the node.toml paths.

    ``hosts`` gives each node its own address (one per node, e.g. one per network namespace);
    the ports are still picked free on ``host``. Such addresses are not loopback but private
    to this machine, so those configs say ``insecure = true`` (TLS and tokens not required).
    """
    security = security or Security()
    directory.mkdir(parents=True, exist_ok=True)
    secret = directory / SECRET_NAME
    write_secret(secret, secrets.token_hex(32))
    ports = free_ports(3 * nodes, host)
    node_hosts = list(hosts) if hosts is not None else [host] * nodes
    if len(node_hosts) != nodes:
        raise ValueError(f"{nodes} nodes need {nodes} hosts, got {len(node_hosts)}")
    peers = tuple(
        Peer(
            f"n{i}",
            f"{node_hosts[i - 1]}:{ports[3 * i - 3]}",
            f"{node_hosts[i - 1]}:{ports[3 * i - 2]}",
        )
        for i in range(1, nodes + 1)
    )
    metrics = {peer.node_id: f"{node_hosts[i]}:{ports[3 * i + 2]}" for i, peer in enumerate(peers)}
    tls_dir = (directory / TLS_DIR).resolve()
    if security.tls or security.mtls:
        names = list(dict.fromkeys([*node_hosts, "127.0.0.1", "localhost"]))
        write_dev_pki(tls_dir, [peer.node_id for peer in peers], names)
    tokens: tuple[Token, ...] = ()
    if security.auth:
        for role in (ADMIN, WORKER):
            value = secrets.token_urlsafe(32)
            write_secret(token_path(directory, role), value)
            tokens += (Token(role, role, token_hash(value)),)
    paths = []
    for peer in peers:
        node_dir = directory / peer.node_id
        node_dir.mkdir(exist_ok=True)
        tls = security.tls or security.mtls
        config = NodeConfig(
            node_id=peer.node_id,
            client_address=peer.client_address,
            peer_address=peer.peer_address,
            data_dir=(node_dir / "data").resolve(),
            peer_password_file=secret.resolve(),
            peers=peers,
            metrics_address=metrics[peer.node_id],
            tls_cert_file=tls_dir / f"{peer.node_id}.pem" if tls else None,
            tls_key_file=tls_dir / f"{peer.node_id}.key" if tls else None,
            tls_client_ca_file=tls_dir / f"{CA_NAME}.pem" if security.mtls else None,
            tokens=tokens,
            insecure=hosts is not None,
            limits=limits or Limits(),
            durability=durability,
            forward_streams=forward_streams,
        )
        path = node_dir / CONFIG_NAME
        path.write_text(config_to_toml(config), encoding="utf-8")
        paths.append(path)
    return paths


def existing_cluster(directory: Path) -> list[Path]:
    """The node.toml paths of a cluster written earlier, in node order; empty if none."""
    return sorted(directory.glob(f"*/{CONFIG_NAME}"))


def read_config(path: Path) -> NodeConfig:
    return load_config(path, env={}, flags={})


def admin_credentials(directory: Path) -> Credentials:
    """What an admin client of the local cluster in ``directory`` presents: the development
    CA and client certificate if it has them, and the admin token if it has one."""
    tls_dir = directory / TLS_DIR
    ca = tls_dir / f"{CA_NAME}.pem"
    cert = tls_dir / f"{CLIENT_NAME}.pem"
    token = token_path(directory, ADMIN)
    return Credentials.load(
        ca_file=ca if ca.exists() else None,
        cert_file=cert if cert.exists() else None,
        key_file=tls_dir / f"{CLIENT_NAME}.key" if cert.exists() else None,
        token_file=token if token.exists() else None,
        tls=ca.exists(),
        env={},
    )


def client_environment(directory: Path, addresses: list[str]) -> dict[str, str]:
    """The TURNSTILE_* variables a client of the local cluster needs (admin token)."""
    variables = {"TURNSTILE_ENDPOINTS": ",".join(addresses)}
    tls_dir = directory / TLS_DIR
    if (tls_dir / f"{CA_NAME}.pem").exists():
        variables["TURNSTILE_CA_FILE"] = str(tls_dir / f"{CA_NAME}.pem")
        variables["TURNSTILE_CERT_FILE"] = str(tls_dir / f"{CLIENT_NAME}.pem")
        variables["TURNSTILE_KEY_FILE"] = str(tls_dir / f"{CLIENT_NAME}.key")
    if token_path(directory, ADMIN).exists():
        variables["TURNSTILE_TOKEN_FILE"] = str(token_path(directory, ADMIN))
    return variables


@dataclass
class NodeProcess:
    """One ``turnstile serve`` child process, tracked by PID.

    ``prefix`` runs it through another command that execs it in place (so the PID is still
    the node's), such as ``ip netns exec NAME``; ``env`` adds environment variables.
    """

    config_path: Path
    process: subprocess.Popen[bytes] | None = None
    prefix: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.config_path.parent / LOG_NAME

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "turnstile.cluster",
                    "serve",
                    "--config",
                    str(self.config_path),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: a crash, as far as the cluster can tell."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def node_status(
    client_address: str, timeout: float = 1.0, credentials: Credentials | None = None
) -> pb.StatusResponse | None:
    """The node's own status, or None if it does not answer."""
    credentials = credentials or Credentials()
    with credentials.channel(client_address) as channel:
        try:
            status: pb.StatusResponse = pb_grpc.ClusterStub(channel).Status(
                pb.StatusRequest(), timeout=timeout, metadata=credentials.metadata
            )
            return status
        except grpc.RpcError:
            return None


def wait_for_leader(
    addresses: list[str], timeout: float, credentials: Credentials | None = None
) -> str | None:
    """Client address of a leader that answers, once one is serving; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for address in addresses:
            status = node_status(address, credentials=credentials)
            if status is not None and status.role == pb.ROLE_LEADER:
                return address
        time.sleep(0.1)
    return None


def wait_for_cluster_version(
    leader: str, timeout: float, credentials: Credentials | None = None
) -> bool:
    """Whether the leader raised the cluster version to this build's within ``timeout``: a
    fresh cluster starts at 1, and every feature is served once it is raised."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = node_status(leader, credentials=credentials)
        if status is not None and status.cluster_version >= PROTOCOL_VERSION:
            return True
        time.sleep(0.1)
    return False


def cluster_up(
    directory: Path,
    nodes: int,
    host: str,
    security: Security | None = None,
    durability: str = "fsync",
) -> int:
    """Starts (or restarts) a local cluster and runs until SIGINT/SIGTERM; returns exit code."""
    paths = existing_cluster(directory)
    if paths:
        print(f"restarting the cluster in {directory} (with its own security settings)")
    else:
        paths = write_cluster(directory, nodes, host, security=security, durability=durability)
        print(f"created a {nodes}-node cluster in {directory}")
    try:
        configs = [read_config(p) for p in paths]
    except ConfigError as exc:
        print(f"turnstile: bad configuration in {directory}: {exc}", file=sys.stderr)
        return 2
    children = [NodeProcess(p) for p in paths]
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for child in children:
            child.start()
        addresses = [c.client_address for c in configs]
        leader = wait_for_leader(addresses, timeout=30, credentials=admin_credentials(directory))
        if leader is None:
            print("no leader was elected within 30 s; see the node.log files", file=sys.stderr)
            return 1
        if not wait_for_cluster_version(leader, 30, admin_credentials(directory)):
            print(
                f"the cluster version did not reach {PROTOCOL_VERSION} within 30 s; calls "
                "that need it are refused meanwhile (see the node.log files)",
                file=sys.stderr,
            )
        for config, child in zip(configs, children, strict=True):
            print(
                f"  {config.node_id}  client {config.client_address}  pid {child.pid}  "
                f"log {child.log_path}"
            )
        print(f"leader: {leader}")
        for name, value in client_environment(directory, addresses).items():
            print(f"export {name}={value}")
        if token_path(directory, WORKER).exists():
            print(f"(workers: TURNSTILE_TOKEN_FILE={token_path(directory, WORKER)})")
        print("press Ctrl-C to stop", flush=True)
        reported: set[str] = set()
        while not stopping:
            for config, child in zip(configs, children, strict=True):
                if not child.running() and config.node_id not in reported:
                    reported.add(config.node_id)
                    print(
                        f"node {config.node_id} exited; the others keep serving while a "
                        f"majority is up; see {child.log_path}",
                        file=sys.stderr,
                    )
            time.sleep(0.2)
        return 0
    finally:
        for child in children:
            child.stop()
        print("cluster stopped")
