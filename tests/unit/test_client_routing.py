"""Router: which endpoint to call, following leader hints and rotating past failures;
parse_endpoints: where the endpoints come from."""

from __future__ import annotations

import pytest

from turnstile.client.core import ENDPOINTS_ENV, parse_endpoints
from turnstile.client.routing import Router
from turnstile.v1.timeouts import STALLED_NODE_AVOID_S

pytestmark = pytest.mark.unit

A, B, C, D = "a:7001", "b:7001", "c:7001", "d:7001"


def visits(router: Router, n: int) -> list[str]:
    """The next ``n`` targets when every one of them fails without a hint."""
    seen = []
    for _ in range(n):
        target = router.target()
        seen.append(target)
        router.failed(target)
    return seen


def test_initial_target_is_the_first_endpoint() -> None:
    router = Router([B, A, C])
    assert router.target() == B
    assert router.leader is None
    assert router.endpoints == [B, A, C]


def test_a_tuple_of_endpoints_is_accepted() -> None:
    assert Router((C, A)).target() == C


@pytest.mark.parametrize("endpoints", [[], ()])
def test_no_endpoints_is_a_value_error(endpoints: list[str]) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        Router(endpoints)


def test_duplicates_are_dropped_keeping_first_order() -> None:
    router = Router([A, B, A, C, B, A])
    assert router.endpoints == [A, B, C]
    assert visits(router, 6) == [A, B, C, A, B, C]


def test_endpoints_property_is_a_copy() -> None:
    router = Router([A, B])
    router.endpoints.append(D)
    assert router.endpoints == [A, B]


# ---------------------------------------------------------------------- failures


def test_failure_without_hint_rotates_to_the_endpoint_after_the_failed_one() -> None:
    router = Router([A, B, C])
    router.failed(A)
    assert router.target() == B
    router.failed(B)
    assert router.target() == C
    router.failed(C)
    assert router.target() == A  # wraps around
    assert router.leader is None


def test_rotation_is_relative_to_the_failed_endpoint_not_the_current_target() -> None:
    router = Router([A, B, C, D])
    router.failed(C)  # e.g. a concurrent call to C failed while we were on A
    assert router.target() == D


def test_failure_of_an_unknown_endpoint_restarts_at_the_first() -> None:
    router = Router([A, B, C])
    router.failed(B)
    assert router.target() == C
    router.failed("elsewhere:1")
    assert router.target() == A


def test_failure_with_a_hint_switches_to_the_hinted_leader() -> None:
    router = Router([A, B, C])
    router.failed(A, C)
    assert router.target() == C
    assert router.leader == C
    assert router.endpoints == [A, B, C]


def test_an_unknown_hint_is_added_to_the_endpoints() -> None:
    router = Router([A, B])
    router.failed(A, D)
    assert router.target() == D
    assert router.leader == D
    assert router.endpoints == [A, B, D]
    router.failed(B, D)  # the same hint again is not added twice
    assert router.endpoints == [A, B, D]


def test_a_hint_naming_the_failed_endpoint_itself_is_ignored() -> None:
    router = Router([A, B, C])
    router.failed(A, A)
    assert router.target() == B
    assert router.leader is None


def test_when_the_hinted_leader_fails_rotation_continues_after_it() -> None:
    router = Router([A, B, C])
    router.failed(A, B)
    assert router.target() == B
    router.failed(B)
    assert router.leader is None
    assert router.target() == C


def test_an_added_hint_takes_part_in_the_rotation() -> None:
    router = Router([A, B])
    router.failed(A, D)
    router.failed(D)
    assert router.target() == A  # D was last: wraps to the first
    assert visits(router, 3) == [A, B, D]


# ---------------------------------------------------------------------- success


def test_success_pins_the_leader() -> None:
    router = Router([A, B, C])
    router.succeeded(C)
    assert router.leader == C
    assert router.target() == C
    assert router.target() == C


def test_a_failure_elsewhere_does_not_unpin_the_leader() -> None:
    router = Router([A, B, C])
    router.succeeded(B)
    router.failed(A)
    assert router.target() == B
    assert router.leader == B


def test_failure_of_the_pinned_leader_unpins_it_and_rotates_past_it() -> None:
    router = Router([A, B, C])
    router.succeeded(B)
    router.failed(B)
    assert router.leader is None
    assert router.target() == C


def test_a_hint_replaces_the_pinned_leader() -> None:
    router = Router([A, B, C])
    router.succeeded(A)
    router.failed(A, C)
    assert router.leader == C
    assert router.target() == C


# ---------------------------------------------------------------------- parse_endpoints


def test_parse_endpoints_accepts_a_list_and_strips_blanks() -> None:
    assert parse_endpoints([" a:1", "b:2 ", "", "  "]) == ["a:1", "b:2"]


def test_parse_endpoints_splits_a_comma_separated_string() -> None:
    assert parse_endpoints("a:1, b:2 ,c:3,") == ["a:1", "b:2", "c:3"]


def test_parse_endpoints_reads_the_environment_when_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINTS_ENV, "x:1,y:2")
    assert parse_endpoints(None) == ["x:1", "y:2"]


@pytest.mark.parametrize("given", ["", " , ", [], [" "], None])
def test_parse_endpoints_without_any_is_a_value_error(
    given: str | list[str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENDPOINTS_ENV, raising=False)
    with pytest.raises(ValueError, match=ENDPOINTS_ENV):
        parse_endpoints(given)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_stalled_leader_is_avoided_and_hints_naming_it_are_not_followed() -> None:
    clock = Clock()
    router = Router([A, B, C], clock=clock)
    router.succeeded(A)
    router.failed(A, avoid_for=STALLED_NODE_AVOID_S)
    assert router.stalled(A)
    assert router.target() == B
    router.failed(B, A)  # a follower that has not noticed yet still names A
    assert router.target() == C
    router.failed(C, A)
    assert router.target() == B  # A is skipped in the rotation too
    router.failed(B, C)  # the new leader, once elected
    assert router.target() == C


def test_a_stalled_node_is_tried_again_after_the_avoid_time_or_once_it_answers() -> None:
    clock = Clock()
    router = Router([A, B], clock=clock)
    router.failed(A, avoid_for=STALLED_NODE_AVOID_S)
    assert router.target() == B
    clock.now = STALLED_NODE_AVOID_S
    assert not router.stalled(A)
    router.failed(B, A)
    assert router.target() == A
    router.failed(A, avoid_for=STALLED_NODE_AVOID_S)
    router.succeeded(A)
    assert not router.stalled(A)


def test_when_every_node_is_stalled_the_rotation_goes_on() -> None:
    clock = Clock()
    router = Router([A, B], clock=clock)
    for endpoint in (A, B):
        router.failed(endpoint, avoid_for=STALLED_NODE_AVOID_S)
    assert router.target() in (A, B)
