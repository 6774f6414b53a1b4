"""Elections on a real three-process cluster: pre-vote keeps a resumed follower from deposing a
healthy leader, and a client with a 2 s session TTL rides out leader kills and pauses.

Fault rounds: a few in CI; ``TURNSTILE_CHAOS_SECONDS=N`` repeats them for N seconds.
"""

from __future__ import annotations

import itertools
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.chaos.harness import rounds
from tests.integration.cluster import Cluster, metric, running, wait_until
from turnstile.client import Client, SessionState
from turnstile.cluster.elections import PRE_VOTE_VERSION
from turnstile.cluster.launcher import NodeProcess, node_status
from turnstile.cluster.test_switches import PROTOCOL_VERSION_ENV

pytestmark = pytest.mark.integration

#: Longer than the longest election timeout (1 s), and than the leader's connection timeout
#: (2 s), so the paused follower's deadline has passed and it has lost its connections.
FOLLOWER_PAUSE_S = 2.5
#: Twice the session TTL: a session survives only if its keep-alives reached the new leader.
SESSION_TTL_S = 2.0
LEADER_PAUSE_S = 2 * SESSION_TTL_S


def _pre_vote_on(cluster: Cluster) -> None:
    """Waits until the leader raised the cluster version to one with pre-vote (at once to this
    build's, every member running it)."""

    def raised(node: NodeProcess) -> bool:
        found = re.findall(r"cluster version raised to (\d+)", node.log_path.read_text())
        return any(int(version) >= PRE_VOTE_VERSION for version in found)

    wait_until(lambda: any(raised(n) for n in cluster.nodes), timeout=30)


def _follows_a_leader(cluster: Cluster, node: NodeProcess) -> bool:
    address = cluster.configs[cluster.nodes.index(node)].client_address
    status = node_status(address, timeout=0.5, credentials=cluster.credentials)
    return status is not None and status.healthy and bool(status.header.leader_id)


def _term(cluster: Cluster, address: str) -> int:
    status = node_status(address, timeout=2, credentials=cluster.credentials)
    assert status is not None, f"{address} does not answer"
    return int(status.header.term)


@pytest.mark.parametrize("pre_vote", [True, False], ids=["pre-vote", "control-version-2"])
def test_a_follower_resumed_after_its_election_timeout_deposes_no_leader(
    tmp_path: Path, pre_vote: bool
) -> None:
    """A follower stopped past its election timeout comes back with its deadline passed. With
    pre-vote the others, who still hear the leader, refuse it and the leader stays in its
    term; the control (every node at protocol version 2: no pre-vote) is deposed by the
    follower's higher term (4 of 4 rounds when measured)."""
    cluster = Cluster(tmp_path)
    if not pre_vote:
        cluster.nodes = [NodeProcess(p, env={PROTOCOL_VERSION_ENV: "2"}) for p in cluster.paths]
    deposed = []
    with running(cluster):
        if pre_vote:
            _pre_vote_on(cluster)
        for _ in rounds(1):
            leader = cluster.leader(timeout=30)
            term = _term(cluster, leader)
            follower = cluster.nodes[cluster.index_of(cluster.followers(leader)[0])]
            assert follower.process is not None
            follower.process.send_signal(signal.SIGSTOP)
            time.sleep(FOLLOWER_PAUSE_S)  # the fault itself: a follower stopped this long
            follower.process.send_signal(signal.SIGCONT)
            wait_until(
                lambda f=follower: (
                    node_status(
                        cluster.configs[cluster.nodes.index(f)].client_address,
                        timeout=0.5,
                        credentials=cluster.credentials,
                    )
                    is not None
                ),
                timeout=20,
            )
            time.sleep(1.5)  # what the follower does within an election timeout of resuming
            now_leader = cluster.leader(timeout=30)
            deposed.append((now_leader, _term(cluster, now_leader)) != (leader, term))
            if pre_vote:
                asked, won = _pre_vote_rounds(cluster, cluster.nodes.index(follower))
                assert asked >= 1 and won == 0, "the follower asked and was refused"
    if pre_vote:
        assert not any(deposed)
    else:
        assert any(deposed)


def _pre_vote_rounds(cluster: Cluster, index: int) -> tuple[int, int]:
    """(asked, won) from node ``index``'s /metrics."""
    text = cluster.metrics(cluster.addresses[index])
    asked, won = (
        int(metric(text, "turnstile_raft_pre_vote_rounds_total", f'result="{result}"'))
        for result in ("asked", "won")
    )
    return asked, won


@dataclass
class _Hold:
    worker: int
    name: str
    token: int
    start: float
    end: float


@dataclass
class _Workers:
    """Lock-pair workers, each its own client with a 2 s session TTL, on two shared locks;
    records every hold as its worker saw it, and every session that was lost."""

    cluster: Cluster
    count: int = 4
    holds: list[_Hold] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(self.count)
        ]

    def __enter__(self) -> _Workers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def done(self) -> int:
        with self._lock:
            return len(self.holds)

    def _lost(self, worker: int, state: SessionState) -> None:
        if state is SessionState.LOST and not self._stop.is_set():  # not the close at the end
            self.lost.append(worker)

    def _run(self, worker: int) -> None:
        # Each worker starts at another node: the clients of a follower ride the faults
        # through its forwarding, those of the leader by going to another node.
        addresses = self.cluster.addresses
        start = worker % len(addresses)
        client = Client(
            addresses[start:] + addresses[:start],
            session_ttl=SESSION_TTL_S,
            credentials=self.cluster.credentials,
            name=f"worker-{worker}",
        )
        try:
            session = client.session()
            session.add_listener(lambda state: self._lost(worker, state))
            n = 0
            while not self._stop.is_set():
                name = f"shared-{n % 2}"
                n += 1
                try:
                    with client.lock(name) as lock:
                        start = time.monotonic()
                        token = lock.token
                        time.sleep(0.002)  # the work unit
                        end = time.monotonic()
                except Exception as error:  # recorded; the test fails on any
                    self.errors.append(f"worker {worker}: {error!r}")
                    continue
                assert token is not None
                with self._lock:
                    self.holds.append(_Hold(worker, name, token, start, end))
        finally:
            client.close()


def _overlapping(holds: list[_Hold]) -> Iterator[tuple[_Hold, _Hold]]:
    """Two holds of one lock that their workers believed they had at the same time."""
    by_start = sorted(holds, key=lambda h: (h.name, h.start))
    for before, after in itertools.pairwise(by_start):
        if before.name == after.name and after.start < before.end:
            yield before, after


def test_a_client_with_a_two_second_ttl_keeps_its_session_through_leader_kills_and_pauses(
    tmp_path: Path,
) -> None:
    """Leader killed (kill -9, restarted) and leader stopped for twice the TTL: every worker
    keeps its one session, pairs complete while the old leader is still stopped, no two
    workers believed they held a lock at once, and each lock's tokens rise in hold order."""
    cluster = Cluster(tmp_path)
    with running(cluster):
        _pre_vote_on(cluster)
        with _Workers(cluster) as workers:
            wait_until(lambda: workers.done > 20, timeout=30)
            for _ in rounds(1):
                for fault in ("kill", "pause"):
                    node = cluster.nodes[cluster.index_of(cluster.leader(timeout=30))]
                    assert node.process is not None
                    before = workers.done
                    if fault == "kill":
                        node.process.kill()
                        node.process.wait()
                        wait_until(lambda b=before: workers.done > b + 10, timeout=10)
                        node.start()
                        # Back in the cluster before the next fault: two nodes down at once
                        # leave no majority, which no system rides out.
                        wait_until(lambda n=node: _follows_a_leader(cluster, n), timeout=30)
                    else:
                        paused_at = time.monotonic()
                        node.process.send_signal(signal.SIGSTOP)
                        wait_until(lambda b=before: workers.done > b + 10, timeout=10)
                        time.sleep(max(0.0, paused_at + LEADER_PAUSE_S - time.monotonic()))
                        node.process.send_signal(signal.SIGCONT)
                    cluster.leader(timeout=30)
                    wait_until(lambda b=workers.done: workers.done > b + 10, timeout=30)
    assert workers.errors == []
    assert workers.lost == []
    assert list(_overlapping(workers.holds)) == []
    for name in {h.name for h in workers.holds}:
        tokens = [h.token for h in sorted(workers.holds, key=lambda h: h.start) if h.name == name]
        assert tokens == sorted(set(tokens)), f"{name}: tokens out of hold order"
