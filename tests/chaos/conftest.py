"""Fixtures: a chaos cluster on loopback or in network namespaces, and a run against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.faults import ChaosCluster
from tests.chaos.harness import ChaosRun
from tests.chaos.net import Network, NetworkUnavailableError

Start = Callable[..., ChaosRun]


@pytest.fixture
def network() -> Iterator[Network]:
    """A bridge for per-node namespaces; skips (saying why) where they cannot be made."""
    net = Network()
    try:
        net.create()
    except NetworkUnavailableError as error:
        net.destroy()
        pytest.skip(f"partition scenarios need network namespaces, veth and iptables: {error}")
    try:
        yield net
    finally:
        net.destroy()


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Start]:
    """``start_run(network=None, fencing=True, load=False, **cluster_options)``: a started
    cluster with a serving leader, and a run on it (with ``load``, the standard load already
    making progress); all stopped by PID afterwards."""
    made: list[tuple[ChaosCluster, ChaosRun]] = []

    def start(
        network: Network | None = None, fencing: bool = True, load: bool = False, **options: object
    ) -> ChaosRun:
        cluster = ChaosCluster(tmp_path / f"cluster{len(made)}", network, **options)  # type: ignore[arg-type]
        run = ChaosRun(cluster, tmp_path / f"run{len(made)}", fencing=fencing)
        made.append((cluster, run))
        cluster.start_all()
        cluster.leader()
        if load:
            run.start_standard_load()
            run.wait_for_progress(20)
        return run

    try:
        yield start
    finally:
        for cluster, run in made:
            run.close()
            cluster.close()
    for cluster, _ in made:
        critical = cluster.critical_lines()
        assert not critical, "a node logged CRITICAL:\n" + "\n".join(critical)
