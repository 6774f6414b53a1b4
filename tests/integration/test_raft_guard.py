"""The nextIndex guard: without it pysyncobj truncates already-applied entries under load.

Three real pysyncobj replicas in this process, on loopback, with journals on disk. Non-batch
mode puts many AppendEntries in flight per follower, which makes late acks (and so the
CRITICAL "truncating already-applied log entries") common; the guard must make it zero.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import wait_until
from turnstile.cluster.commands import Tick, encode_command
from turnstile.cluster.launcher import free_port
from turnstile.cluster.raft import SUCCESS, RaftNode, RaftOptions

pytestmark = pytest.mark.integration

COMMANDS = 5000
ATTEMPTS = 5


class _CriticalCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.CRITICAL)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def critical() -> Iterator[_CriticalCounter]:
    counter = _CriticalCounter()
    logger = logging.getLogger("pysyncobj")
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)


def _load(directory: Path, guard: bool, batch: bool, commands: int) -> list[int]:
    """Runs ``commands`` proposals in flight at once; returns each replica's applied index."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    nodes = [
        RaftNode(
            RaftOptions(
                self_address=address,
                other_addresses=tuple(a for a in addresses if a != address),
                data_dir=str(directory / str(i)),
                password="guard-test-password",
                next_index_guard=guard,
                batch=batch,
            )
        )
        for i, address in enumerate(addresses)
    ]
    try:
        for node in nodes:
            node.start()
        leader = wait_until(lambda: next((n for n in nodes if n.is_leader), None), timeout=20)
        done = threading.Semaphore(0)
        failures: list[int] = []

        def finished(_result: object, error: int) -> None:
            if error != SUCCESS:
                failures.append(error)
            done.release()

        for i in range(commands):
            leader.submit(encode_command(Tick(i)), finished)
        for _ in range(commands):
            assert done.acquire(timeout=60)
        assert not failures
        target = leader.applied_index
        wait_until(lambda: all(n.applied_index >= target for n in nodes), timeout=20)
        return [n.applied_index for n in nodes]
    finally:
        for node in nodes:
            node.stop()


def test_without_the_guard_followers_truncate_applied_entries(
    tmp_path: Path, critical: _CriticalCounter
) -> None:
    # The defect needs a late ack to land in a narrow window; a few rounds make it show.
    for attempt in range(1, ATTEMPTS + 1):
        _load(tmp_path / str(attempt), guard=False, batch=False, commands=COMMANDS)
        if critical.messages:
            break
    print(f"without guard: {len(critical.messages)} CRITICAL lines in {attempt} x {COMMANDS}")
    assert critical.messages
    assert all("truncating already-applied" in m for m in critical.messages)


def test_with_the_guard_no_entry_is_truncated(tmp_path: Path, critical: _CriticalCounter) -> None:
    _load(tmp_path / "unbatched", guard=True, batch=False, commands=COMMANDS)
    _load(tmp_path / "batched", guard=True, batch=True, commands=4 * COMMANDS)
    print(f"with guard: {len(critical.messages)} CRITICAL lines")
    assert critical.messages == []
