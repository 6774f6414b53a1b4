"""Restore writes a Raft snapshot of the saved state with the new cluster's members."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from helpers import Driver, err, result

from turnstile.cluster import snapshot, views
from turnstile.cluster.backup import RESTORE_ID_MARGIN, RestoreError, restore, restored_state
from turnstile.cluster.commands import (
    Done,
    ExpireSession,
    Granted,
    Inserted,
    ListSetUp,
    Queued,
    SetMember,
)
from turnstile.cluster.config import NodeConfig
from turnstile.cluster.limits import Limits
from turnstile.cluster.peers import Peer
from turnstile.cluster.raft import SNAPSHOT_FILE
from turnstile.cluster.state import StateMachine
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

NEW = (
    Peer("a", "127.0.0.1:9101", "127.0.0.1:9001"),
    Peer("b", "127.0.0.1:9102", "127.0.0.1:9002"),
)


def source() -> Driver:
    """A source cluster's state: one session with a list; the list outlives the session."""
    run = Driver(Limits(max_batch=7), now=1)
    run.apply(SetMember(1, "old", "10.0.0.1:7100", "10.0.0.1:7000"))
    worker = run.session(5000, "worker")
    result(run.set_up(worker, "results"), ListSetUp)
    result(run.insert(worker, "results", b"alpha", b"beta"), Inserted)
    return run


def saved(tmp_path: Path, state: StateMachine | None = None) -> Path:
    path = tmp_path / "backup"
    path.write_bytes(snapshot.dump(state or source().sm))
    return path


def node(tmp_path: Path, index: int = 0) -> NodeConfig:
    return NodeConfig(
        node_id=NEW[index].node_id,
        client_address=NEW[index].client_address,
        peer_address=NEW[index].peer_address,
        data_dir=tmp_path / ("data" if index == 0 else f"data-{NEW[index].node_id}"),
        peer_password_file=tmp_path / "pw",
        peers=NEW,
    )


def busy() -> Driver:
    """Three sessions holding and waiting for each other's locks, two lists."""
    run = source()
    one, two, three = run.session(name="one"), run.session(name="two"), run.session(name="three")
    result(run.acquire(one, "job/1", max_hold_ms=10_000), Granted)
    result(run.acquire(three, "job/2"), Granted)
    for waiter, name in ((two, "job/1"), (three, "job/1"), (one, "job/2"), (two, "job/2")):
        result(run.acquire(waiter, name, wait_ms=60_000), Queued)
    result(run.set_up(two, "forever"), ListSetUp)
    result(run.insert(two, "forever", b"z"), Inserted)
    counts = views.counts(run.sm)
    assert (counts.sessions, counts.locks_held, counts.waiters) == (4, 2, 4)
    return run


def restored_from(tmp_path: Path, state: StateMachine, index: int = 0) -> StateMachine:
    written = restore(saved(tmp_path, state), node(tmp_path, index))
    document = msgpack.unpackb(written.path.read_bytes(), raw=False)
    return snapshot.load(document["state"])


def test_restore_keeps_the_lists_and_replaces_the_members(tmp_path: Path) -> None:
    restored = restore(saved(tmp_path), node(tmp_path))
    assert restored.path == tmp_path / "data" / SNAPSHOT_FILE
    assert restored.saved.sessions == 1 and restored.counts.sessions == 0
    document = msgpack.unpackb(restored.path.read_bytes(), raw=False)
    assert document["cluster"] == ["127.0.0.1:9101", "127.0.0.1:9102"]
    assert document["previous_entry"][1:] == [2, 0]
    assert document["last_entry"][1:] == [3, 0]
    state = snapshot.load(document["state"])
    assert state.cluster_members == {p.node_id: (p.peer_address, p.client_address) for p in NEW}
    assert views.contains(state, "results", (b"alpha", b"beta", b"absent")) == [1, 2, 0]
    assert state.limits == Limits(max_batch=7)


def test_restore_refuses_a_data_dir_in_use(tmp_path: Path) -> None:
    restore(saved(tmp_path), node(tmp_path))
    with pytest.raises(RestoreError, match=r"data_dir: .* already holds raft\.snapshot"):
        restore(saved(tmp_path), node(tmp_path))


def test_restore_refuses_other_bytes(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_bytes(msgpack.packb({"magic": "turnstile-snapshot", "version": 99}))
    with pytest.raises(RestoreError, match="version 99 is not supported"):
        restore(bogus, node(tmp_path))
    assert not (tmp_path / "data" / SNAPSHOT_FILE).exists()


def test_tokens_and_session_ids_continue_above_the_margin(tmp_path: Path) -> None:
    """Nothing the restored cluster issues can equal what the source issued after the backup."""
    run = busy()
    last_token, last_session = run.sm.last_token, run.sm.last_session
    restored = Driver()
    restored.sm = restored_from(tmp_path, run.sm)
    restored.now = restored.sm.clock
    # Ending the backup's sessions may hand locks on (and so take tokens) before they end too.
    assert restored.sm.last_token >= last_token + RESTORE_ID_MARGIN
    assert restored.sm.last_session == last_session + RESTORE_ID_MARGIN
    session = restored.session()
    assert session == last_session + RESTORE_ID_MARGIN + 1
    granted = result(restored.acquire(session, "job/1"), Granted)
    assert granted.token > last_token + RESTORE_ID_MARGIN


def test_restore_ends_every_session_of_the_backup_as_an_expiry_would(tmp_path: Path) -> None:
    """Holds are released and waiters dropped; no session id of the backup works any more;
    the lists and their ids are kept."""
    run = busy()
    old_sessions = sorted(run.sm.sessions)
    lists = {name: list(item.members) for name, item in run.sm.lists.items()}
    assert lists
    state = restored_from(tmp_path, run.sm)
    assert state.sessions == {} and state.locks == {}
    assert views.counts(state).locks_held == 0 and views.counts(state).waiters == 0
    assert {name: item.members for name, item in state.lists.items()} == lists
    assert state.clock == run.sm.clock and state.limits == run.sm.limits

    # Exactly what the state machine's own expiry of each session, in id order, leaves.
    expired = snapshot.load(snapshot.dump(run.sm))
    for session in old_sessions:
        ended = expired.apply(ExpireSession(expired.clock, session, term=expired.epoch))
        assert isinstance(ended.result, Done)
    expired.last_token += RESTORE_ID_MARGIN
    expired.last_session += RESTORE_ID_MARGIN
    expired.cluster_members = state.cluster_members
    assert snapshot.dump(expired) == snapshot.dump(state)

    again = Driver()
    again.sm = state
    again.now = state.clock
    for session in old_sessions:
        err(again.acquire(session, "job/1"), Reason.SESSION_EXPIRED, str(session))
        err(again.insert(session, "results", b"k1"), Reason.SESSION_EXPIRED)
    fresh = again.session()
    assert fresh not in old_sessions
    assert result(again.acquire(fresh, "job/1"), Granted)


def test_every_node_restores_identical_bytes(tmp_path: Path) -> None:
    run = busy()
    first = restored_from(tmp_path, run.sm, 0)
    second = restored_from(tmp_path, run.sm, 1)
    assert snapshot.dump(first) == snapshot.dump(second)
    # And the same again from the same file.
    third = restored_state(snapshot.load(snapshot.dump(run.sm)), NEW)
    assert snapshot.dump(third) == snapshot.dump(first)


def test_the_term_fence_restarts_with_the_new_cluster(tmp_path: Path) -> None:
    """The new cluster's Raft terms start again from 1: its commands must not be fenced out
    by the source's terms."""
    run = source()
    run.sm.epoch = 7
    state = restored_from(tmp_path, run.sm)
    assert state.epoch == 0
    opened = state.apply(SetMember(state.clock, "a", "x:1", "x:2", term=1)).result
    assert isinstance(opened, Done)


def test_a_backup_without_room_for_the_margin_is_refused(tmp_path: Path) -> None:
    state = source().sm
    state.last_token = 2**63 - RESTORE_ID_MARGIN
    with pytest.raises(RestoreError, match="no room for RESTORE_ID_MARGIN"):
        restore(saved(tmp_path, state), node(tmp_path))
    assert not (tmp_path / "data" / SNAPSHOT_FILE).exists()
