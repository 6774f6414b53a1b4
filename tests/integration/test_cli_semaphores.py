"""``turnstile semaphores``, ``semaphore show`` and the descriptions and waits of ``locks`` /
``lock show``, on a real cluster."""

from __future__ import annotations

import json

import pytest

from tests.integration.cluster import Cluster, wait_until
from tests.integration.test_cli import turnstile
from tests.integration.test_semaphores_api import acquire_many, clients, in_thread, permit
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.shared_cluster]


def test_semaphores_are_shown_with_holders_queue_and_descriptions(cluster: Cluster) -> None:
    a, b, c = clients(cluster, "alpha", "beta", "gamma")
    first = permit(a, "cli-gpus", 2, description="job=1 host=w1")
    permit(b, "cli-gpus", 2)
    waiting, _ = in_thread(lambda: permit(c, "cli-gpus", 2, wait_ms=60_000, description="job=3"))
    wait_until(
        lambda: (
            a.call(
                "semaphores", "Describe", pb.DescribeSemaphoreRequest(name="cli-gpus")
            ).semaphore.waiters
        ),
        timeout=20,
    )

    listed = json.loads(turnstile(cluster, "semaphores", "cli-g", "--json").stdout)
    assert listed == [{"name": "cli-gpus", "limit": 2, "held": 2, "waiters": 1}]
    shown = json.loads(turnstile(cluster, "semaphore", "show", "cli-gpus", "--json").stdout)
    assert [(h["session"], h["token"], h["description"]) for h in shown["holders"]] == [
        (a.session, first.token, "job=1 host=w1"),
        (b.session, first.token + 1, None),
    ]
    assert shown["holders"][0]["client"].startswith("alpha@")
    assert shown["holders"][0]["held_for"]
    assert [(w["position"], w["session"], w["description"]) for w in shown["queue"]] == [
        (1, c.session, "job=3")
    ]
    assert shown["queue"][0]["waited"] and shown["queue"][0]["gives_up_in"]

    by_session = {
        s["session"]: s for s in json.loads(turnstile(cluster, "sessions", "--json").stdout)
    }
    assert by_session[a.session]["permits"] == ["cli-gpus"]
    assert by_session[c.session]["permit_waits"] == ["cli-gpus"]

    table = turnstile(cluster, "semaphore", "show", "cli-gpus")
    assert table.returncode == 0, table.stderr
    assert "DESCRIPTION" in table.stdout and "job=1 host=w1" in table.stdout
    a.call(
        "semaphores",
        "Release",
        pb.ReleasePermitRequest(request=a.request_id(), name="cli-gpus", token=first.token),
    )
    waiting.join(30)


def test_locks_show_descriptions_and_the_other_locks_a_waiter_waits_for(
    cluster: Cluster,
) -> None:
    a, b = clients(cluster, "holder", "waiter")
    held = a.call(
        "locks",
        "Acquire",
        pb.AcquireRequest(request=a.request_id(), name="cli/x", description="job=7"),
    )
    assert held.acquired
    waiting, _ = in_thread(lambda: acquire_many(b, ["cli/x", "cli/y"], 60_000, "job=8"))
    wait_until(lambda: cluster.lock_info("cli/y").waiters, timeout=20)

    locks = json.loads(turnstile(cluster, "locks", "cli/", "--json").stdout)
    assert [(lk["name"], lk["description"], lk["waiters"]) for lk in locks] == [
        ("cli/x", "job=7", 1),
        ("cli/y", None, 1),
    ]
    shown = json.loads(turnstile(cluster, "lock", "show", "cli/y", "--json").stdout)
    assert shown["session"] is None
    assert [(w["session"], w["together_with"], w["description"]) for w in shown["queue"]] == [
        (b.session, ["cli/x"], "job=8")
    ]
    table = turnstile(cluster, "lock", "show", "cli/x")
    assert "job=7" in table.stdout and "job=8" in table.stdout and "WITH" in table.stdout
    a.release("cli/x", held.token)
    waiting.join(30)


def test_a_semaphore_not_in_use_is_a_clear_error(cluster: Cluster) -> None:
    clients(cluster, "nobody")
    missing = turnstile(cluster, "semaphore", "show", "cli-idle")
    assert missing.returncode != 0
    assert "cli-idle" in missing.stderr and "Traceback" not in missing.stderr
