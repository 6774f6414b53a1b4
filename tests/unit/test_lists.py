"""Distinct lists: set up, dense ids, duplicates, reads, TTL, tear down, bounds."""

from __future__ import annotations

import pytest
from helpers import Driver, assert_unchanged, err, result

from turnstile.cluster import views
from turnstile.cluster.commands import (
    LIST_CREATED,
    LIST_INSERTED,
    LIST_TORN_DOWN,
    Err,
    Inserted,
    ListChanged,
    ListExpired,
    ListSetUp,
    TornDown,
)
from turnstile.cluster.limits import Limits
from turnstile.cluster.views import ListView
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit


def view(d: Driver, name: str = "runs") -> ListView:
    found = views.list_view(d.sm, name, now=d.now)
    assert not isinstance(found, Err), found
    return found


def list_names(d: Driver) -> list[str]:
    found = views.list_lists(d.sm, "", "", 0, now=d.now)
    assert not isinstance(found, Err)
    return [v.name for v in found]


def new_list(d: Driver, name: str = "runs", ttl_ms: int = 0) -> int:
    """Opens a session, sets up ``name`` and returns the session."""
    s = d.session()
    result(d.set_up(s, name, ttl_ms), ListSetUp)
    return s


# --------------------------------------------------------------------------- set up


def test_set_up_creates_an_empty_list() -> None:
    d = Driver(now=1_000)
    s = d.session()
    applied = d.set_up(s, "runs", 5_000)
    assert applied.result == ListSetUp(created=True, expires_at=6_000)
    assert applied.events == (ListChanged("runs", LIST_CREATED),)
    assert view(d) == ListView("runs", size=0, ttl_ms=5_000, expires_in_ms=5_000)
    assert views.members(d.sm, "runs", 0, 0) == []


def test_set_up_is_idempotent_and_resets_the_ttl() -> None:
    d = Driver()
    s = d.session()
    result(d.set_up(s, "runs", 1_000), ListSetUp)
    result(d.insert(s, "runs", b"a", b"b"), Inserted)
    d.at(800)
    again = d.set_up(s, "runs", 1_000)
    assert again.result == ListSetUp(created=False, expires_at=1_800)
    assert view(d).size == 2  # nothing lost
    assert views.contains(d.sm, "runs", (b"a", b"b")) == [1, 2]
    # The first expiry no longer fires; the reset one does.
    assert d.tick(1_000).events == ()
    assert d.tick(1_799).events == ()
    assert d.tick(1_800).events == (ListExpired("runs"),)


def test_set_up_again_with_ttl_zero_removes_the_expiry() -> None:
    d = Driver()
    s = new_list(d, ttl_ms=1_000)
    assert d.set_up(s, "runs", 0).result == ListSetUp(created=False, expires_at=0)
    assert d.tick(10**9).events == ()
    assert view(d).expires_in_ms == 0
    assert d.sm.next_due() is None


def test_ttl_zero_means_no_expiry() -> None:
    d = Driver()
    s = d.session()
    assert d.set_up(s, "runs", 0).result == ListSetUp(created=True, expires_at=0)
    assert d.tick(10**12).events == ()
    assert list_names(d) == ["runs"]


# --------------------------------------------------------------------------- insert


def test_ids_are_dense_in_insertion_order_across_batches() -> None:
    d = Driver()
    s = new_list(d)
    first = d.insert(s, "runs", b"k1", b"k2", b"k3")
    assert first.result == Inserted(((True, 1), (True, 2), (True, 3)))
    assert first.events == (ListChanged("runs", LIST_INSERTED, 1, 3),)
    second = d.insert(s, "runs", b"k4")
    assert second.result == Inserted(((True, 4),))
    assert views.members(d.sm, "runs", 0, 0) == [(1, b"k1"), (2, b"k2"), (3, b"k3"), (4, b"k4")]
    assert view(d).size == 4


def test_a_duplicate_gets_the_id_it_was_first_given() -> None:
    d = Driver()
    s = new_list(d)
    result(d.insert(s, "runs", b"foo", b"bar"), Inserted)
    again = d.insert(s, "runs", b"bar", b"new", b"foo")
    assert again.result == Inserted(((False, 2), (True, 3), (False, 1)))
    assert view(d).size == 3
    assert views.counts(d.sm).members == 3


def test_duplicates_within_one_batch() -> None:
    d = Driver()
    s = new_list(d)
    applied = d.insert(s, "runs", b"x", b"y", b"x", b"z", b"y", b"x")
    assert applied.result == Inserted(
        ((True, 1), (True, 2), (False, 1), (True, 3), (False, 2), (False, 1))
    )
    assert view(d).size == 3
    assert views.counts(d.sm).members == 3
    assert views.members(d.sm, "runs", 0, 0) == [(1, b"x"), (2, b"y"), (3, b"z")]


def test_members_are_bytes_compared_exactly() -> None:
    d = Driver()
    s = new_list(d)
    applied = d.insert(s, "runs", b"a", b"A", b"a ", b"\x00", b"\x00\x00")
    assert applied.result == Inserted(tuple((True, i) for i in range(1, 6)))


def test_lists_are_independent() -> None:
    d = Driver()
    s = new_list(d, "one")
    result(d.set_up(s, "two"), ListSetUp)
    result(d.insert(s, "one", b"a", b"b"), Inserted)
    assert d.insert(s, "two", b"b").result == Inserted(((True, 1),))
    assert views.contains(d.sm, "one", (b"b",)) == [2]
    assert views.contains(d.sm, "two", (b"a", b"b")) == [0, 1]


def test_insert_into_a_missing_list_is_not_found_and_changes_nothing() -> None:
    d = Driver()
    s = new_list(d, "exists")
    before = d.dump()
    err(d.insert(s, "missing", b"x"), Reason.NOT_FOUND, "'missing'")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))
    assert list_names(d) == ["exists"]


# --------------------------------------------------------------------------- reads


def test_contains_reports_ids_and_zero_for_absent_members() -> None:
    d = Driver()
    s = new_list(d)
    result(d.insert(s, "runs", b"a", b"b", b"c"), Inserted)
    assert views.contains(d.sm, "runs", (b"c", b"zz", b"a", b"c")) == [3, 0, 1, 3]
    missing = views.contains(d.sm, "nope", (b"a",))
    assert isinstance(missing, Err)
    assert missing.reason is Reason.NOT_FOUND
    empty = views.contains(d.sm, "runs", ())
    assert isinstance(empty, Err)
    assert empty.reason is Reason.INVALID_ARGUMENT


def test_lookup_maps_ids_back_to_members_and_refuses_bad_batches() -> None:
    d = Driver(Limits(max_batch=5))
    s = new_list(d)
    result(d.insert(s, "runs", b"a", b"b", b"c"), Inserted)
    assert views.lookup(d.sm, "runs", (3, 1, 0, 4, 1)) == [b"c", b"a", b"", b"", b"a"]
    for ids, reason, words in (
        ((1, 2, 3, 1, 2, 3), Reason.LIMIT_EXCEEDED, "max_batch=5"),
        ((), Reason.INVALID_ARGUMENT, "ids must not be empty"),
    ):
        refused = views.lookup(d.sm, "runs", ids)
        assert isinstance(refused, Err) and refused.reason is reason and words in refused.detail
    missing = views.lookup(d.sm, "nope", (1,))
    assert isinstance(missing, Err) and missing.reason is Reason.NOT_FOUND


def test_members_pages_in_id_order() -> None:
    d = Driver(Limits(max_page=3))
    s = new_list(d)
    result(d.insert(s, "runs", *(f"m{i}".encode() for i in range(1, 8))), Inserted)
    assert views.members(d.sm, "runs", 0, 2) == [(1, b"m1"), (2, b"m2")]
    assert views.members(d.sm, "runs", 2, 2) == [(3, b"m3"), (4, b"m4")]
    # 0 means the largest page, and a larger limit is clamped to max_page.
    assert views.members(d.sm, "runs", 4, 0) == [(5, b"m5"), (6, b"m6"), (7, b"m7")]
    assert views.members(d.sm, "runs", 0, 100) == [(1, b"m1"), (2, b"m2"), (3, b"m3")]
    assert views.members(d.sm, "runs", 6, 5) == [(7, b"m7")]
    assert views.members(d.sm, "runs", 7, 5) == []
    assert views.members(d.sm, "runs", 1_000, 5) == []
    # Walking every page yields every member once, in order.
    walked: list[tuple[int, bytes]] = []
    after = 0
    while page := views.members(d.sm, "runs", after, 0):
        assert not isinstance(page, Err)
        walked.extend(page)
        after = page[-1][0]
    assert walked == [(i, f"m{i}".encode()) for i in range(1, 8)]


def test_members_refuses_a_negative_limit_and_a_missing_list() -> None:
    d = Driver()
    new_list(d)
    negative = views.members(d.sm, "runs", 0, -1)
    assert isinstance(negative, Err)
    assert negative.reason is Reason.INVALID_ARGUMENT
    missing = views.members(d.sm, "nope", 0, 0)
    assert isinstance(missing, Err)
    assert missing.reason is Reason.NOT_FOUND


@pytest.mark.parametrize("after_id", [-1, -3])
def test_members_with_a_negative_after_id_is_invalid_argument(after_id: int) -> None:
    """Not a slice from the end of the list (which would report ids <= 0)."""
    d = Driver()
    s = new_list(d)
    result(d.insert(s, "runs", b"a", b"b", b"c"), Inserted)
    page = views.members(d.sm, "runs", after_id, 0)
    assert isinstance(page, Err)
    assert page.reason is Reason.INVALID_ARGUMENT
    assert "after_id" in page.detail


def test_list_view_reports_size_ttl_and_remaining_time() -> None:
    d = Driver(now=100)
    s = new_list(d, ttl_ms=1_000)
    result(d.insert(s, "runs", b"a", b"b"), Inserted)
    assert views.list_view(d.sm, "runs", now=600) == ListView("runs", 2, 1_000, 500)
    missing = views.list_view(d.sm, "nope", now=600)
    assert isinstance(missing, Err)
    assert missing.reason is Reason.NOT_FOUND


def test_list_lists_by_prefix_and_after() -> None:
    d = Driver()
    s = d.session()
    for name in ("run-b", "run-a", "other", "run-c"):
        result(d.set_up(s, name), ListSetUp)
    found = views.list_lists(d.sm, "run-", "run-a", 0, now=0)
    assert not isinstance(found, Err)
    assert [v.name for v in found] == ["run-b", "run-c"]


# --------------------------------------------------------------------------- TTL and tear down


def test_a_list_expires_when_its_ttl_passes() -> None:
    d = Driver()
    s = new_list(d, ttl_ms=1_000)
    result(d.insert(s, "runs", b"a"), Inserted)
    assert d.sm.next_due() == 1_000
    assert d.tick(999).events == ()
    assert view(d).size == 1
    applied = d.tick(1_000)
    assert applied.events == (ListExpired("runs"),)
    assert list_names(d) == []
    assert views.counts(d.sm).lists == 0
    assert views.counts(d.sm).members == 0
    err(d.insert(s, "runs", b"a"), Reason.NOT_FOUND)


def test_a_list_expires_before_a_later_command_that_uses_it() -> None:
    d = Driver()
    s = new_list(d, ttl_ms=1_000)
    result(d.insert(s, "runs", b"a"), Inserted)
    d.at(5_000)
    applied = d.insert(s, "runs", b"a")
    err(applied, Reason.NOT_FOUND)
    assert applied.events == (ListExpired("runs"),)
    # Set up again: a new, empty list whose ids restart at 1.
    assert d.set_up(s, "runs", 0).result == ListSetUp(created=True, expires_at=0)
    assert d.insert(s, "runs", b"z").result == Inserted(((True, 1),))


def test_tear_down_deletes_the_list_and_its_ids() -> None:
    d = Driver()
    s = new_list(d, ttl_ms=1_000)
    result(d.insert(s, "runs", b"a", b"b"), Inserted)
    applied = d.tear_down(s, "runs")
    assert applied.result == TornDown(removed=True)
    assert applied.events == (ListChanged("runs", LIST_TORN_DOWN),)
    assert list_names(d) == []
    assert views.counts(d.sm).members == 0
    err(d.insert(s, "runs", b"a"), Reason.NOT_FOUND, "'runs'")
    assert d.tear_down(s, "runs").result == TornDown(removed=False)
    # Its TTL no longer fires, even once a list of the same name exists again.
    result(d.set_up(s, "runs", 0), ListSetUp)
    assert d.tick(1_000).events == ()
    assert d.insert(s, "runs", b"b").result == Inserted(((True, 1),))


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("", "must not be empty"),
        ("x" * 9, "max_name_bytes=8"),
        ("a\tb", "control character"),
    ],
)
def test_a_bad_list_name_is_invalid_argument_and_changes_nothing(name: str, detail: str) -> None:
    d = Driver(Limits(max_name_bytes=8))
    s = new_list(d, "ok")
    before = d.dump()
    for attempt in ("set_up", "insert", "tear_down"):
        if attempt == "set_up":
            applied = d.set_up(s, name)
        elif attempt == "insert":
            applied = d.insert(s, name, b"m")
        else:
            applied = d.tear_down(s, name)
        err(applied, Reason.INVALID_ARGUMENT, "list name", detail)
        assert_unchanged(before, d, retained=(s, d.last_seq(s)))
        before = d.dump()
    for read in (
        views.list_view(d.sm, name, 0),
        views.contains(d.sm, name, (b"m",)),
        views.members(d.sm, name, 0, 0),
    ):
        assert isinstance(read, Err)
        assert read.reason is Reason.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("members", "reason", "detail"),
    [
        ((), Reason.INVALID_ARGUMENT, "must not be empty"),
        ((b"ok", b""), Reason.INVALID_ARGUMENT, "member 1 is empty"),
        ((b"12345",), Reason.INVALID_ARGUMENT, "max_member_bytes=4"),
        ((b"a", b"b", b"c", b"d"), Reason.LIMIT_EXCEEDED, "max_batch=3"),
    ],
)
def test_a_bad_batch_is_refused_whole_and_changes_nothing(
    members: tuple[bytes, ...], reason: Reason, detail: str
) -> None:
    d = Driver(Limits(max_member_bytes=4, max_batch=3))
    s = new_list(d)
    result(d.insert(s, "runs", b"x"), Inserted)
    before = d.dump()
    err(d.insert(s, "runs", *members), reason, detail)
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))
    assert view(d).size == 1
    read = views.contains(d.sm, "runs", members)
    assert isinstance(read, Err)
    assert read.reason is reason


def test_a_batch_at_the_bounds_is_accepted() -> None:
    d = Driver(Limits(max_member_bytes=4, max_batch=3))
    s = new_list(d)
    assert d.insert(s, "runs", b"1234", b"a", b"b").result == Inserted(
        ((True, 1), (True, 2), (True, 3))
    )


def test_too_many_lists_is_limit_exceeded_and_changes_nothing() -> None:
    d = Driver(Limits(max_lists=2))
    s = new_list(d, "one")
    result(d.set_up(s, "two"), ListSetUp)
    before = d.dump()
    err(d.set_up(s, "three"), Reason.LIMIT_EXCEEDED, "max_lists=2")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))
    # Setting up an existing list again is not a new list.
    assert d.set_up(s, "two", 50).result == ListSetUp(created=False, expires_at=50)
    result(d.tear_down(s, "one"), TornDown)
    assert d.set_up(s, "three").result == ListSetUp(created=True, expires_at=0)


def test_members_per_list_is_limit_exceeded_for_the_whole_batch() -> None:
    d = Driver(Limits(max_members_per_list=3))
    s = new_list(d)
    result(d.insert(s, "runs", b"a", b"b"), Inserted)
    before = d.dump()
    # Two new members (c, d) would make 4: nothing of the batch is inserted.
    err(
        d.insert(s, "runs", b"a", b"c", b"d", b"c"), Reason.LIMIT_EXCEEDED, "max_members_per_list=3"
    )
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))
    assert views.contains(d.sm, "runs", (b"c", b"d")) == [0, 0]
    # Duplicates within the batch count once, and known members do not count.
    assert d.insert(s, "runs", b"c", b"a", b"c").result == Inserted(
        ((True, 3), (False, 1), (False, 3))
    )
    # At the bound, re-inserting known members still reports their ids.
    assert d.insert(s, "runs", b"b", b"c").result == Inserted(((False, 2), (False, 3)))
    err(d.insert(s, "runs", b"e"), Reason.LIMIT_EXCEEDED)


def test_a_list_ttl_over_the_bound_is_invalid_argument() -> None:
    d = Driver(Limits(max_duration_ms=1_000))
    s = d.session()
    before = d.dump()
    err(d.set_up(s, "runs", 1_001), Reason.INVALID_ARGUMENT, "ttl_ms", "max_duration_ms=1000")
    assert_unchanged(before, d, retained=(s, d.last_seq(s)))
    assert list_names(d) == []
