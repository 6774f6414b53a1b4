"""Property tests of groups and elections: random histories against an independent model.

The model is built only from the commands and their results, never from the machine's state,
and after every step the machine must agree with it:

- a group's members are exactly those the model joined and nobody removed, each tied to a live
  session (a member leaves when its session ends);
- an election's candidates are the model's FIFO queue; its head leads with a token, the others
  have none; every leadership of an election has a higher token than the one before it, and no
  leadership is held by a session that has ended;
- the events of a step (``GroupChanged``, ``LeadershipChanged``) say exactly what changed;
- restoring a snapshot taken at any step and applying the rest equals applying everything.

``TURNSTILE_PROPERTY_EXAMPLES`` overrides the examples CI runs (as in ``test_properties``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turnstile.cluster import group_commands as group
from turnstile.cluster import snapshot
from turnstile.cluster.commands import (
    CloseSession,
    Command,
    Err,
    ExpireSession,
    OpenSession,
    SessionOpened,
    SetClusterVersion,
)
from turnstile.cluster.state import Applied, StateMachine
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

EXAMPLES = int(os.environ.get("TURNSTILE_PROPERTY_EXAMPLES", "200"))
GROUPS = ("g0", "g1")
ELECTIONS = ("e0", "e1")
MEMBERS = ("m0", "m1", "m2", "m3")

Step = tuple[str, int, int, int]
STEPS = st.tuples(
    st.sampled_from(
        ["open", "end", "create", "delete", "join", "leave", "update", "campaign", "resign"]
    ),
    st.integers(0, 7),
    st.integers(0, 7),
    st.integers(0, 7),
)


#: Members by group, and the leader (session, member id) by election.
ModelView = tuple[dict[str, set[str]], dict[str, tuple[int, str] | None]]


@dataclass
class Model:
    live: list[int] = field(default_factory=list)
    groups: dict[str, dict[str, tuple[int, bytes]]] = field(default_factory=dict)
    queues: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    tokens: dict[str, list[int]] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)


class Run:
    def __init__(self) -> None:
        self.machine = StateMachine()
        self.model = Model()
        self.now = 0
        self.seqs: dict[int, int] = {}
        self.log: list[Command] = []
        self.apply(SetClusterVersion(0, group.GROUPS_SINCE))

    def apply(self, command: Command) -> Applied:
        self.log.append(command)
        return self.machine.apply(command)

    def fields(self, session: int) -> dict[str, int]:
        self.seqs[session] = self.seqs.get(session, 0) + 1
        return {"now": self.now, "session": session, "seq": self.seqs[session], "acked": 0}

    def step(self, step: Step) -> None:
        op, a, b, c = step
        self.now += 10
        model = self.model
        if op == "open" or not model.live:
            applied = self.apply(OpenSession(self.now, 10_000, "w", "h", 1))
            assert isinstance(applied.result, SessionOpened)
            model.live.append(applied.result.session)
            return
        session = model.live[a % len(model.live)]
        name, member = GROUPS[b % 2], MEMBERS[c % len(MEMBERS)]
        election = ELECTIONS[b % 2]
        before = self.snapshot_of_model()
        if op == "end":
            cls = CloseSession if c % 2 else ExpireSession
            applied = self.apply(cls(self.now, session))
            self.end(session)
        elif op == "create":
            applied = self.apply(group.CreateGroup(name=name, **self.fields(session)))
            assert applied.result == group.GroupCreated(name not in model.groups)
            model.groups.setdefault(name, {})
        elif op == "delete":
            applied = self.apply(group.DeleteGroup(name=name, **self.fields(session)))
            if name not in model.groups:
                assert isinstance(applied.result, Err) and applied.result.reason is Reason.NOT_FOUND
            elif model.groups[name]:
                assert isinstance(applied.result, Err)
                assert applied.result.reason is Reason.FAILED_PRECONDITION
            else:
                assert not isinstance(applied.result, Err)
                del model.groups[name]
        elif op in ("join", "update"):
            caps = bytes([c]) * (c % 3)
            if op == "join":
                command: Command = group.JoinGroup(
                    name=name, member_id=member, capabilities=caps, **self.fields(session)
                )
            else:
                command = group.UpdateCapabilities(
                    name=name, member_id=member, capabilities=caps, **self.fields(session)
                )
            applied = self.apply(command)
            members = model.groups.get(name)
            if members is None:
                assert isinstance(applied.result, Err) and applied.result.reason is Reason.NOT_FOUND
            elif op == "join":
                assert applied.result == group.GroupJoined(member not in members)
                members.setdefault(member, (session, caps))
            else:
                mine = member in members and members[member][0] == session
                assert applied.result == group.CapabilitiesUpdated(mine)
                if mine:
                    members[member] = (session, caps)
        elif op == "leave":
            applied = self.apply(
                group.LeaveGroup(name=name, member_id=member, **self.fields(session))
            )
            members = model.groups.get(name)
            if members is None:
                assert isinstance(applied.result, Err) and applied.result.reason is Reason.NOT_FOUND
            else:
                assert applied.result == group.GroupLeft(member in members)
                members.pop(member, None)
        elif op == "campaign":
            applied = self.apply(
                group.Campaign(name=election, member_id=member, **self.fields(session))
            )
            queue = model.queues.setdefault(election, [])
            if all(s != session for s, _ in queue):
                queue.append((session, member))
            assert isinstance(applied.result, group.Standing)
            position = next(i for i, (s, _) in enumerate(queue, start=1) if s == session)
            assert (applied.result.elected, applied.result.position) == (position == 1, position)
        else:
            applied = self.apply(group.Resign(name=election, **self.fields(session)))
            queue = model.queues.get(election, [])
            at = next((i for i, (s, _) in enumerate(queue) if s == session), None)
            assert applied.result == group.Resigned(at is not None, at == 0)
            if at is not None:
                queue.pop(at)
        for election_name in list(model.queues):
            if not model.queues[election_name]:
                del model.queues[election_name]
        self.check_events(applied, before)
        self.check_state()

    def end(self, session: int) -> None:
        model = self.model
        model.live.remove(session)
        model.ended.add(session)
        for members in model.groups.values():
            for member_id in [m for m, (s, _) in members.items() if s == session]:
                del members[member_id]
        for queue in model.queues.values():
            queue[:] = [(s, m) for s, m in queue if s != session]

    def snapshot_of_model(self) -> ModelView:
        members = {n: set(m) for n, m in self.model.groups.items()}
        leaders = {n: (q[0] if q else None) for n, q in self.model.queues.items()}
        return members, leaders

    def check_events(self, applied: Applied, before: ModelView) -> None:
        """The events say exactly what the model saw change in this step."""
        members_before, leaders_before = before
        members_after, leaders_after = self.snapshot_of_model()
        joined = {
            (e.name, e.member_id)
            for e in applied.events
            if isinstance(e, group.GroupChanged) and e.change == group.MEMBER_JOINED
        }
        left = {
            (e.name, e.member_id)
            for e in applied.events
            if isinstance(e, group.GroupChanged) and e.change == group.MEMBER_LEFT
        }
        names = set(members_before) | set(members_after)
        assert joined == {
            (n, m)
            for n in names
            for m in members_after.get(n, set()) - members_before.get(n, set())
        }
        assert left == {
            (n, m)
            for n in names
            for m in members_before.get(n, set()) - members_after.get(n, set())
        }
        elected = [
            e
            for e in applied.events
            if isinstance(e, group.LeadershipChanged) and e.change == group.LEADER_ELECTED
        ]
        changed = {
            n
            for n in set(leaders_before) | set(leaders_after)
            if leaders_before.get(n) != leaders_after.get(n)
        }
        assert {e.name for e in elected} == {n for n in changed if leaders_after.get(n)}
        for event in elected:
            leader = leaders_after[event.name]
            assert leader is not None and (event.session, event.member_id) == leader
            history = self.model.tokens.setdefault(event.name, [])
            assert not history or event.token > history[-1], f"{event}: token not fresh"
            history.append(event.token)

    def check_state(self) -> None:
        machine, model = self.machine, self.model
        assert set(machine.sessions) == set(model.live)
        assert {
            name: {m.member_id: (m.session, m.capabilities) for m in item.members.values()}
            for name, item in machine.groups.items()
        } == model.groups
        assert {
            name: [(c.session, c.member_id) for c in e.candidates]
            for name, e in machine.elections.items()
        } == model.queues
        for name, election in machine.elections.items():
            head, *rest = election.candidates
            assert head.token == model.tokens[name][-1] and head.session not in model.ended
            assert all(c.token == 0 for c in rest)
        for session in machine.sessions.values():
            assert session.joined == {
                (n, m)
                for n, ms in model.groups.items()
                for m, (s, _) in ms.items()
                if s == session.id
            }
            assert session.standing == {
                n for n, q in model.queues.items() if any(s == session.id for s, _ in q)
            }


SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(st.lists(STEPS, max_size=80))
def test_groups_and_elections_match_the_model_after_every_step(steps: list[Step]) -> None:
    run = Run()
    for step in steps:
        run.step(step)


@SETTINGS
@given(st.lists(STEPS, max_size=60), st.integers(0, 60))
def test_restore_then_replay_equals_replay(steps: list[Step], at: int) -> None:
    run = Run()
    for step in steps:
        run.step(step)
    split = min(at, len(run.log))
    head = StateMachine()
    for command in run.log[:split]:
        head.apply(command)
    restored = snapshot.load(snapshot.dump(head))
    for command in run.log[split:]:
        restored.apply(command)
    assert snapshot.dump(restored) == snapshot.dump(run.machine)
    assert restored.revision == run.machine.revision
