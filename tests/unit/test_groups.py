"""Groups and elections in the state machine (``group_rules``), without Raft."""

from __future__ import annotations

import pytest
from helpers import Driver, err, result

from turnstile.cluster import group_commands as group
from turnstile.cluster import group_views
from turnstile.cluster.commands import (
    CAUSE_SESSION_CLOSED,
    CAUSE_SESSION_EXPIRED,
    Done,
    Err,
    Granted,
    SetClusterVersion,
)
from turnstile.cluster.group_rules import CAUSE_LEFT, CAUSE_RESIGNED
from turnstile.cluster.limits import Limits
from turnstile.cluster.state import Applied
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


class Groups:
    """A Driver at cluster version 5, with the group and election commands."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.d = Driver(limits, now=1_000)
        self.d.apply(SetClusterVersion(self.d.now, group.GROUPS_SINCE))

    def session(self) -> int:
        return self.d.session()

    def _fields(self, session: int) -> dict[str, int]:
        return {"now": self.d.now, "session": session, "seq": self.d.next_seq(session), "acked": 0}

    def create(self, session: int, name: str = "g") -> Applied:
        return self.d.apply(group.CreateGroup(name=name, **self._fields(session)))

    def delete(self, session: int, name: str = "g") -> Applied:
        return self.d.apply(group.DeleteGroup(name=name, **self._fields(session)))

    def join(self, session: int, member: str, caps: bytes = b"", name: str = "g") -> Applied:
        return self.d.apply(
            group.JoinGroup(name=name, member_id=member, capabilities=caps, **self._fields(session))
        )

    def leave(self, session: int, member: str, name: str = "g") -> Applied:
        return self.d.apply(group.LeaveGroup(name=name, member_id=member, **self._fields(session)))

    def update(self, session: int, member: str, caps: bytes, name: str = "g") -> Applied:
        return self.d.apply(
            group.UpdateCapabilities(
                name=name, member_id=member, capabilities=caps, **self._fields(session)
            )
        )

    def campaign(self, session: int, member: str, name: str = "e") -> Applied:
        return self.d.apply(group.Campaign(name=name, member_id=member, **self._fields(session)))

    def resign(self, session: int, name: str = "e") -> Applied:
        return self.d.apply(group.Resign(name=name, **self._fields(session)))

    def members(self, name: str = "g") -> dict[str, tuple[int, bytes]]:
        found = group_views.describe_group(self.d.sm, name, self.d.now)
        assert not isinstance(found, Err), found
        view, _ = found
        return {m.member_id: (m.session, m.capabilities) for m in view.members}

    def leader(self, name: str = "e") -> tuple[str, int, int] | None:
        found = group_views.describe_election(self.d.sm, name, self.d.now)
        assert not isinstance(found, Err), found
        view, _ = found
        return (
            (view.leader.member_id, view.leader.session, view.leader.token) if view.leader else None
        )


def test_groups_need_cluster_version_5() -> None:
    d = Driver()
    s = d.session()
    refused = d.apply(group.CreateGroup(d.now, s, 1, 0, "g"))
    assert err(refused, Reason.FAILED_PRECONDITION, "cluster version 5")
    assert d.sm.groups == {}


def test_create_join_leave_delete() -> None:
    g = Groups()
    s = g.session()
    assert result(g.create(s), group.GroupCreated) == group.GroupCreated(created=True)
    assert result(g.create(s), group.GroupCreated) == group.GroupCreated(created=False)
    assert result(g.join(s, "m1", b"caps"), group.GroupJoined).joined
    assert g.members() == {"m1": (s, b"caps")}
    err(g.delete(s), Reason.FAILED_PRECONDITION, "has 1 members")
    assert result(g.leave(s, "m1"), group.GroupLeft).left
    assert not result(g.leave(s, "m1"), group.GroupLeft).left
    assert isinstance(g.delete(s).result, Done)
    assert g.d.sm.groups == {}
    err(g.delete(s), Reason.NOT_FOUND, "does not exist")
    err(g.join(s, "m1"), Reason.NOT_FOUND, "does not exist")


def test_a_member_id_is_taken_whichever_session_joined_it() -> None:
    g = Groups()
    a, b = g.session(), g.session()
    g.create(a)
    assert result(g.join(a, "m"), group.GroupJoined).joined
    assert not result(g.join(b, "m"), group.GroupJoined).joined
    assert not result(g.join(a, "m"), group.GroupJoined).joined
    assert g.members() == {"m": (a, b"")}


def test_any_session_may_remove_a_member_but_only_its_own_session_updates_it() -> None:
    g = Groups()
    a, b = g.session(), g.session()
    g.create(a)
    g.join(a, "m", b"v1")
    assert not result(g.update(b, "m", b"v2"), group.CapabilitiesUpdated).updated
    assert result(g.update(a, "m", b"v2"), group.CapabilitiesUpdated).updated
    assert g.members() == {"m": (a, b"v2")}
    left = g.leave(b, "m")
    assert result(left, group.GroupLeft).left
    assert left.events == (group.GroupChanged("g", group.MEMBER_LEFT, "m", a, cause=CAUSE_LEFT),)
    assert g.d.sm.sessions[a].joined == set()


@pytest.mark.parametrize("ending", ["close", "expire"])
def test_a_session_that_ends_leaves_its_groups_and_elections(ending: str) -> None:
    g = Groups()
    a, b = g.session(), g.session()
    g.create(a)
    g.create(a, "h")
    g.join(a, "a1")
    g.join(a, "a2", name="h")
    g.join(b, "b1")
    first = result(g.campaign(a, "a1"), group.Standing)
    second = result(g.campaign(b, "b1"), group.Standing)
    assert (first.elected, first.position, second.elected, second.position) == (True, 1, False, 2)
    end = g.d.close_session if ending == "close" else g.d.expire_session
    cause = CAUSE_SESSION_CLOSED if ending == "close" else CAUSE_SESSION_EXPIRED
    ended = end(a)
    assert g.members() == {"b1": (b, b"")}
    assert g.members("h") == {}
    leader = g.leader()
    assert leader is not None and leader[:2] == ("b1", b) and leader[2] > first.token
    changes = [
        e for e in ended.events if isinstance(e, group.GroupChanged | group.LeadershipChanged)
    ]
    assert changes == [
        group.GroupChanged("g", group.MEMBER_LEFT, "a1", a, cause=cause),
        group.GroupChanged("h", group.MEMBER_LEFT, "a2", a, cause=cause),
        group.LeadershipChanged("e", group.LEADER_RESIGNED, "a1", a, first.token, cause),
        group.LeadershipChanged("e", group.LEADER_ELECTED, "b1", b, leader[2]),
    ]


def test_an_election_hands_off_in_fifo_order_with_increasing_tokens() -> None:
    g = Groups()
    sessions = [g.session() for _ in range(3)]
    standings = [result(g.campaign(s, f"m{s}"), group.Standing) for s in sessions]
    assert [(x.elected, x.position) for x in standings] == [(True, 1), (False, 2), (False, 3)]
    tokens = [standings[0].token]
    for index, s in enumerate(sessions):
        resigned = result(g.resign(s), group.Resigned)
        assert resigned == group.Resigned(was_candidate=True, was_leader=True)
        leader = g.leader()
        if index < 2:
            assert leader is not None and leader[1] == sessions[index + 1]
            tokens.append(leader[2])
        else:
            assert leader is None
    assert tokens == sorted(set(tokens)) and len(tokens) == 3
    assert g.d.sm.elections == {}


def test_standing_again_changes_nothing_and_a_queued_candidate_resigns_quietly() -> None:
    g = Groups()
    a, b, c = g.session(), g.session(), g.session()
    leader = result(g.campaign(a, "a"), group.Standing)
    g.campaign(b, "b")
    g.campaign(c, "c")
    again = g.campaign(a, "other id")
    assert again.result == leader and again.events == ()
    assert result(g.campaign(c, "c"), group.Standing) == group.Standing(False, 0, 3)
    quiet = g.resign(b)
    assert result(quiet, group.Resigned) == group.Resigned(was_candidate=True, was_leader=False)
    assert quiet.events == ()
    assert result(g.campaign(c, "c"), group.Standing) == group.Standing(False, 0, 2)
    assert result(g.resign(b), group.Resigned) == group.Resigned(False, False)
    step_down = g.resign(a)
    assert [type(e) for e in step_down.events] == [group.LeadershipChanged] * 2
    assert step_down.events[0] == group.LeadershipChanged(
        "e", group.LEADER_RESIGNED, "a", a, leader.token, CAUSE_RESIGNED
    )


def test_election_tokens_share_the_lock_token_counter() -> None:
    g = Groups()
    s = g.session()
    lock_token = result(g.d.acquire(s, "L"), Granted).token
    elected = result(g.campaign(s, "m"), group.Standing)
    assert elected.token == lock_token + 1


def test_bad_input_is_refused_before_any_change() -> None:
    g = Groups(Limits(max_member_bytes=4, max_waiters_per_lock=1, max_locks=1))
    s, t = g.session(), g.session()
    err(g.create(s, ""), Reason.INVALID_ARGUMENT, "group name must not be empty")
    g.create(s)
    err(g.create(s, "second"), Reason.LIMIT_EXCEEDED, "max_locks=1")
    err(g.join(s, "m", b"12345"), Reason.INVALID_ARGUMENT, "max_member_bytes=4")
    err(g.join(s, "bad\x00id"), Reason.INVALID_ARGUMENT, "control character")
    g.join(s, "m")
    err(g.join(t, "n"), Reason.LIMIT_EXCEEDED, "max_waiters_per_lock=1")
    g.campaign(s, "m")
    err(g.campaign(t, "n"), Reason.LIMIT_EXCEEDED, "max_waiters_per_lock=1")
    err(g.campaign(t, "n", name="other"), Reason.LIMIT_EXCEEDED, "max_locks=1")
    assert g.members() == {"m": (s, b"")}
    assert set(g.d.sm.elections) == {"e"}


def test_a_retried_request_returns_its_first_result() -> None:
    g = Groups()
    s = g.session()
    g.create(s)
    command = group.JoinGroup(g.d.now, s, 50, 0, "g", "m", b"")
    first = g.d.apply(command)
    g.leave(s, "m")
    retried = g.d.apply(command)
    assert retried.result == first.result and retried.events == ()
    assert g.members() == {}


def test_the_revision_moves_once_per_command_with_watched_changes() -> None:
    g = Groups()
    s = g.session()
    start = g.d.sm.revision
    assert g.create(s).revision == start + 1
    assert g.create(s).revision == start + 1  # exists: nothing changed
    assert g.d.tick().revision == start + 1
    assert g.d.acquire(s, "L").revision == start + 2  # a lock grant is watched too
    assert g.d.close_session(s).revision == start + 3  # a free and a leave: one step
