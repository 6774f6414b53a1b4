"""Reverse lookup of a distinct list (id -> member) through both clients and the CLI, on a
real cluster."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.cluster import Cluster
from tests.integration.test_cli import turnstile
from turnstile.client import aio, connect

pytestmark = pytest.mark.integration


@pytest.mark.shared_cluster
def test_every_id_maps_back_to_its_member(cluster: Cluster) -> None:
    with connect(cluster.addresses) as client:
        results = client.distinct_list("lookup-results")
        given = {member: results.insert(member)[1] for member in ("k1", "k2", "k1", "k3")}
        assert {results.member(i) for i in given.values()} == {b"k1", b"k2", b"k3"}
        assert all(results.member(i) == m.encode() for m, i in given.items())
        assert results.member(len(given) + 5) is None
        assert client.distinct_list("lookup-nope").member(1) is None

    async def from_asyncio() -> list[bytes | None]:
        async with aio.connect(cluster.addresses) as client:
            results = client.distinct_list("lookup-results")
            return [await results.member(i) for i in (3, 1, 4)]

    assert asyncio.run(from_asyncio()) == [b"k3", b"k1", None]

    shown = turnstile(cluster, "list", "get", "lookup-results", "2", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"name": "lookup-results", "id": 2, "member": "k2"}
    missing = turnstile(cluster, "list", "get", "lookup-results", "9")
    assert missing.returncode == 4
    assert "no member with id 9" in missing.stderr and "Traceback" not in missing.stderr
