"""Descriptions and what ``describe()`` returns, and the requests of semaphores and
``lock_many`` (client/describe_core.py, client/permit_core.py): no I/O."""

from __future__ import annotations

import threading

import pytest

from turnstile.client.describe_core import (
    MAX_DESCRIPTION_BYTES,
    HolderInfo,
    LockInfo,
    SemaphoreInfo,
    WaiterInfo,
    labels,
    render_description,
)
from turnstile.client.permit_core import (
    check_limit,
    entered,
    leaving,
    many_request,
    permit_request,
    wait_timeout,
)
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit


def test_a_mapping_is_rendered_as_key_value_pairs_quoted_where_needed() -> None:
    assert render_description(None) == ""
    assert render_description("nightly backup") == "nightly backup"
    rendered = render_description({"job": "42", "step": "copy files", "note": "it's"})
    assert rendered == "job=42 step='copy files' note='it'\"'\"'s'"
    assert labels(rendered) == {"job": "42", "step": "copy files", "note": "it's"}
    assert render_description({"empty": ""}) == "empty=''"
    assert labels("empty=''") == {"empty": ""}


def test_labels_are_empty_for_text_that_is_not_key_value_pairs() -> None:
    assert labels("") == {}
    assert labels("nightly backup") == {}
    assert labels("job=1 and more") == {}
    assert labels("=1") == {}
    assert labels("job='unclosed") == {}
    assert labels("url=http://h/?a=b") == {"url": "http://h/?a=b"}  # the first = splits


@pytest.mark.parametrize("key", ["", "two words", "a=b", "it's"])
def test_a_label_key_that_would_not_read_back_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="label key"):
        render_description({key: "v"})


def test_a_description_the_cluster_would_refuse_is_refused_before_sending() -> None:
    assert render_description("é" * (MAX_DESCRIPTION_BYTES // 2))  # bytes count, not chars
    with pytest.raises(ValueError, match=f"1026 bytes, over {MAX_DESCRIPTION_BYTES}"):
        render_description("é" * (MAX_DESCRIPTION_BYTES // 2 + 1))
    with pytest.raises(ValueError, match="control character"):
        render_description("line\nbreak")
    with pytest.raises(ValueError, match="control character"):
        render_description({"k": "tab\there"})


def test_holders_and_waiters_map_from_the_wire() -> None:
    holder = pb.LockHolder(
        session_id=3,
        token=9,
        held_for_ms=1500,
        expires_in_ms=250,
        client_name="w",
        client_host="h",
        client_pid=77,
        description="job=1",
        seq=12,
    )
    info = HolderInfo.from_pb(holder)
    assert info == HolderInfo(3, 9, 12, 1.5, 0.25, "job=1", "w", "h", 77)
    assert info.labels == {"job": "1"}
    assert HolderInfo.from_pb(pb.LockHolder(token=1)).expires_in is None  # 0: uncapped
    waiter = pb.LockWaiter(
        session_id=4, seq=5, waited_for_ms=2000, wait_remaining_ms=100, names=["a", "b"]
    )
    assert WaiterInfo.from_pb(waiter).names == ("a", "b")
    assert WaiterInfo.from_pb(waiter).waited_for == 2.0
    free = LockInfo.from_pb(pb.LockInfo(name="L", waiters=[waiter]))
    assert free.holder is None and len(free.waiters) == 1
    held = LockInfo.from_pb(pb.LockInfo(name="L", holder=holder))
    assert held.holder == info and held.waiters == ()
    semaphore = SemaphoreInfo.from_pb(
        pb.SemaphoreInfo(name="S", limit=3, holders=[holder, holder], waiters=[waiter])
    )
    assert (semaphore.limit, len(semaphore.holders), len(semaphore.waiters)) == (3, 2, 1)


def test_the_requests_of_a_permit_and_of_several_locks() -> None:
    permit = permit_request("pool", 3, 1.5, {"job": "7"})
    assert (permit.name, permit.limit, permit.max_hold_ms) == ("pool", 3, 1500)
    assert permit.description == "job=7" and permit.wait_ms == 0
    many = many_request(("b", "a"), None, "both")
    assert list(many.names) == ["b", "a"] and many.max_hold_ms == 0
    assert many.description == "both"
    with pytest.raises(ValueError, match="at least one"):
        many_request([], None, None)
    with pytest.raises(ValueError, match="twice"):
        many_request(["a", "b", "a"], None, None)
    with pytest.raises(TypeError, match="not one str"):
        many_request("ab", None, None)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="limit"):
            check_limit(bad)  # type: ignore[arg-type]
    assert wait_timeout(None) == -1 and wait_timeout(0) == 0 and wait_timeout(2.5) == 2.5


def test_each_thread_leaves_the_with_block_it_entered() -> None:
    owner, other = object(), object()
    entered(owner, "outer")
    entered(other, "elsewhere")
    entered(owner, "inner")
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(_leave_fresh(owner)))
    thread.start()
    thread.join()
    assert seen == ["fresh"]  # another thread's blocks are its own
    assert leaving(owner) == "inner"
    assert leaving(owner) == "outer"
    assert leaving(other) == "elsewhere"
    with pytest.raises(RuntimeError, match="did not enter"):
        leaving(owner)


def _leave_fresh(owner: object) -> object:
    entered(owner, "fresh")
    return leaving(owner)
