"""Local three-member clusters the bench starts and stops: Turnstile, etcd, ZooKeeper.

Each runs on free loopback ports under a temporary directory, every process is tracked by PID
and stopped by PID (SIGTERM, then SIGKILL). ``kill_leader`` is a SIGKILL of whichever member
leads right now, for the failover measurement.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path

from turnstile.cluster import launcher
from turnstile.v1 import turnstile_pb2 as pb

#: Debian's ZooKeeper jar; its manifest names every dependency jar.
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
#: ZooKeeper's tickTime in the bench's zoo.cfg (Debian's default).
ZOOKEEPER_TICK_MS = 2000
#: How long a cluster may take to elect a leader at start.
START_TIMEOUT_S = 60.0


class SystemUnavailableError(Exception):
    """The system cannot run here (binary missing, failed to start); the message says why."""


class LocalCluster(ABC):
    """Three members on loopback. ``endpoints`` are the client addresses, host:port."""

    name: str

    def __init__(self, directory: Path, members: int = 3) -> None:
        self.directory = directory
        self.members = members
        self.processes: list[subprocess.Popen[bytes]] = []
        self.endpoints: list[str] = []

    @abstractmethod
    def start(self) -> None:
        """Starts the members and returns once a leader serves."""

    @abstractmethod
    def leader_index(self) -> int | None:
        """Index (into ``processes``) of the member that leads now, if one answers."""

    def _spawn(self, argv: list[str], log_name: str, cwd: Path | None = None) -> None:
        with (self.directory / log_name).open("ab") as log_file:
            self.processes.append(
                subprocess.Popen(
                    argv,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=cwd,
                )
            )

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.poll() is None]

    def leader_pid(self) -> int | None:
        index = self.leader_index()
        return self.processes[index].pid if index is not None else None

    def kill_leader(self) -> bool:
        """SIGKILL of the current leader; False if no leader was found."""
        index = self.leader_index()
        if index is None:
            return False
        self.processes[index].kill()
        self.processes[index].wait()
        return True

    def wait_for_leader(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise SystemUnavailableError(
                    f"{self.name}: a member exited at start; see {self.directory}"
                )
            if self.leader_index() is not None:
                return
            time.sleep(0.1)
        raise SystemUnavailableError(
            f"{self.name}: no leader within {timeout:g} s; see {self.directory}"
        )

    def stop(self) -> None:
        """SIGTERM every member by PID, SIGKILL what is left after 10 s."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


class TurnstileCluster(LocalCluster):
    """Three ``turnstile serve`` processes written by the launcher of ``turnstile cluster up``,
    with the given ``durability`` (fsync or none) and ``forward_streams``."""

    name = "turnstile"

    def __init__(
        self,
        directory: Path,
        members: int = 3,
        durability: str = "fsync",
        forward_streams: bool = True,
    ) -> None:
        super().__init__(directory, members)
        self.durability = durability
        self.forward_streams = forward_streams
        self._nodes: list[launcher.NodeProcess] = []

    def start(self) -> None:
        paths = launcher.write_cluster(
            self.directory,
            self.members,
            durability=self.durability,
            forward_streams=self.forward_streams,
        )
        self.endpoints = [launcher.read_config(p).client_address for p in paths]
        self._nodes = [launcher.NodeProcess(p) for p in paths]
        for node in self._nodes:
            node.start()
            assert node.process is not None
            self.processes.append(node.process)
        self.wait_for_leader()

    def leader_index(self) -> int | None:
        for index, address in enumerate(self.endpoints):
            if self.processes[index].poll() is not None:
                continue
            status = launcher.node_status(address, timeout=0.5)
            if status is not None and status.role == pb.ROLE_LEADER:
                return index
        return None

    def node_logs(self) -> list[Path]:
        return [node.log_path for node in self._nodes]


class EtcdCluster(LocalCluster):
    """Three ``etcd`` members (Debian ``etcd-server`` 3.4), default timing and durability."""

    name = "etcd"

    def start(self) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise SystemUnavailableError("etcd: no `etcd` binary (apt-get install etcd-server)")
        ports = launcher.free_ports(2 * self.members)
        names = [f"e{i + 1}" for i in range(self.members)]
        peers = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(self.members)]
        initial = ",".join(f"{n}={p}" for n, p in zip(names, peers, strict=True))
        self.endpoints = [f"127.0.0.1:{ports[2 * i]}" for i in range(self.members)]
        for i, name in enumerate(names):
            client_url = f"http://{self.endpoints[i]}"
            self._spawn(
                [
                    binary,
                    f"--name={name}",
                    f"--data-dir={self.directory / name}",
                    f"--listen-client-urls={client_url}",
                    f"--advertise-client-urls={client_url}",
                    f"--listen-peer-urls={peers[i]}",
                    f"--initial-advertise-peer-urls={peers[i]}",
                    f"--initial-cluster={initial}",
                    "--initial-cluster-token=turnstile-bench",
                    "--initial-cluster-state=new",
                    "--log-level=error",
                    "--logger=zap",
                ],
                f"{name}.log",
            )
        self.wait_for_leader()

    def leader_index(self) -> int | None:
        from turnstile.bench import etcd_api  # noqa: PLC0415 - grpcio-tools only when used

        for index, endpoint in enumerate(self.endpoints):
            if self.processes[index].poll() is not None:
                continue
            status = etcd_api.status(endpoint)
            if status is not None and status.leader and status.leader == status.header.member_id:
                return index
        return None


class ZooKeeperCluster(LocalCluster):
    """Three ZooKeeper 3.8 servers (Debian ``zookeeper``), Debian's default zoo.cfg timing."""

    name = "zookeeper"

    def start(self) -> None:
        java = shutil.which("java")
        if java is None or not ZOOKEEPER_JAR.exists():
            raise SystemUnavailableError(
                f"zookeeper: needs `java` and {ZOOKEEPER_JAR} (apt-get install zookeeper)"
            )
        ports = launcher.free_ports(3 * self.members)
        servers = "\n".join(
            f"server.{i + 1}=127.0.0.1:{ports[3 * i + 1]}:{ports[3 * i + 2]}"
            for i in range(self.members)
        )
        self.endpoints = [f"127.0.0.1:{ports[3 * i]}" for i in range(self.members)]
        for i in range(self.members):
            member_dir = self.directory / f"z{i + 1}"
            (member_dir / "data").mkdir(parents=True)
            (member_dir / "data" / "myid").write_text(f"{i + 1}\n")
            config = member_dir / "zoo.cfg"
            config.write_text(
                f"tickTime={ZOOKEEPER_TICK_MS}\ninitLimit=10\nsyncLimit=5\n"
                f"dataDir={member_dir / 'data'}\nclientPort={ports[3 * i]}\n"
                "clientPortAddress=127.0.0.1\nmaxClientCnxns=0\n"
                "4lw.commands.whitelist=srvr\nadmin.enableServer=false\n"
                f"{servers}\n"
            )
            self._spawn(
                [
                    java,
                    "-Xmx512m",
                    f"-Dzookeeper.log.dir={member_dir}",
                    "-cp",
                    f"{ZOOKEEPER_JAR}:{member_dir}",
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                    str(config),
                ],
                f"z{i + 1}.log",
                cwd=member_dir,
            )
        self.wait_for_leader()

    def leader_index(self) -> int | None:
        for index, endpoint in enumerate(self.endpoints):
            if self.processes[index].poll() is not None:
                continue
            if "Mode: leader" in four_letter_word(endpoint, b"srvr"):
                return index
        return None


def four_letter_word(endpoint: str, word: bytes, timeout: float = 0.5) -> str:
    """ZooKeeper's admin words over the client port; empty on any failure."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.sendall(word)
            chunks = []
            while chunk := conn.recv(4096):
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode("utf-8", "replace")


#: The peers ``--compare`` can start; Turnstile's cluster also takes its durability.
PEER_CLUSTERS: dict[str, type[LocalCluster]] = {
    "etcd": EtcdCluster,
    "zookeeper": ZooKeeperCluster,
}


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` from /proc/PID/stat, in seconds; None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` from /proc/PID/statm; None if it is gone."""
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE")
