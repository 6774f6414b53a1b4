"""The worked example (docs/examples/work_units.py) with several worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "work_units.py"


@pytest.mark.shared_cluster
def test_workers_process_each_unit_once_and_agree_on_result_ids(cluster: Cluster) -> None:
    units = 40
    workers = [
        subprocess.Popen(
            [
                *(sys.executable, str(EXAMPLE), "--endpoints", ",".join(cluster.addresses)),
                *("--worker", f"w{i}", "--units", str(units)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    lines = []
    try:
        for worker in workers:
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            lines += [json.loads(line) for line in out.splitlines()]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert sorted(r["unit"] for r in lines) == list(range(units)), "each unit exactly once"
    ids_by_key: dict[str, set[int]] = {}
    for record in lines:
        ids_by_key.setdefault(record["key"], set()).add(record["id"])
    assert all(len(ids) == 1 for ids in ids_by_key.values()), ids_by_key
    assert sorted(next(iter(ids)) for ids in ids_by_key.values()) == list(
        range(1, len(ids_by_key) + 1)
    )
    assert sum(r["new"] for r in lines) == len(ids_by_key)
    assert len({r["worker"] for r in lines}) > 1, "the work was shared"
