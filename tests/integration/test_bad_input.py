"""Bad input over the wire: the documented status and reason, and the cluster keeps serving."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from tests.integration.cluster import Cluster, WireClient, error_reason
from turnstile.cluster.errors import STATUS_CODES
from turnstile.cluster.limits import Limits
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.integration


def _refusal(call: object) -> tuple[grpc.StatusCode, Reason | None, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()  # type: ignore[operator]
    error = refused.value
    return error.code(), error_reason(error), error.details()


@pytest.mark.shared_cluster
def test_bad_requests_are_refused_with_reasons_and_nothing_is_lost(cluster: Cluster) -> None:
    leader = cluster.leader()
    client = WireClient(cluster, leader).open()
    client.set_up("kept")
    kept = client.insert("kept", b"keep-me")
    token = client.acquire("held-kept").token
    locks = cluster.stubs(leader).locks
    lists = cluster.stubs(leader).lists

    def acquire(name: str, session: int | None = None) -> object:
        rid = client.request_id()
        if session is not None:
            rid.session_id = session
        return lambda: locks.Acquire(pb.AcquireRequest(request=rid, name=name), timeout=5)

    def insert(*members: bytes) -> object:
        request = pb.InsertRequest(request=client.request_id(), name="kept", members=members)
        return lambda: lists.Insert(request, timeout=5)

    cases = [
        (acquire(""), Reason.INVALID_ARGUMENT, "lock name must not be empty"),
        (acquire("x" * 300), Reason.INVALID_ARGUMENT, "max_name_bytes"),
        (acquire("bad\nname"), Reason.INVALID_ARGUMENT, "control character"),
        (acquire("ok", session=987654), Reason.SESSION_EXPIRED, "987654"),
        (
            lambda: locks.Release(
                pb.ReleaseRequest(
                    request=client.request_id(), name="held-kept", token=token + 1000
                ),
                timeout=5,
            ),
            Reason.NOT_HOLDER,
            "does not hold",
        ),
        (insert(*[b"m%d" % i for i in range(1001)]), Reason.LIMIT_EXCEEDED, "max_batch"),
        (insert(b""), Reason.INVALID_ARGUMENT, "member 0 is empty"),
        (insert(b"z" * 2000), Reason.INVALID_ARGUMENT, "max_member_bytes"),
        (
            lambda: lists.Insert(
                pb.InsertRequest(request=client.request_id(), name="nope", members=[b"a"]),
                timeout=5,
            ),
            Reason.NOT_FOUND,
            "does not exist",
        ),
        (
            lambda: cluster.stubs(leader).sessions.Open(pb.OpenSessionRequest(ttl_ms=1), timeout=5),
            Reason.INVALID_ARGUMENT,
            "ttl_ms",
        ),
        (
            lambda: cluster.stubs(leader).sessions.Open(
                pb.OpenSessionRequest(ttl_ms=5000, client_name="n" * 300), timeout=5
            ),
            Reason.INVALID_ARGUMENT,
            "client_name is 300 bytes, over max_name_bytes=256",
        ),
        (
            lambda: locks.Acquire(
                pb.AcquireRequest(request=pb.RequestId(session_id=client.session), name="x"),
                timeout=5,
            ),
            Reason.INVALID_ARGUMENT,
            "seq must be >= 1 and above acked, got seq=0 acked=0",
        ),
        (
            lambda: locks.Acquire(
                pb.AcquireRequest(
                    request=pb.RequestId(
                        session_id=client.session, seq=10**6, answered=range(1, 1026)
                    ),
                    name="x",
                ),
                timeout=5,
            ),
            Reason.INVALID_ARGUMENT,
            "1025 answered seqs in one request, over max_results_per_session=1024",
        ),
        (
            lambda: locks.Acquire(
                pb.AcquireRequest(request=client.request_id(), name="x", wait_ms=8 * 86_400_000),
                timeout=5,
            ),
            Reason.INVALID_ARGUMENT,
            "wait_ms is 691200000 ms, over max_duration_ms=604800000",
        ),
        (
            lambda: lists.Contains(
                pb.ContainsRequest(name="kept", members=[b"m%d" % i for i in range(1001)]),
                timeout=5,
            ),
            Reason.LIMIT_EXCEEDED,
            "batch of 1001 members is over max_batch=1000",
        ),
        (
            lambda: cluster.stubs(leader).cluster.ForceRelease(
                pb.ForceReleaseRequest(name="held-kept", reason="r" * 2000), timeout=5
            ),
            Reason.INVALID_ARGUMENT,
            "reason is 2000 bytes, over max_reason_bytes=1024",
        ),
    ]
    for call, reason, text in cases:
        code, got, details = _refusal(call)
        assert (got, code) == (reason, STATUS_CODES[reason]), details
        assert text in details, details

    # Arbitrary binary members are members like any other and come back byte for byte.
    garbage = bytes(range(256))
    assert client.insert("kept", garbage, b"\xff\xfe\x00") == [(True, 2), (True, 3)]
    page = lists.Members(pb.MembersRequest(name="kept"), timeout=5)
    assert [m.member for m in page.members] == [b"keep-me", garbage, b"\xff\xfe\x00"]
    assert kept == [(True, 1)]
    assert locks.Validate(pb.ValidateRequest(name="held-kept", token=token), timeout=5).valid


@pytest.mark.shared_cluster
def test_undecodable_request_bytes_do_not_hurt_the_node(cluster: Cluster) -> None:
    leader = cluster.leader()
    channel = grpc.insecure_channel(leader)
    try:
        raw = channel.unary_unary("/turnstile.v1.DistinctLists/Insert")
        with pytest.raises(grpc.RpcError) as refused:
            raw(b"\xff\xff\xff\xff garbage", timeout=5)
        assert refused.value.code() != grpc.StatusCode.OK
    finally:
        channel.close()
    client = WireClient(cluster, leader).open()
    assert client.acquire("serving-after-garbage").acquired


def test_configured_limits_are_replicated_and_enforced(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "small", limits=Limits(max_batch=5, max_waiters_per_lock=1))
    try:
        cluster.start_all()
        leader = cluster.leader(timeout=30)
        client = WireClient(cluster, leader).open()
        client.set_up("small")
        assert len(client.insert("small", *(b"%d" % i for i in range(5)))) == 5
        request = pb.InsertRequest(
            request=client.request_id(), name="small", members=[b"%d" % i for i in range(6)]
        )
        _, reason, details = _refusal(
            lambda: cluster.stubs(leader).lists.Insert(request, timeout=5)
        )
        assert reason is Reason.LIMIT_EXCEEDED and "max_batch=5" in details
    finally:
        cluster.close()


def _data_bytes(cluster: Cluster) -> list[int]:
    """Apparent size of every file under each node's data directory."""
    return [
        sum(p.stat().st_size for p in config.data_dir.rglob("*") if p.is_file())
        for config in cluster.configs
    ]


@pytest.mark.shared_cluster
def test_an_oversize_insert_is_refused_before_it_is_replicated(cluster: Cluster) -> None:
    """700,000 members (about 6 MB, under the 8 MiB receive limit) are refused by the leader's
    admission check in O(1): nothing is encoded, journaled or sent to the followers, and the
    cluster keeps its leader and serves on."""
    leader = cluster.leader()
    client = WireClient(cluster, leader).open()
    client.set_up("oversize")
    stubs = cluster.stubs(leader)
    term = stubs.cluster.Status(pb.StatusRequest(), timeout=5).header.term
    request = pb.InsertRequest(
        request=client.request_id(),
        name="oversize",
        members=[b"m%06d" % i for i in range(700_000)],
    )
    size = request.ByteSize()
    assert 5_000_000 < size < 8 * 1024 * 1024
    before = _data_bytes(cluster)

    started = time.monotonic()
    code, reason, details = _refusal(lambda: stubs.lists.Insert(request, timeout=30))
    took = time.monotonic() - started
    time.sleep(1.0)  # long enough for a proposed entry to reach every follower's journal
    grown = [after - was for after, was in zip(_data_bytes(cluster), before, strict=True)]
    print(f"700k insert: {size} bytes, refused in {took:.3f}s, data dirs grew {grown}")

    assert (reason, code) == (Reason.LIMIT_EXCEEDED, STATUS_CODES[Reason.LIMIT_EXCEEDED])
    assert "batch of 700000 members is over max_batch=1000" in details, details
    # Normal ticks write a little; the refused request would have written ``size`` per node.
    assert all(g < size // 10 for g in grown), (grown, size)
    assert took < 2.0, took

    assert cluster.leader() == leader
    assert stubs.cluster.Status(pb.StatusRequest(), timeout=5).header.term == term
    assert client.insert("oversize", b"small") == [(True, 1)]
    assert client.acquire("serving-after-oversize").acquired
