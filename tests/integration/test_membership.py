"""Adding and removing a member under load, through the admin command."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, wait_until
from tests.integration.test_cli import turnstile
from turnstile.client import Client, connect
from turnstile.cluster.config import config_to_toml
from turnstile.cluster.launcher import CONFIG_NAME, NodeProcess, free_ports, node_status
from turnstile.cluster.peers import Peer

pytestmark = pytest.mark.integration


def _load(client: Client, stop: threading.Event, done: list[int], errors: list[Exception]) -> None:
    lock = client.lock("busy")
    results = client.distinct_list("added-under-load")
    count = 0
    while not stop.is_set():
        try:
            with lock:
                results.insert(f"key-{count}")
            count += 1
        except Exception as error:  # recorded and asserted on below
            errors.append(error)
            return
    done.append(count)


def test_add_and_remove_a_member_under_load(cluster: Cluster, tmp_path: Path) -> None:
    base = cluster.configs[0]
    peer_port, client_port = free_ports(2)
    n4 = Peer("n4", f"127.0.0.1:{peer_port}", f"127.0.0.1:{client_port}")
    config = dataclasses.replace(
        base,
        node_id="n4",
        peer_address=n4.peer_address,
        client_address=n4.client_address,
        data_dir=tmp_path / "n4" / "data",
        metrics_address="",
        peers=(*base.peers, n4),
    )
    (tmp_path / "n4").mkdir()
    path = tmp_path / "n4" / CONFIG_NAME
    path.write_text(config_to_toml(config), encoding="utf-8")
    fourth = NodeProcess(path)

    stop, done, errors = threading.Event(), [], []
    client = connect(cluster.addresses, session_ttl=10)
    worker = threading.Thread(target=_load, args=(client, stop, done, errors), daemon=True)
    worker.start()
    try:
        added = turnstile(
            cluster, "members", "add", "n4", n4.peer_address, n4.client_address, "--timeout", "10"
        )
        assert added.returncode == 0, added.stderr
        again = turnstile(cluster, "members", "add", "n4", n4.peer_address, n4.client_address)
        assert again.returncode == 5 and "already used" in again.stderr
        fourth.start()

        def caught_up() -> bool:
            leader = node_status(cluster.leader())
            mine = node_status(n4.client_address)
            return bool(leader and mine and mine.header.applied_index >= leader.commit_index - 5)

        wait_until(caught_up, timeout=30)
        listed = turnstile(cluster, "members", "--json")
        assert sorted(m["node"] for m in __import__("json").loads(listed.stdout)) == [
            "n1",
            "n2",
            "n3",
            "n4",
        ]
        leader_id = node_status(cluster.leader()).node_id  # type: ignore[union-attr]
        refused = turnstile(cluster, "members", "remove", leader_id)
        assert refused.returncode == 5 and "transfer leadership first" in refused.stderr
        assert turnstile(cluster, "members", "remove", "n9").returncode == 4
        removed = turnstile(cluster, "members", "remove", "n4", "--timeout", "10")
        assert removed.returncode == 0, removed.stderr
        fourth.stop()
        status = turnstile(cluster, "status", "--json")
        assert status.returncode == 0, status.stdout
    finally:
        stop.set()
        worker.join(timeout=30)
        client.close()
        fourth.stop()
    assert not errors, errors
    assert done and done[0] > 0
    with connect(cluster.addresses) as reader:
        assert len(reader.distinct_list("added-under-load")) == done[0], "no insert lost or doubled"
