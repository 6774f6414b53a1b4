"""Fixtures: a real three-node cluster per test, every process stopped by PID afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "cluster")
    try:
        running.start_all()
        running.leader(timeout=30)
        yield running
    finally:
        running.close()
    critical = running.critical_lines()
    assert not critical, "a node logged CRITICAL:\n" + "\n".join(critical)
