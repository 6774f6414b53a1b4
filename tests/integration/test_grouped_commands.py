"""Grouped log entries on real pysyncobj replicas: commands submitted together share an entry,
every replica applies each of them in order, and each submitter gets its own result."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import wait_until
from tests.integration.replicas import replicas
from turnstile.cluster.codec import encode_command
from turnstile.cluster.commands import Tick
from turnstile.cluster.raft import SUCCESS
from turnstile.cluster.state import Applied

pytestmark = pytest.mark.integration


def test_commands_submitted_together_share_entries_and_keep_their_own_results(
    tmp_path: Path,
) -> None:
    nodes = replicas(tmp_path)
    commands = 500
    outcomes: dict[int, tuple[Any, int]] = {}
    done = threading.Semaphore(0)
    try:
        for node in nodes:
            node.start()
        leader = wait_until(lambda: next((n for n in nodes if n.is_leader), None), timeout=20)
        before = leader.replica._SyncObj__getCurrentLogIndex()  # pysyncobj internal

        def answer(i: int) -> Any:
            def record(result: Any, error: int) -> None:
                outcomes[i] = (result, error)
                done.release()

            return record

        base = leader.read(lambda s: s.clock) + 1
        for i in range(commands):
            leader.submit(encode_command(Tick(base + i)), answer(i), leader.term)
        for _ in range(commands):
            assert done.acquire(timeout=60)
        entries = leader.replica._SyncObj__getCurrentLogIndex() - before  # pysyncobj internal
        wait_until(lambda: all(n.applied_index >= leader.commit_index for n in nodes), timeout=20)
        clocks = {n.read(lambda s: s.clock) for n in nodes}
    finally:
        for node in nodes:
            node.stop()
    assert all(error == SUCCESS for _result, error in outcomes.values())
    assert all(isinstance(result, Applied) for result, _error in outcomes.values())
    assert entries < commands  # grouped: fewer entries than commands
    # Every replica applied every command: its log clock is the last (largest) Tick.
    assert clocks == {base + commands - 1}
