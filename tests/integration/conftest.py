"""Fixtures: a real three-node cluster per test, every process stopped by PID afterwards.

A test marked ``shared_cluster`` gets the session's one shared cluster instead of a fresh one
(see ``cluster``): it must use lock, list, group, election and session names no other test
of the whole suite uses (nor a prefix that another test lists by), assert nothing about the
cluster as a whole (every lock, every session, gauges), and leave every node running (it may
move leadership). Anything else gets a cluster of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, running

SHARED = "shared_cluster"

#: The last selected test marked ``shared_cluster`` (set once collection is final): the
#: shared cluster is stopped right after it, not left idling beside the rest of the suite.
_last_shared: list[pytest.Item] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    shared = [item for item in session.items if item.get_closest_marker(SHARED) is not None]
    _last_shared[:] = shared[-1:]


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A started cluster with a serving leader. Fresh for this test; or, for a test marked
    ``shared_cluster``, the session's shared one, and the test fails afterwards if it left a
    node stopped or a node logged a CRITICAL line."""
    if request.node.get_closest_marker(SHARED) is None:
        with running(Cluster(tmp_path / "cluster")) as started:
            yield started
        return
    shared: Cluster = request.getfixturevalue("session_cluster")
    shared.leader(timeout=30)
    yield shared
    stopped = [node.config_path.parent.name for node in shared.nodes if not node.running()]
    assert not stopped, f"a test on the shared cluster stopped {stopped}: it must not be marked"
    critical = shared.critical_lines()
    assert not critical, "a node logged CRITICAL:\n" + "\n".join(critical)
    if _last_shared and request.node is _last_shared[0]:
        shared.close()  # every node stopped by PID now; the session fixture's close is a no-op


@pytest.fixture(scope="session")
def session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's shared cluster: started by the first ``shared_cluster`` test, every node
    stopped by PID after the last one (or at the end of the session, if that one did not run
    to its teardown); a CRITICAL line fails each test it appears in, as well as this teardown.

    One cluster for every module instead of one per module: each start and stop costs 3-5 s
    on a loaded two-core machine."""
    with running(Cluster(tmp_path_factory.mktemp("shared") / "cluster")) as started:
        yield started
