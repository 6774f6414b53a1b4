"""``turnstile bench --quick``: a real local cluster, client processes, the JSON it prints.

Only the shape of the output and the correctness counters are checked: benchmarks print
numbers, tests never assert wall-clock speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.integration

THROUGHPUT_ROWS = (
    "lock_uncontended",
    "lock_followers",
    "lock_contended",
    "insert_one",
    "insert_batch100",
    "read_linearizable",
    "read_stale",
)


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnstile.cluster", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_quick_bench_prints_every_row_with_zero_violations() -> None:
    """The default mode (fsync); both modes side by side are planned and reported the same
    way (tests/unit/test_bench_durability.py), and a "none" cluster is started by
    tests/integration/test_durability.py."""
    run = bench("--quick", "--json")
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert results["violations"] == 0
    systems = results["systems"]
    assert list(systems) == ["turnstile"]
    assert systems["turnstile"]["durability"] == "fsync"
    check_every_row(systems["turnstile"], results["plan"]["clients"])


def check_every_row(turnstile: dict[str, Any], clients: list[int]) -> None:
    assert turnstile["available"] is True
    rows = turnstile["rows"]
    for name in THROUGHPUT_ROWS:
        for count in clients:
            row = rows[f"{name}@{count}"]
            assert row["ops"] > 0, (name, row)
            assert row["errors"] == 0, (name, row)
            assert row["violations"] == 0, (name, row)
            assert row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    for count in clients:
        for lock_row in ("lock_uncontended", "lock_followers", "lock_contended"):
            assert rows[f"{lock_row}@{count}"]["overlaps"] == 0
            assert rows[f"{lock_row}@{count}"]["token_regressions"] == 0
        assert "leader_cpu_ms_per_op" in rows[f"lock_followers@{count}"]
        for insert_row in ("insert_one", "insert_batch100"):
            row = rows[f"{insert_row}@{count}"]
            assert (row["unstable_ids"], row["shared_ids"], row["double_adds"]) == (0, 0, 0)
            assert 0 < row["duplicate_pct"] <= 50
    failover = next(row for key, row in rows.items() if key.startswith("failover@"))
    assert failover["violations"] == 0
    assert failover["gap_s"] > 0
    assert "first_success_after_kill_s" in failover
    dead = rows["dead_client"]
    assert dead["kill_to_grant_s"] > 0
    assert dead["ttl_s"] > 0
    idle = rows["idle"]
    assert len(idle["idle_cpu_pct_per_node"]) == 3
    assert idle["sessions"] > 0
    assert idle["leader_rss_mb_with_sessions"] > 0
    assert rows["node_logs"]["critical_lines"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compare", "consul"], "--compare: unknown system 'consul'"),
        (["--clients", "many"], "--clients: comma-separated counts"),
        (["--clients", "1"], "--clients: every count must be at least 2"),
        (["--duration", "-3"], "--duration"),
        (["--endpoints", "nohostport"], "--endpoints: host:port"),
        (["--durability", "fsync,sometimes"], "--durability: a comma list of fsync,none"),
        (
            ["--durability", "none", "--endpoints", "127.0.0.1:1"],
            "--durability: cannot be chosen with --endpoints",
        ),
    ],
)
def test_bad_options_are_a_clear_message_and_exit_2(args: list[str], message: str) -> None:
    run = bench(*args, timeout=60)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
