"""Leadership transfer under load, on three real pysyncobj replicas in this process.

A transfer is asked for once per round, while a submitter keeps commands in flight on
whichever replica leads. It counts as done when its target leads within a few election
timeouts; pysyncobj may deny the request while the target is a few entries behind, so the
request itself is repeated until pysyncobj sent it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.integration.cluster import wait_until
from tests.integration.replicas import replicas
from turnstile.cluster.codec import encode_command
from turnstile.cluster.commands import Tick
from turnstile.cluster.raft import SUCCESS, RaftNode

ROUNDS = 3
#: Long enough that the submitter's load starves no loop into an election of its own.
ELECTION_TIMEOUT_S = (1.0, 2.0)
#: Commands the submitter keeps in flight.
IN_FLIGHT = 32


class _Submitter:
    """Keeps ``IN_FLIGHT`` Ticks proposed on the current leader until stopped."""

    def __init__(self, nodes: list[RaftNode]) -> None:
        self._nodes = nodes
        self._slots = threading.Semaphore(IN_FLIGHT)
        self._stop = threading.Event()
        self.committed = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Submitter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _finished(self, _result: object, error: int) -> None:
        if error == SUCCESS:
            self.committed += 1
        self._slots.release()

    def _run(self) -> None:
        count = 0
        while not self._stop.is_set():
            leader = next((n for n in self._nodes if n.is_leader), None)
            if leader is None or not self._slots.acquire(timeout=0.1):
                time.sleep(0.01)
                continue
            count += 1
            leader.submit(encode_command(Tick(count)), self._finished, leader.term)


def _ask_transfer(leader: RaftNode, target: RaftNode) -> None:
    """Asks ``leader`` to hand over to ``target`` until pysyncobj sent the request."""

    def sent() -> bool:
        answers: list[int] = []
        answered = threading.Event()

        def answer(_result: object, error: int) -> None:
            answers.append(error)
            answered.set()

        leader.transfer_leadership(target.options.self_address, answer)
        answered.wait(5)
        return answers == [SUCCESS]

    wait_until(sent, timeout=20, interval=0.02)


def _transfers_that_land(directory: Path, quiet_transfer: bool) -> tuple[int, int]:
    """(transfers whose target led within two election timeouts, commands committed meanwhile)."""
    nodes = replicas(
        directory,
        election_timeout_min_s=ELECTION_TIMEOUT_S[0],
        election_timeout_max_s=ELECTION_TIMEOUT_S[1],
        quiet_transfer=quiet_transfer,
        durable=False,
    )
    landed = 0
    try:
        for node in nodes:
            node.start()
        with _Submitter(nodes) as submitter:
            for _ in range(ROUNDS):
                leader = wait_until(lambda: next((n for n in nodes if n.is_leader), None), 30)
                wait_until(lambda: submitter.committed > 0, timeout=30)
                target = next(n for n in nodes if n is not leader)
                _ask_transfer(leader, target)
                deadline = time.monotonic() + 2 * ELECTION_TIMEOUT_S[1]
                while time.monotonic() < deadline and not target.is_leader:
                    time.sleep(0.02)
                landed += target.is_leader
            committed = submitter.committed
    finally:
        for node in nodes:
            node.stop()
    return landed, committed


@pytest.mark.integration
@pytest.mark.parametrize("quiet_transfer", [False, True])
def test_a_transfer_under_load_hands_leadership_to_its_target(
    tmp_path: Path, quiet_transfer: bool
) -> None:
    """With ``QuietTransfer`` every transfer lands on its target; without it, the old
    leader's log runs ahead of the target's vote request, and it wins most of the elections
    the transfer set off."""
    landed, committed = _transfers_that_land(tmp_path, quiet_transfer)
    assert committed > 0
    if quiet_transfer:
        assert landed == ROUNDS
    else:
        assert landed < ROUNDS
