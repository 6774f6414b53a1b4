"""Restore writes a Raft snapshot of the saved state with the new cluster's members."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from turnstile.cluster import snapshot
from turnstile.cluster.backup import RestoreError, restore
from turnstile.cluster.commands import OpenSession, SetMember
from turnstile.cluster.config import NodeConfig, Peer
from turnstile.cluster.raft import SNAPSHOT_FILE
from turnstile.cluster.state import StateMachine

pytestmark = pytest.mark.unit

NEW = (
    Peer("a", "127.0.0.1:9101", "127.0.0.1:9001"),
    Peer("b", "127.0.0.1:9102", "127.0.0.1:9002"),
)


def saved(tmp_path: Path) -> Path:
    state = StateMachine()
    state.apply(SetMember(1, "old", "10.0.0.1:7100", "10.0.0.1:7000"))
    state.apply(OpenSession(2, 5000, "worker", "host", 7))
    path = tmp_path / "backup"
    path.write_bytes(snapshot.dump(state))
    return path


def node(tmp_path: Path) -> NodeConfig:
    return NodeConfig(
        node_id="a",
        client_address=NEW[0].client_address,
        peer_address=NEW[0].peer_address,
        data_dir=tmp_path / "data",
        peer_password_file=tmp_path / "pw",
        peers=NEW,
    )


def test_restore_keeps_the_state_and_replaces_the_members(tmp_path: Path) -> None:
    restored = restore(saved(tmp_path), node(tmp_path))
    assert restored.path == tmp_path / "data" / SNAPSHOT_FILE
    assert restored.counts.sessions == 1
    document = msgpack.unpackb(restored.path.read_bytes(), raw=False)
    assert document["cluster"] == ["127.0.0.1:9101", "127.0.0.1:9102"]
    assert document["previous_entry"][1:] == [2, 0]
    assert document["last_entry"][1:] == [3, 0]
    state = snapshot.load(document["state"])
    assert state.cluster_members == {p.node_id: (p.peer_address, p.client_address) for p in NEW}
    assert state.sessions[1].client_name == "worker"


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
