"""``Elections`` against a stand-in for the pysyncobj internals it reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from turnstile.cluster.elections import PRE_VOTE_RETRY_S, STAGGER_S, Elections

pytestmark = pytest.mark.unit

FOLLOWER, CANDIDATE, LEADER = 0, 1, 2
TIMEOUT_S = (0.5, 1.0)


@dataclass(frozen=True)
class Peer:
    id: str


@dataclass
class Transport:
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._onNodeDisconnectedCallback = lambda node: self.disconnects.append(node.id)

    def send(self, node: Peer, message: dict[str, Any]) -> None:
        self.sent.append((node.id, message))

    def setOnNodeDisconnectedCallback(self, callback: Any) -> None:  # noqa: N802
        self._onNodeDisconnectedCallback = callback


SELF, A, B = Peer("n1"), Peer("n2"), Peer("n3")


class Replica:
    """The pysyncobj fields ``Elections`` touches, with a follower of term 5 led by ``A``."""

    def __init__(self) -> None:
        self._SyncObj__transport = Transport()
        self._SyncObj__raftState = FOLLOWER
        self._SyncObj__raftElectionDeadline = 100.0
        self._SyncObj__transferInProgress = False
        self._SyncObj__raftLeader: Peer | None = A
        self._SyncObj__votedForNodeId: str | None = None
        self._SyncObj__otherNodes = {A, B}
        self._SyncObj__raftLog: list[tuple[bytes, int, int]] = [(b"", 10, 5)]
        self.raftCurrentTerm = 5
        self.selfNode = SELF

    @property
    def transport(self) -> Transport:
        return self._SyncObj__transport


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def replica() -> Replica:
    return Replica()


def elections(replica: Replica, clock: Clock, enabled: bool = True) -> Elections:
    return Elections(
        replica,  # type: ignore[arg-type]
        enabled=lambda: enabled,
        timeout_s=TIMEOUT_S,
        clock=clock,
        rand=lambda: 0.5,
    )


def pre_votes(replica: Replica) -> list[tuple[str, dict[str, Any]]]:
    return [(to, m) for to, m in replica.transport.sent if m["type"] == "pre_vote"]


#: A second past the stand-in's election deadline (100.0).
PAST_DEADLINE = 101.0


def past_the_deadline(replica: Replica, clock: Clock, enabled: bool = True) -> Elections:
    """``Elections`` ticked once a second after the deadline passed."""
    unit = elections(replica, clock, enabled)
    clock.now = PAST_DEADLINE
    unit.before_tick()
    return unit


def reply(unit: Elections, peer: Peer, round_: int, yes: bool) -> None:
    unit.receive(lambda *_: None, peer, {"type": "pre_vote_reply", "round": round_, "yes": yes})


def round_asked(replica: Replica) -> int:
    """The round of the first pre-vote request sent."""
    return int(pre_votes(replica)[0][1]["round"])


def test_a_passed_deadline_asks_for_pre_votes_instead_of_electing(
    replica: Replica, clock: Clock
) -> None:
    past_the_deadline(replica, clock)
    assert replica._SyncObj__raftElectionDeadline == PAST_DEADLINE + 0.75
    asked = pre_votes(replica)
    assert sorted(to for to, _ in asked) == ["n2", "n3"]
    assert asked[0][1] | {"round": 0} == {
        "type": "pre_vote",
        "round": 0,
        "term": 6,
        "last_log_index": 10,
        "last_log_term": 5,
    }


def test_a_deadline_not_yet_passed_changes_nothing(replica: Replica, clock: Clock) -> None:
    unit = elections(replica, clock)
    clock.now = 99.0
    unit.before_tick()
    assert replica._SyncObj__raftElectionDeadline == 100.0
    assert replica.transport.sent == []


def test_a_majority_of_yeses_lets_pysyncobjs_election_run_on_the_next_tick(
    replica: Replica, clock: Clock
) -> None:
    unit = past_the_deadline(replica, clock)
    round_ = round_asked(replica)
    reply(unit, A, round_ - 1, yes=True)
    unit.before_tick()
    assert replica._SyncObj__raftElectionDeadline > clock.now  # a late yes of an old round
    reply(unit, B, round_, yes=True)
    unit.before_tick()
    assert replica._SyncObj__raftElectionDeadline == 0
    assert (unit.rounds, unit.rounds_won) == (1, 1)


def test_a_round_not_won_is_asked_again_soon_not_an_election_timeout_later(
    replica: Replica, clock: Clock
) -> None:
    unit = past_the_deadline(replica, clock)
    round_ = round_asked(replica)
    for peer in (A, B):
        reply(unit, peer, round_, yes=False)
    retry = PRE_VOTE_RETRY_S[0] + (PRE_VOTE_RETRY_S[1] - PRE_VOTE_RETRY_S[0]) * 0.5
    clock.now = PAST_DEADLINE + retry - 0.01
    unit.before_tick()
    assert (unit.rounds, unit.rounds_won) == (1, 0)
    assert replica._SyncObj__raftElectionDeadline == PAST_DEADLINE + 0.75  # pysyncobj waits
    clock.now = PAST_DEADLINE + retry
    unit.before_tick()
    assert unit.rounds == 2
    assert len(pre_votes(replica)) == 4
    unit.receive(lambda *_: None, A, {"type": "append_entries", "term": 5})
    clock.now += 0.5  # past the retry, before the deadline (pysyncobj moves it on heartbeats)
    unit.before_tick()
    assert unit.rounds == 2  # a leader was heard: no more rounds before the deadline


def _answer(unit: Elections, replica: Replica, **message: Any) -> bool:
    replica.transport.sent.clear()
    ask = {"type": "pre_vote", "round": 7, "term": 6, "last_log_index": 10, "last_log_term": 5}
    unit.receive(lambda *_: None, B, ask | message)
    [(to, reply)] = replica.transport.sent
    assert (to, reply["type"], reply["round"]) == ("n3", "pre_vote_reply", 7)
    return bool(reply["yes"])


def test_a_follower_that_hears_its_leader_says_no(replica: Replica, clock: Clock) -> None:
    unit = elections(replica, clock)
    unit.receive(lambda *_: None, A, {"type": "append_entries", "term": 5})
    clock.now = 0.4
    assert not _answer(unit, replica)
    clock.now = 0.5
    assert _answer(unit, replica)


def test_a_pre_vote_needs_a_log_as_up_to_date_and_a_later_term(
    replica: Replica, clock: Clock
) -> None:
    unit = elections(replica, clock)
    replica._SyncObj__raftLeader = None
    assert _answer(unit, replica)
    assert _answer(unit, replica, last_log_index=11)
    assert _answer(unit, replica, last_log_term=6, last_log_index=1)
    assert not _answer(unit, replica, last_log_index=9)
    assert not _answer(unit, replica, last_log_term=4, last_log_index=50)
    assert not _answer(unit, replica, term=5)


def test_a_leader_says_no_and_any_cluster_version_answers(replica: Replica, clock: Clock) -> None:
    """A replica just restarted has applied no cluster version yet: it answers all the same
    (a no would leave the asker without a majority while it elects the old way)."""
    replica._SyncObj__raftLeader = None
    assert _answer(elections(replica, clock, enabled=False), replica)
    replica._SyncObj__raftState = LEADER
    assert not _answer(elections(replica, clock), replica)


def test_an_older_cluster_version_elects_as_pysyncobj_does(replica: Replica, clock: Clock) -> None:
    past_the_deadline(replica, clock, enabled=False)
    assert replica._SyncObj__raftElectionDeadline == 100.0
    assert replica.transport.sent == []


def test_a_transfers_timeout_now_skips_the_pre_vote(replica: Replica, clock: Clock) -> None:
    unit = elections(replica, clock)
    replica._SyncObj__raftElectionDeadline = 0
    replica._SyncObj__transferInProgress = True
    unit.before_tick()
    assert replica._SyncObj__raftElectionDeadline == 0
    assert replica.transport.sent == []


def test_the_leaders_connection_closing_stands_within_the_stagger(
    replica: Replica, clock: Clock
) -> None:
    unit = elections(replica, clock)
    replica.transport._onNodeDisconnectedCallback(B)
    unit.before_tick()
    assert replica.transport.sent == []  # not the leader's connection
    replica.transport._onNodeDisconnectedCallback(A)
    assert replica.transport.disconnects == ["n3", "n2"]  # pysyncobj still hears of both
    clock.now = STAGGER_S * 0.5
    unit.before_tick()
    assert len(pre_votes(replica)) == 2
    assert replica._SyncObj__raftElectionDeadline == clock.now + 0.75
    assert _answer(unit, replica)  # and it says yes to the other follower at once


def test_refusing_a_vote_with_the_better_log_stands_at_once(replica: Replica, clock: Clock) -> None:
    unit = elections(replica, clock)

    def pysyncobj_refuses(_node: Any, message: dict[str, Any]) -> None:
        replica.raftCurrentTerm = message["term"]
        replica._SyncObj__raftLeader = None

    behind = {"type": "request_vote", "term": 6, "last_log_index": 9, "last_log_term": 5}
    unit.receive(pysyncobj_refuses, B, behind)
    unit.before_tick()
    [(_, asked), _] = pre_votes(replica)
    assert asked["term"] == 7


def test_a_granted_vote_does_not_stand(replica: Replica, clock: Clock) -> None:
    unit = elections(replica, clock)

    def pysyncobj_grants(node: Peer, message: dict[str, Any]) -> None:
        replica.raftCurrentTerm = message["term"]
        replica._SyncObj__votedForNodeId = node.id

    unit.receive(pysyncobj_grants, B, {"type": "request_vote", "term": 6, "last_log_index": 10})
    unit.before_tick()
    assert replica.transport.sent == []


def test_of_two_candidates_with_equal_logs_the_greater_id_stands_again(
    replica: Replica, clock: Clock
) -> None:
    replica._SyncObj__raftState = CANDIDATE
    replica._SyncObj__votedForNodeId = SELF.id
    equal = {"type": "request_vote", "term": 5, "last_log_index": 10, "last_log_term": 5}
    lower, higher = Peer("n0"), Peer("n9")
    unit = elections(replica, clock)
    unit.receive(lambda *_: None, higher, equal)
    unit.before_tick()
    assert replica.transport.sent == []
    unit.receive(lambda *_: None, lower, equal)
    unit.before_tick()
    assert len(pre_votes(replica)) == 2
