"""The no-I/O parts of groups, elections and watches: the cursor a watch follows, the trackers'
state and the differences they report after ``compacted``, a campaign's slices."""

from __future__ import annotations

import pytest

from turnstile.client.group_core import (
    CampaignTiming,
    ElectionTracker,
    GroupTracker,
    Member,
)
from turnstile.client.retry import RetryPolicy
from turnstile.client.watch_core import (
    CAUSE_COMPACTED,
    WATCH_SLICE_S,
    ChangeType,
    Cursor,
    WatchKind,
    long_poll_timing,
    watch_request,
)
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.timeouts import CLIENT_WAIT_GRACE_S

pytestmark = pytest.mark.unit


def listing(
    revision: int, *members: tuple[str, int, bytes], name: str = "g"
) -> pb.ListGroupsResponse:
    group = pb.GroupInfo(
        name=name,
        members=[pb.GroupMember(member_id=m, session_id=s, capabilities=c) for m, s, c in members],
    )
    return pb.ListGroupsResponse(groups=[group], revision=revision)


def change(
    revision: int,
    kind: int,
    name: str,
    type_: int,
    *,
    member: str = "",
    session: int = 0,
    token: int = 0,
    capabilities: bytes = b"",
) -> pb.Change:
    return pb.Change(
        revision=revision,
        kind=kind,
        name=name,
        type=type_,
        member_id=member,
        session_id=session,
        token=token,
        capabilities=capabilities,
    )


def joined(revision: int, member: str, session: int = 1, name: str = "g") -> pb.Change:
    return change(revision, pb.WATCH_GROUP, name, pb.CHANGE_JOINED, member=member, session=session)


def test_a_watch_request_names_its_keys_revision_and_wait() -> None:
    request = watch_request([(WatchKind.GROUP, "g"), (WatchKind.ELECTION, "e")], 7, 1.5)
    assert [(k.kind, k.name) for k in request.keys] == [
        (pb.WATCH_GROUP, "g"),
        (pb.WATCH_ELECTION, "e"),
    ]
    assert (request.after_revision, request.wait_ms) == (7, 1500)
    with pytest.raises(ValueError, match="at least one key"):
        watch_request([], 0, 0)
    with pytest.raises(ValueError, match="non-negative"):
        watch_request([(WatchKind.GROUP, "g")], 0, -1)


def test_the_cursor_reads_first_then_watches_after_the_reads_revision_in_slices() -> None:
    cursor = Cursor(GroupTracker("g"))
    first = cursor.next_request(None)
    assert isinstance(first, pb.ListGroupsRequest) and first.prefix == "g"
    assert cursor.answered(listing(5, ("a", 1, b"x"))) == []  # the first read sets the state
    watch = cursor.next_request(None)
    assert isinstance(watch, pb.WatchRequest)
    assert (watch.after_revision, watch.wait_ms) == (5, int(WATCH_SLICE_S * 1000))
    assert cursor.next_request(3600).wait_ms == int(WATCH_SLICE_S * 1000)  # type: ignore[attr-defined]
    assert cursor.next_request(0.25).wait_ms == 250  # type: ignore[attr-defined]


def test_the_cursor_reports_each_change_once_and_only_its_own_key() -> None:
    tracker = GroupTracker("g")
    cursor = Cursor(tracker)
    cursor.answered(listing(5))
    answer = pb.WatchResponse(
        revision=8,
        changes=[
            joined(4, "old"),  # at or below the revision seen: never reported again
            joined(6, "b"),
            joined(7, "other", name="h"),  # another key of a shared Watch
            change(
                8,
                pb.WATCH_GROUP,
                "g",
                pb.CHANGE_UPDATED,
                member="b",
                session=1,
                capabilities=b"new",
            ),
        ],
    )
    seen = cursor.answered(answer)
    assert [(c.revision, c.type, c.member_id) for c in seen] == [
        (6, ChangeType.JOINED, "b"),
        (8, ChangeType.UPDATED, "b"),
    ]
    assert cursor.revision == 8
    assert tracker.members["b"].capabilities == b"new"
    assert cursor.answered(answer) == []  # the same answer again brings nothing new
    left = pb.WatchResponse(
        revision=9, changes=[change(9, pb.WATCH_GROUP, "g", pb.CHANGE_LEFT, member="b", session=1)]
    )
    assert [c.type for c in cursor.answered(left)] == [ChangeType.LEFT]
    assert tracker.members == {}


def test_compacted_reads_again_and_reports_the_difference() -> None:
    tracker = GroupTracker("g")
    cursor = Cursor(tracker)
    cursor.answered(listing(5, ("stays", 1, b"s"), ("goes", 2, b""), ("changes", 3, b"v1")))
    assert cursor.answered(pb.WatchResponse(revision=40, compacted=True)) == []
    assert cursor.revision is None
    assert isinstance(cursor.next_request(None), pb.ListGroupsRequest)
    reread = listing(
        40,
        ("stays", 1, b"s"),
        ("changes", 3, b"v2"),
        ("new", 4, b"n"),
        ("goes", 9, b""),  # left and joined again, by another session
    )
    made_up = cursor.answered(reread)
    assert [(c.type, c.member_id, c.revision, c.cause) for c in made_up] == [
        (ChangeType.UPDATED, "changes", 40, CAUSE_COMPACTED),
        (ChangeType.LEFT, "goes", 40, CAUSE_COMPACTED),
        (ChangeType.JOINED, "goes", 40, CAUSE_COMPACTED),
        (ChangeType.JOINED, "new", 40, CAUSE_COMPACTED),
    ]
    assert cursor.revision == 40
    assert sorted(tracker.members) == ["changes", "goes", "new", "stays"]


def test_a_group_deleted_meanwhile_is_reported_as_its_members_leaving_and_the_deletion() -> None:
    cursor = Cursor(GroupTracker("g"))
    cursor.answered(listing(5, ("a", 1, b"")))
    cursor.answered(pb.WatchResponse(revision=9, compacted=True))
    made_up = cursor.answered(pb.ListGroupsResponse(revision=9))  # no such group now
    assert [(c.type, c.member_id) for c in made_up] == [
        (ChangeType.LEFT, "a"),
        (ChangeType.DELETED, ""),
    ]


def test_the_group_listing_is_read_by_exact_name() -> None:
    tracker = GroupTracker("g")
    tracker.load(listing(3, ("a", 1, b""), name="g2"))  # only a group named with the prefix
    assert not tracker.exists and tracker.members == {}


def leader(revision: int, member: str, session: int, token: int) -> pb.DescribeElectionResponse:
    info = pb.ElectionInfo(
        name="e", leader=pb.ElectionCandidate(member_id=member, session_id=session, token=token)
    )
    return pb.DescribeElectionResponse(election=info, revision=revision)


def test_an_election_watch_reports_a_leadership_it_missed_after_compacted() -> None:
    tracker = ElectionTracker("e")
    cursor = Cursor(tracker)
    cursor.answered(leader(3, "m1", 1, 10))
    assert tracker.leader is not None and tracker.leader.token == 10
    cursor.answered(pb.WatchResponse(revision=9, compacted=True))
    made_up = cursor.answered(leader(9, "m2", 2, 12))
    assert [(c.type, c.member_id, c.token) for c in made_up] == [
        (ChangeType.RESIGNED, "m1", 10),
        (ChangeType.ELECTED, "m2", 12),
    ]
    cursor.answered(pb.WatchResponse(revision=11, compacted=True))
    assert cursor.answered(leader(11, "m2", 2, 12)) == []  # the same leadership: nothing
    resigned = pb.WatchResponse(
        revision=12,
        changes=[
            change(12, pb.WATCH_ELECTION, "e", pb.CHANGE_RESIGNED, member="m2", session=2, token=12)
        ],
    )
    cursor.answered(resigned)
    assert tracker.leader is None


def test_a_campaign_waits_in_slices_and_sends_its_first_request_even_with_no_time() -> None:
    forever = CampaignTiming(None, started=100.0)
    assert forever.wait(1e9, first=False) == WATCH_SLICE_S
    timed = CampaignTiming(0.0, started=100.0)
    assert timed.wait(100.0, first=True) == 0.0
    assert timed.wait(100.0, first=False) is None
    longer = CampaignTiming(45.0, started=100.0)
    assert longer.wait(100.0, first=True) == WATCH_SLICE_S
    assert longer.wait(130.0, first=False) == pytest.approx(15.0)
    assert longer.wait(146.0, first=False) is None
    request, attempt = longer.request("e", "m", 2.5)
    assert (request.name, request.member_id, request.wait_ms) == ("e", "m", 2500)
    assert attempt == 2.5 + CLIENT_WAIT_GRACE_S
    with pytest.raises(ValueError):
        CampaignTiming(-1.0, started=0.0)


def test_a_long_poll_gets_its_wait_on_top_of_the_retry_deadline() -> None:
    retry = RetryPolicy(deadline=30.0)
    assert long_poll_timing(pb.WatchRequest(wait_ms=4000), retry) == (
        34.0,
        4.0 + CLIENT_WAIT_GRACE_S,
    )
    assert long_poll_timing(pb.WatchRequest(wait_ms=0), retry) == (None, None)
    assert long_poll_timing(pb.DescribeGroupRequest(name="g"), retry) == (None, None)


def test_members_keep_their_client_identity_across_an_update() -> None:
    tracker = GroupTracker("g")
    tracker.members["a"] = Member("a", 1, b"v1", client_name="w", client_host="h", client_pid=9)
    cursor = Cursor(tracker, after_revision=1)
    cursor.answered(
        pb.WatchResponse(
            revision=2,
            changes=[
                change(
                    2,
                    pb.WATCH_GROUP,
                    "g",
                    pb.CHANGE_UPDATED,
                    member="a",
                    session=1,
                    capabilities=b"v2",
                )
            ],
        )
    )
    assert tracker.members["a"] == Member(
        "a", 1, b"v2", client_name="w", client_host="h", client_pid=9
    )
