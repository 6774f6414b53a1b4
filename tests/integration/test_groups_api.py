"""Groups, elections and watches over the wire, on a real three-node cluster.

The raw API (``WireClient``), so these hold for any client: a watch long-poll is woken by the
change it waits for, a blocked campaign is answered by the hand-off, a leadership and the
watch revisions survive a leader kill, and bad input gets a clear status.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.cluster import Cluster, WireClient, error_reason, running, wait_until
from turnstile.cluster.launcher import NodeProcess
from turnstile.cluster.test_switches import PROTOCOL_VERSION_ENV
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.integration

#: Longer than the test waits for an answer: a poll that answers was woken, not timed out.
LONG_POLL_MS = 120_000
ANSWER_WITHIN_S = 40


def group_key(name: str) -> pb.WatchKey:
    return pb.WatchKey(kind=pb.WATCH_GROUP, name=name)


def election_key(name: str) -> pb.WatchKey:
    return pb.WatchKey(kind=pb.WATCH_ELECTION, name=name)


def clients(cluster: Cluster, *names: str) -> list[WireClient]:
    leader = cluster.leader()
    # Sessions outlive the longest wait here: the test sends no keep-alives.
    opened = [WireClient(cluster, leader, name=n, ttl_ms=300_000).open() for n in names]
    # Groups need cluster version 5, raised once every member has reported its protocol.
    wait_until(lambda: _cluster_version_is_5(opened[0]), timeout=30)
    return opened


def _cluster_version_is_5(client: WireClient) -> bool:
    try:
        client.call("groups", "List", pb.ListGroupsRequest())
    except grpc.RpcError as error:
        if error_reason(error) is Reason.FAILED_PRECONDITION:
            return False
        raise
    return True


def campaign(client: WireClient, name: str, member_id: str) -> pb.CampaignResponse:
    request = pb.CampaignRequest(request=client.request_id(), name=name, member_id=member_id)
    response: pb.CampaignResponse = client.call("elections", "Campaign", request)
    return response


def in_thread(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["answer"] = call()
        except grpc.RpcError as error:
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


@pytest.mark.shared_cluster
def test_a_long_poll_wakes_on_the_change_and_a_blocked_campaign_on_the_hand_off(
    cluster: Cluster,
) -> None:
    a, b = clients(cluster, "a", "b")
    a.call("groups", "Create", pb.CreateGroupRequest(request=a.request_id(), name="poll"))
    described = a.call("groups", "Describe", pb.DescribeGroupRequest(name="poll"))
    assert list(described.group.members) == []

    watching, box = in_thread(
        lambda: b.call(
            "watches",
            "Watch",
            pb.WatchRequest(
                keys=[group_key("poll")], after_revision=described.revision, wait_ms=LONG_POLL_MS
            ),
            timeout=LONG_POLL_MS / 1000 + 10,
        )
    )
    joined = a.call(
        "groups",
        "Join",
        pb.JoinGroupRequest(request=a.request_id(), name="poll", member_id="a1", capabilities=b"x"),
    )
    assert joined.joined
    watching.join(timeout=ANSWER_WITHIN_S)
    assert not watching.is_alive(), "the long poll was not woken by the join"
    answer = box["answer"]
    assert [(c.type, c.member_id, c.session_id, c.capabilities) for c in answer.changes] == [
        (pb.CHANGE_JOINED, "a1", a.session, b"x")
    ]
    assert answer.revision == answer.changes[0].revision > described.revision

    first = a.call(
        "elections",
        "Campaign",
        pb.CampaignRequest(request=a.request_id(), name="boss", member_id="a1"),
    )
    assert (first.elected, first.position) == (True, 1)
    campaigning, box = in_thread(
        lambda: b.call(
            "elections",
            "Campaign",
            pb.CampaignRequest(
                request=b.request_id(), name="boss", member_id="b1", wait_ms=LONG_POLL_MS
            ),
            timeout=LONG_POLL_MS / 1000 + 10,
        )
    )
    wait_until(lambda: _candidates(a, "boss") == ["a1", "b1"])
    a.call("sessions", "Close", pb.CloseSessionRequest(session_id=a.session))
    campaigning.join(timeout=ANSWER_WITHIN_S)
    assert not campaigning.is_alive(), "the blocked campaign was not answered by the hand-off"
    second = box["answer"]
    assert (second.elected, second.position) == (True, 1) and second.token > first.token

    after = b.call(
        "watches",
        "Watch",
        pb.WatchRequest(
            keys=[group_key("poll"), election_key("boss")], after_revision=answer.revision
        ),
    )
    assert [(c.kind, c.type, c.member_id, c.cause) for c in after.changes] == [
        (pb.WATCH_ELECTION, pb.CHANGE_ELECTED, "a1", ""),
        (pb.WATCH_GROUP, pb.CHANGE_LEFT, "a1", "session_closed"),
        (pb.WATCH_ELECTION, pb.CHANGE_RESIGNED, "a1", "session_closed"),
        (pb.WATCH_ELECTION, pb.CHANGE_ELECTED, "b1", ""),
    ]
    assert [c.token for c in after.changes if c.type == pb.CHANGE_ELECTED] == [
        first.token,
        second.token,
    ]


def _candidates(client: WireClient, name: str) -> list[str]:
    info = client.call("elections", "Describe", pb.DescribeElectionRequest(name=name)).election
    return [c.member_id for c in ([info.leader] if info.HasField("leader") else [])] + [
        c.member_id for c in info.candidates
    ]


def test_a_leadership_and_the_watch_revisions_survive_a_leader_kill(cluster: Cluster) -> None:
    (a,) = clients(cluster, "a")
    a.call("groups", "Create", pb.CreateGroupRequest(request=a.request_id(), name="g"))
    start = a.call("groups", "Describe", pb.DescribeGroupRequest(name="g")).revision
    a.call("groups", "Join", pb.JoinGroupRequest(request=a.request_id(), name="g", member_id="m1"))
    elected = a.call(
        "elections",
        "Campaign",
        pb.CampaignRequest(request=a.request_id(), name="e", member_id="m1"),
    )
    before = a.call(
        "watches",
        "Watch",
        pb.WatchRequest(keys=[group_key("g"), election_key("e")], after_revision=start),
    )
    old_leader = cluster.leader()
    cluster.nodes[cluster.index_of(old_leader)].kill()
    cluster.leader(exclude=old_leader, timeout=30)
    a.keep_alive()
    a.call("groups", "Join", pb.JoinGroupRequest(request=a.request_id(), name="g", member_id="m2"))
    after = a.call(
        "watches",
        "Watch",
        pb.WatchRequest(keys=[group_key("g"), election_key("e")], after_revision=start),
    )
    # The new leader numbers the changes as the old one did: the same history, then the join.
    assert list(after.changes)[: len(before.changes)] == list(before.changes)
    assert [(c.type, c.member_id) for c in after.changes[len(before.changes) :]] == [
        (pb.CHANGE_JOINED, "m2")
    ]
    again = a.call(
        "elections",
        "Campaign",
        pb.CampaignRequest(request=a.request_id(), name="e", member_id="m1"),
    )
    assert (again.elected, again.token) == (True, elected.token)


@pytest.mark.shared_cluster
@pytest.mark.parametrize(
    ("request_", "reason", "words"),
    [
        (pb.WatchRequest(), Reason.INVALID_ARGUMENT, "keys must not be empty"),
        (
            pb.WatchRequest(keys=[pb.WatchKey(name="g")]),
            Reason.INVALID_ARGUMENT,
            "key 0 has no valid kind",
        ),
        (
            pb.WatchRequest(keys=[pb.WatchKey(kind=pb.WATCH_LOCK, name="")]),
            Reason.INVALID_ARGUMENT,
            "key 0 name must not be empty",
        ),
    ],
)
def test_bad_watches_are_refused_naming_the_problem(
    cluster: Cluster, request_: pb.WatchRequest, reason: Reason, words: str
) -> None:
    (a,) = clients(cluster, "a")
    with pytest.raises(grpc.RpcError) as refused:
        a.call("watches", "Watch", request_)
    assert error_reason(refused.value) is reason
    assert words in refused.value.details()  # type: ignore[attr-defined]


@pytest.mark.shared_cluster
def test_group_refusals_have_their_reasons(cluster: Cluster) -> None:
    (a,) = clients(cluster, "a")
    cases: list[tuple[str, str, Any, Reason, str]] = [
        (
            "groups",
            "Join",
            pb.JoinGroupRequest(name="no-such", member_id="m"),
            Reason.NOT_FOUND,
            "",
        ),
        ("groups", "Delete", pb.DeleteGroupRequest(name="absent"), Reason.NOT_FOUND, ""),
        (
            "groups",
            "Join",
            pb.JoinGroupRequest(name="refused", member_id="m", capabilities=b"x" * 2000),
            Reason.INVALID_ARGUMENT,
            "max_member_bytes",
        ),
        (
            "elections",
            "Campaign",
            pb.CampaignRequest(name="refused"),
            Reason.INVALID_ARGUMENT,
            "member",
        ),
    ]
    for service, method, request, reason, words in cases:
        request.request.CopyFrom(a.request_id())
        with pytest.raises(grpc.RpcError) as refused:
            a.call(service, method, request)
        assert error_reason(refused.value) is reason, (method, request)
        assert words in refused.value.details()  # type: ignore[attr-defined]


def test_a_member_of_the_previous_build_keeps_groups_off(tmp_path: Path) -> None:
    """One node reporting protocol 4: the cluster version stays below 5, so groups, elections
    and watches are refused, writes before anything is proposed and reads too (rather than
    answering "none"), naming the version."""
    cluster = Cluster(tmp_path)
    cluster.nodes[2] = NodeProcess(cluster.paths[2], env={PROTOCOL_VERSION_ENV: "4"})
    with running(cluster):
        client = WireClient(cluster, cluster.leader(), name="old", ttl_ms=60_000).open()
        for service, method, request in (
            ("groups", "Create", pb.CreateGroupRequest(name="g")),
            ("elections", "Campaign", pb.CampaignRequest(name="e", member_id="m")),
        ):
            request.request.CopyFrom(client.request_id())
            with pytest.raises(grpc.RpcError) as refused:
                client.call(service, method, request)
            assert error_reason(refused.value) is Reason.FAILED_PRECONDITION
            assert "cluster version 5" in refused.value.details()  # type: ignore[attr-defined]
        for service, method, request in (
            ("watches", "Watch", pb.WatchRequest(keys=[group_key("g")])),
            ("groups", "List", pb.ListGroupsRequest()),
            ("groups", "Describe", pb.DescribeGroupRequest(name="g")),
            ("elections", "Describe", pb.DescribeElectionRequest(name="e")),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                client.call(service, method, request)
            assert error_reason(refused.value) is Reason.FAILED_PRECONDITION, method
            assert "cluster version 5" in refused.value.details()  # type: ignore[attr-defined]
