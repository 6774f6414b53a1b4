"""Fixtures: a real three-node cluster per test, every process stopped by PID afterwards.

A test marked ``shared_cluster`` gets its module's one cluster instead of a fresh one (see
``cluster``): it must use lock, list and session names no other test of the module uses,
assert nothing about the cluster as a whole (every lock, every session, gauges), and leave
every node running (it may move leadership). Anything else gets a cluster of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, running

SHARED = "shared_cluster"


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A started cluster with a serving leader. Fresh for this test; or, for a test marked
    ``shared_cluster``, the module's shared one, and the test fails afterwards if it left a
    node stopped or a node logged a CRITICAL line."""
    if request.node.get_closest_marker(SHARED) is None:
        with running(Cluster(tmp_path / "cluster")) as started:
            yield started
        return
    shared: Cluster = request.getfixturevalue("module_cluster")
    shared.leader(timeout=30)
    yield shared
    stopped = [node.config_path.parent.name for node in shared.nodes if not node.running()]
    assert not stopped, f"a test on the shared cluster stopped {stopped}: it must not be marked"
    critical = shared.critical_lines()
    assert not critical, "a node logged CRITICAL:\n" + "\n".join(critical)


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The module's shared cluster: started by its first ``shared_cluster`` test, every node
    stopped by PID after the module's last test (a CRITICAL line fails that test too)."""
    with running(Cluster(tmp_path_factory.mktemp("shared") / "cluster")) as started:
        yield started
