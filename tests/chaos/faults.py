"""Every fault the chaos suite injects, as verbs on one cluster object.

Process faults (kill -9, restart, SIGSTOP/SIGCONT, whole-cluster and rolling restarts,
membership changes) work anywhere. Partitions need ``net.Network``: then each node runs in its
own network namespace with its own address. A node's clock can run fast: see ``fastclock``.
Every fault is logged with its start and end (monotonic), for the liveness check.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.net import Network
from tests.integration.cluster import critical_lines, stop_together, wait_until
from turnstile.cluster.config import NodeConfig, config_to_toml
from turnstile.cluster.launcher import (
    CONFIG_NAME,
    NodeProcess,
    free_ports,
    node_status,
    read_config,
    write_cluster,
)
from turnstile.cluster.limits import Limits
from turnstile.cluster.peers import Peer
from turnstile.v1 import turnstile_pb2 as pb

FASTCLOCK = Path(__file__).parent / "fastclock"


@dataclass(frozen=True)
class Fault:
    """One injected fault: ``start`` to ``end`` (when it was healed), on the monotonic clock."""

    kind: str
    target: str
    start: float
    end: float


@dataclass
class ChaosCluster:
    """A real cluster of ``turnstile serve`` processes, each stopped by PID in ``close``."""

    directory: Path
    network: Network | None = None
    size: int = 3
    #: node index -> clock rate (3.0: that node's clock runs three times fast).
    clock_rates: dict[int, float] = field(default_factory=dict)
    limits: Limits | None = None
    #: Extra environment variables for every node (e.g. a test switch for a control run).
    env: dict[str, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        hosts = None
        if self.network is not None:
            hosts = [self.network.add_host(f"n{i + 1}") for i in range(self.size)]
        paths = write_cluster(self.directory, self.size, limits=self.limits, hosts=hosts)
        self.configs: list[NodeConfig] = [read_config(p) for p in paths]
        self.nodes = [self._process(p, i) for i, p in enumerate(paths)]

    def _process(self, path: Path, index: int) -> NodeProcess:
        prefix = self.network.prefix(f"n{index + 1}") if self.network else ()
        env = dict(self.env)
        if index in self.clock_rates:
            env |= {
                "PYTHONPATH": os.pathsep.join([str(FASTCLOCK), *sys.path]),
                "TURNSTILE_CHAOS_CLOCK_RATE": str(self.clock_rates[index]),
            }
        return NodeProcess(path, prefix=prefix, env=env)

    # ------------------------------------------------------------------ looking

    @property
    def addresses(self) -> list[str]:
        return [c.client_address for c in self.configs]

    def name(self, index: int) -> str:
        return self.configs[index].node_id

    def leader(self, timeout: float = 30.0, exclude: int | None = None) -> int:
        """Index of the node that says it leads (not ``exclude``), waiting for one."""

        def leading() -> int | None:
            claims = []
            for index, address in enumerate(self.addresses):
                if index == exclude or not self.nodes[index].running():
                    continue
                status = node_status(address, timeout=0.5)
                if status is not None and status.role == pb.ROLE_LEADER:
                    claims.append((status.header.term, index))
            # A cut-off old leader may still claim the role: the newest term is the leader.
            return max(claims)[1] + 1 if claims else None

        return wait_until(leading, timeout) - 1

    def follower(self, leader: int) -> int:
        return next(i for i in range(len(self.nodes)) if i != leader and self.nodes[i].running())

    def wait_caught_up(self, index: int, timeout: float = 60.0) -> None:
        """Until node ``index`` has applied what the leader had committed when asked."""
        target = node_status(self.addresses[self.leader()], timeout=2)
        assert target is not None
        wait_until(
            lambda: (
                (s := node_status(self.addresses[index], timeout=1)) is not None
                and s.header.applied_index >= target.commit_index
            ),
            timeout,
        )

    # ------------------------------------------------------------------ recording

    @contextmanager
    def fault(self, kind: str, target: str) -> Iterator[None]:
        """Logs the fault from the start of the block to its end (the heal)."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.faults.append(Fault(kind, target, start, time.monotonic()))

    # ------------------------------------------------------------------ process faults

    def start_all(self) -> None:
        for node in self.nodes:
            node.start()

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        self.nodes[index].start()

    def pause(self, index: int) -> None:
        self._signal(index, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        self._signal(index, signal.SIGCONT)

    def _signal(self, index: int, signum: signal.Signals) -> None:
        process = self.nodes[index].process
        assert process is not None, f"node {self.name(index)} is not running"
        process.send_signal(signum)

    def kill_all(self) -> None:
        for node in self.nodes:
            node.kill()

    def rolling_restart(self) -> None:
        """Each node in turn: stop cleanly, start, wait until it has caught up."""
        for index, node in enumerate(self.nodes):
            with self.fault("rolling restart", self.name(index)):
                node.stop()
                node.start()
                self.wait_caught_up(index)

    # ------------------------------------------------------------------ membership

    def add_member(self) -> int:
        """Writes a config for a new node, adds it through the admin CLI, starts it and waits
        until it has caught up; returns its index."""
        index = len(self.nodes)
        node_id = f"n{index + 1}"
        host = self.network.add_host(node_id) if self.network else "127.0.0.1"
        peer_port, client_port = free_ports(2)
        peer = Peer(node_id, f"{host}:{peer_port}", f"{host}:{client_port}")
        config = dataclasses.replace(
            self.configs[0],
            node_id=node_id,
            peer_address=peer.peer_address,
            client_address=peer.client_address,
            data_dir=(self.directory / node_id / "data").resolve(),
            metrics_address="",
            peers=(*self.configs[0].peers, peer),
        )
        (self.directory / node_id).mkdir()
        path = self.directory / node_id / CONFIG_NAME
        path.write_text(config_to_toml(config), encoding="utf-8")
        self.admin("members", "add", node_id, peer.peer_address, peer.client_address)
        self.configs.append(config)
        self.nodes.append(self._process(path, index))
        self.nodes[index].start()
        self.wait_caught_up(index)
        return index

    def remove_member(self, index: int) -> None:
        """Removes node ``index`` through the admin CLI (moving leadership off it first),
        then stops its process."""
        self.move_leadership(away_from=index)
        self.admin("members", "remove", self.name(index))
        self.nodes[index].stop()

    def move_leadership(self, to: int | None = None, away_from: int | None = None) -> None:
        """Transfers leadership (to node ``to``, or off node ``away_from``) through the admin
        CLI, asking again until it sticks: under load a target may lose the election it was
        told to start, when another node's log got ahead meanwhile."""

        def moved() -> bool:
            leader = self.leader()
            if leader == to or (to is None and leader != away_from):
                return True
            target = () if to is None else (self.name(to),)
            self.admin("leader", "transfer", *target, check=False)
            return False

        wait_until(moved, timeout=60, interval=1.0)

    def admin(self, *arguments: str, check: bool = True) -> str:
        """Runs ``turnstile ARGUMENTS`` against this cluster; unless ``check`` is False, fails
        the test if it fails."""
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "turnstile.cluster",
                *arguments,
                "--endpoints",
                ",".join(a for a, n in zip(self.addresses, self.nodes, strict=True) if n.running()),
                "--timeout",
                "20",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert not check or result.returncode == 0, f"turnstile {arguments}: {result.stderr}"
        return result.stdout

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        """Resumes paused nodes, heals the network, stops every node by PID."""
        for node in self.nodes:
            if node.running():
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)
        if self.network is not None:
            self.network.heal()
        stop_together(self.nodes)

    def critical_lines(self) -> list[str]:
        return critical_lines(self.nodes)
