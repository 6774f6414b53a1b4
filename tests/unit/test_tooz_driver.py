"""The tooz backend's parts that need no cluster: the URL, the entry point, results that
raise on ``get()``, the error mapping, and the refusal of shared locks."""

from __future__ import annotations

import re

import pytest

tooz = pytest.importorskip("tooz")
from tooz import coordination  # noqa: E402

from turnstile.client import Client  # noqa: E402
from turnstile.client.errors import NotFoundError, UnavailableError  # noqa: E402
from turnstile.client.tooz_driver import (  # noqa: E402
    SHARED_LOCKS,
    TurnstileDriver,
    _result,
    _translated,
)
from turnstile.v1 import turnstile_pb2 as pb  # noqa: E402

pytestmark = pytest.mark.unit


def test_the_url_names_the_endpoints_and_options_and_the_entry_point_finds_the_driver() -> None:
    driver = coordination.get_coordinator(
        "turnstile://127.0.0.1:7001,127.0.0.1:7002?timeout=5&connect_timeout=2&token=t", b"m1"
    )
    assert isinstance(driver, TurnstileDriver)
    assert driver._endpoints == "127.0.0.1:7001,127.0.0.1:7002"
    assert (driver._ttl, driver._connect_timeout, driver._token) == (5.0, 2.0, "t")
    assert driver.requires_beating  # tooz's heart (or the caller) keeps the session alive
    assert coordination.Characteristics.NON_TIMEOUT_BASED not in driver.CHARACTERISTICS


def test_a_result_is_done_at_once_and_raises_its_error_on_get() -> None:
    def missing() -> None:
        raise coordination.GroupNotCreated(b"g")

    failed = _result(missing)
    assert failed.done()
    with pytest.raises(coordination.GroupNotCreated):
        failed.get()
    assert _result(lambda: 7).get() == 7


def test_turnstile_errors_become_toozs() -> None:
    with pytest.raises(coordination.ToozConnectionError), _translated():
        raise UnavailableError("no leader")
    with pytest.raises(tooz.ToozError) as raised, _translated():
        raise NotFoundError("no such list")
    assert not isinstance(raised.value, coordination.ToozConnectionError)


def test_shared_locks_are_not_implemented_with_the_reason() -> None:
    driver = coordination.get_coordinator("turnstile://127.0.0.1:1", b"m1")
    assert isinstance(driver, TurnstileDriver)
    driver._client = Client("127.0.0.1:1")  # no traffic happens before a call
    try:
        with pytest.raises(tooz.NotImplemented, match=re.escape(SHARED_LOCKS)):
            driver.get_lock(b"name").acquire(shared=True)
    finally:
        driver._client.close()


class ScriptedClient:
    """Answers each read with the next scripted answer of its type (an exception is raised)."""

    def __init__(self, answers: dict[type, list[object]]) -> None:
        self.answers = answers

    def invoke(self, request: object, **_: object) -> object:
        answer = self.answers[type(request)].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _listing(revision: int, *members: str) -> pb.ListGroupsResponse:
    group = pb.GroupInfo(name="g", members=[pb.GroupMember(member_id=m) for m in members])
    return pb.ListGroupsResponse(groups=[group], revision=revision)


def test_run_watchers_after_compacted_reports_the_difference_even_after_a_failed_read() -> None:
    driver = coordination.get_coordinator("turnstile://127.0.0.1:1", b"me")
    assert isinstance(driver, TurnstileDriver)
    client = ScriptedClient(
        {
            pb.ListGroupsRequest: [
                _listing(5, "a"),
                UnavailableError("no leader"),
                _listing(9, "a", "b"),
            ],
            pb.WatchRequest: [pb.WatchResponse(revision=9, compacted=True)],
        }
    )
    driver._client = client  # type: ignore[assignment]
    joined: list[bytes] = []
    driver.watch_join_group(b"g", lambda event: joined.append(event.member_id))
    with pytest.raises(coordination.ToozConnectionError):
        driver.run_watchers()  # compacted, and the read again fails
    client.answers[pb.WatchRequest].append(pb.WatchResponse(revision=10))
    driver.run_watchers()  # reads again first, then watches after that read
    assert joined == [b"b"]
