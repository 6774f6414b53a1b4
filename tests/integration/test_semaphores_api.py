"""Semaphores, acquires of several locks and descriptions over the wire, on a real cluster.

The raw API (``WireClient``), so these hold for any client: a blocked permit acquire and a
blocked several-lock acquire are answered by the hand-off, a raised limit grants waiters at
once, two callers naming the same locks in opposite orders both finish, descriptions show in
Describe, and bad input gets a clear status.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest

from tests.integration.cluster import Cluster, WireClient, error_reason, wait_until
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = [pytest.mark.integration, pytest.mark.shared_cluster]

ANSWER_WITHIN_S = 40


def clients(cluster: Cluster, *names: str) -> list[WireClient]:
    leader = cluster.leader()
    # Sessions outlive the longest wait here: the test sends no keep-alives.
    opened = [WireClient(cluster, leader, name=n, ttl_ms=300_000).open() for n in names]
    wait_until(lambda: _cluster_version_is_6(opened[0]), timeout=30)
    return opened


def _cluster_version_is_6(client: WireClient) -> bool:
    try:
        client.call("semaphores", "List", pb.ListSemaphoresRequest())
    except grpc.RpcError as error:
        if error_reason(error) is Reason.FAILED_PRECONDITION:
            return False
        raise
    return True


def permit(
    client: WireClient, name: str, limit: int, wait_ms: int = 0, description: str = ""
) -> pb.AcquireResponse:
    request = pb.AcquirePermitRequest(
        request=client.request_id(),
        name=name,
        limit=limit,
        wait_ms=wait_ms,
        description=description,
    )
    response: pb.AcquireResponse = client.call(
        "semaphores", "Acquire", request, timeout=10 + wait_ms / 1000
    )
    return response


def acquire_many(
    client: WireClient, names: list[str], wait_ms: int = 0, description: str = ""
) -> pb.AcquireManyResponse:
    request = pb.AcquireManyRequest(
        request=client.request_id(), names=names, wait_ms=wait_ms, description=description
    )
    response: pb.AcquireManyResponse = client.call(
        "locks", "AcquireMany", request, timeout=10 + wait_ms / 1000
    )
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


def describe_semaphore(client: WireClient, name: str) -> pb.SemaphoreInfo:
    described = client.call("semaphores", "Describe", pb.DescribeSemaphoreRequest(name=name))
    info: pb.SemaphoreInfo = described.semaphore
    return info


def test_permits_up_to_the_limit_then_a_blocked_waiter_is_granted_by_a_release(
    cluster: Cluster,
) -> None:
    a, b, c = clients(cluster, "sem-a", "sem-b", "sem-c")
    first = permit(a, "api-pool", 2, description="job=1")
    second = permit(b, "api-pool", 2, description="job=2")
    assert first.acquired and second.acquired and second.token > first.token
    assert not permit(c, "api-pool", 2).acquired  # try-once: both permits are held

    waiting, box = in_thread(lambda: permit(c, "api-pool", 2, wait_ms=60_000, description="job=3"))
    info = wait_until(lambda: (i := describe_semaphore(a, "api-pool")).waiters and i, timeout=20)
    assert info.limit == 2
    assert [(h.session_id, h.description) for h in info.holders] == [
        (a.session, "job=1"),
        (b.session, "job=2"),
    ]
    assert [(w.session_id, w.description) for w in info.waiters] == [(c.session, "job=3")]

    a.call(
        "semaphores",
        "Release",
        pb.ReleasePermitRequest(request=a.request_id(), name="api-pool", token=first.token),
    )
    waiting.join(ANSWER_WITHIN_S)
    third = box["answer"]
    assert third.acquired and third.token > second.token
    holders = describe_semaphore(a, "api-pool").holders
    assert [h.session_id for h in holders] == [b.session, c.session]


def test_raising_the_limit_grants_the_waiters_at_once(cluster: Cluster) -> None:
    a, b, c = clients(cluster, "raise-a", "raise-b", "raise-c")
    assert permit(a, "api-raise", 1).acquired
    waiting, box = in_thread(lambda: permit(b, "api-raise", 1, wait_ms=60_000))
    wait_until(lambda: describe_semaphore(a, "api-raise").waiters, timeout=20)
    # A caller with a larger limit raises it: the queued waiter is granted in that step.
    assert permit(c, "api-raise", 3).acquired
    waiting.join(ANSWER_WITHIN_S)
    assert box["answer"].acquired
    info = describe_semaphore(a, "api-raise")
    assert (info.limit, len(info.holders), len(info.waiters)) == (3, 3, 0)


def test_two_callers_naming_the_same_locks_in_opposite_orders_both_finish(
    cluster: Cluster,
) -> None:
    a, b, c = clients(cluster, "many-a", "many-b", "many-c")
    blocker = a.acquire("api-m/2")
    assert blocker.acquired
    forward, forward_box = in_thread(lambda: acquire_many(b, ["api-m/1", "api-m/2"], 60_000, "fwd"))
    wait_until(lambda: cluster.lock_info("api-m/1").waiters, timeout=20)
    backward, backward_box = in_thread(
        lambda: acquire_many(c, ["api-m/2", "api-m/1"], 60_000, "back")
    )
    wait_until(lambda: len(cluster.lock_info("api-m/1").waiters) == 2, timeout=20)
    free_but_queued = cluster.lock_info("api-m/1")
    # m/1 is free, but its head waiter also waits for m/2: nobody takes it meanwhile.
    assert not free_but_queued.HasField("holder")
    assert [list(w.names) for w in free_but_queued.waiters] == [
        ["api-m/1", "api-m/2"],
        ["api-m/2", "api-m/1"],
    ]
    assert [w.description for w in free_but_queued.waiters] == ["fwd", "back"]
    assert not a.acquire("api-m/1").acquired

    a.release("api-m/2", blocker.token)
    forward.join(ANSWER_WITHIN_S)
    got = forward_box["answer"]
    assert got.acquired and [g.name for g in got.grants] == ["api-m/1", "api-m/2"]
    held = {n: cluster.lock_info(n).holder for n in ("api-m/1", "api-m/2")}
    assert {h.session_id for h in held.values()} == {b.session}
    assert {h.description for h in held.values()} == {"fwd"}
    assert not backward_box  # still queued behind b
    for grant in got.grants:
        b.release(grant.name, grant.token)
    backward.join(ANSWER_WITHIN_S)
    done = backward_box["answer"]
    assert done.acquired and [g.name for g in done.grants] == ["api-m/2", "api-m/1"]
    assert min(g.token for g in done.grants) > max(g.token for g in got.grants)


@pytest.mark.parametrize(
    ("service", "method", "request_of", "words"),
    [
        ("locks", "AcquireMany", lambda c: pb.AcquireManyRequest(request=c), "at least one lock"),
        (
            "locks",
            "AcquireMany",
            lambda c: pb.AcquireManyRequest(request=c, names=["x", "y", "x"]),
            "'x' is named twice",
        ),
        (
            "semaphores",
            "Acquire",
            lambda c: pb.AcquirePermitRequest(request=c, name="s", limit=0),
            "limit must be 1..",
        ),
        (
            "locks",
            "Acquire",
            lambda c: pb.AcquireRequest(request=c, name="d", description="x" * 10_000),
            "description",
        ),
        (
            "semaphores",
            "Release",
            lambda c: pb.ReleasePermitRequest(request=c, name="", token=1),
            "semaphore name",
        ),
    ],
)
def test_bad_input_gets_a_clear_invalid_argument(
    cluster: Cluster, service: str, method: str, request_of: Any, words: str
) -> None:
    (client,) = clients(cluster, f"bad-{method}-{words[:5]}")
    with pytest.raises(grpc.RpcError) as refused:
        client.call(service, method, request_of(client.request_id()))
    assert error_reason(refused.value) is Reason.INVALID_ARGUMENT
    assert words in refused.value.details()  # type: ignore[attr-defined]


def test_a_release_by_a_token_that_holds_no_permit_is_not_holder(cluster: Cluster) -> None:
    a, b = clients(cluster, "nh-a", "nh-b")
    granted = permit(a, "api-nh", 2)
    with pytest.raises(grpc.RpcError) as refused:
        b.call(
            "semaphores",
            "Release",
            pb.ReleasePermitRequest(request=b.request_id(), name="api-nh", token=granted.token),
        )
    assert error_reason(refused.value) is Reason.NOT_HOLDER
    assert [h.token for h in describe_semaphore(a, "api-nh").holders] == [granted.token]
