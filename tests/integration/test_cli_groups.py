"""``turnstile groups``, ``group show``, ``elections``, ``election show`` on a real cluster."""

from __future__ import annotations

import json

import pytest

from tests.integration.cluster import Cluster, WireClient
from tests.integration.test_cli import turnstile
from tests.integration.test_groups_api import campaign, clients
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.integration


@pytest.mark.shared_cluster
def test_groups_and_elections_are_shown_as_tables_and_json(cluster: Cluster) -> None:
    a, b = clients(cluster, "alpha", "beta")
    for name in ("web", "workers"):
        a.call("groups", "Create", pb.CreateGroupRequest(request=a.request_id(), name=name))
    join(a, "workers", "w1", b"host=10.0.0.1")
    join(b, "workers", "w2", b"")
    leader = campaign(a, "scheduler", "w1")
    campaign(b, "scheduler", "w2")

    listed = json.loads(turnstile(cluster, "groups", "w", "--json").stdout)
    assert [(g["name"], g["members"]) for g in listed] == [("web", 0), ("workers", 2)]
    shown = json.loads(turnstile(cluster, "group", "show", "workers", "--json").stdout)
    assert [(m["member"], m["session"], m["capabilities"]) for m in shown["members"]] == [
        ("w1", a.session, "host=10.0.0.1"),
        ("w2", b.session, None),
    ]
    assert shown["members"][0]["client"].startswith("alpha@")

    elections = json.loads(turnstile(cluster, "elections", "sched", "--json").stdout)
    assert [(e["name"], e["leader"], e["token"], e["candidates"]) for e in elections] == [
        ("scheduler", "w1", leader.token, 1)
    ]
    election = json.loads(turnstile(cluster, "election", "show", "scheduler", "--json").stdout)
    assert [(c["position"], c["member"]) for c in election["queue"]] == [(2, "w2")]

    table = turnstile(cluster, "group", "show", "workers")
    assert table.returncode == 0, table.stderr
    assert "MEMBER" in table.stdout and "w2" in table.stdout


@pytest.mark.shared_cluster
def test_a_missing_group_or_election_is_a_clear_error(cluster: Cluster) -> None:
    clients(cluster, "a")
    for args in (("group", "show", "nope"), ("election", "show", "nope")):
        missing = turnstile(cluster, *args)
        assert missing.returncode != 0
        assert "nope" in missing.stderr and "Traceback" not in missing.stderr


def join(client: WireClient, name: str, member_id: str, capabilities: bytes) -> None:
    request = pb.JoinGroupRequest(
        request=client.request_id(), name=name, member_id=member_id, capabilities=capabilities
    )
    assert client.call("groups", "Join", request).joined
