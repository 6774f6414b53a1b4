"""Admission checks: the state machine's stateless refusals, word for word, before proposing.

Each bad request is checked twice: by ``admission`` and, as the command or read it would
become, by a real ``StateMachine`` that has the session and the list. Both must refuse it with
the same reason and the same detail, so the two can never drift apart silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from turnstile.cluster import admission, views
from turnstile.cluster import commands as cmd
from turnstile.cluster.errors import TurnstileError
from turnstile.cluster.limits import Limits
from turnstile.cluster.state import StateMachine
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

LIMITS = Limits()
NOW = 1_000
LONG = "x" * 300


def machine() -> tuple[StateMachine, int]:
    """A state machine with one session (returned) and one list, "results"."""
    state = StateMachine(LIMITS)
    state.apply(cmd.SetClusterVersion(NOW, cmd.PROTOCOL_VERSION))  # Abandon needs version 2
    opened = state.apply(cmd.OpenSession(NOW, 10_000, "worker", "host", 1)).result
    assert isinstance(opened, cmd.SessionOpened)
    set_up = cmd.SetUpList(NOW, opened.session, seq=1, acked=0, name="results", ttl_ms=0)
    assert isinstance(state.apply(set_up).result, cmd.ListSetUp)
    return state, opened.session


def rid(session: int, seq: int = 2, acked: int = 0, answered: Sequence[int] = ()) -> pb.RequestId:
    return pb.RequestId(session_id=session, seq=seq, acked=acked, answered=answered)


def _ids(request: Any) -> dict[str, Any]:
    r = request.request
    return {"session": r.session_id, "seq": r.seq, "acked": r.acked, "answered": tuple(r.answered)}


#: Request type -> (admission check, what the state machine does with that request).
HANDLERS: dict[type, tuple[Callable[[Limits, Any], None], Callable[[StateMachine, Any], Any]]] = {
    pb.OpenSessionRequest: (
        admission.check_open,
        lambda s, r: (
            s.apply(
                cmd.OpenSession(NOW, r.ttl_ms, r.client_name, r.client_host, r.client_pid)
            ).result
        ),
    ),
    pb.AcquireRequest: (
        admission.check_acquire,
        lambda s, r: (
            s.apply(
                cmd.Acquire(
                    NOW, name=r.name, max_hold_ms=r.max_hold_ms, wait_ms=r.wait_ms, **_ids(r)
                )
            ).result
        ),
    ),
    pb.AbandonRequest: (
        admission.check_abandon,
        lambda s, r: (
            s.apply(cmd.Abandon(NOW, name=r.name, acquire_seq=r.acquire_seq, **_ids(r))).result
        ),
    ),
    pb.ReleaseRequest: (
        admission.check_release,
        lambda s, r: s.apply(cmd.Release(NOW, name=r.name, token=r.token, **_ids(r))).result,
    ),
    pb.ExtendRequest: (
        admission.check_extend,
        lambda s, r: (
            s.apply(
                cmd.Extend(NOW, name=r.name, token=r.token, max_hold_ms=r.max_hold_ms, **_ids(r))
            ).result
        ),
    ),
    pb.ValidateRequest: (
        admission.check_validate,
        lambda s, r: views.validate_token(s, r.name, r.token),
    ),
    pb.DescribeLockRequest: (
        admission.check_describe,
        lambda s, r: views.describe_lock(s, r.name, NOW),
    ),
    pb.ForceReleaseRequest: (
        admission.check_force_release,
        lambda s, r: s.apply(cmd.ForceRelease(NOW, r.name, r.reason, r.token)).result,
    ),
    pb.SetUpListRequest: (
        admission.check_set_up,
        lambda s, r: s.apply(cmd.SetUpList(NOW, name=r.name, ttl_ms=r.ttl_ms, **_ids(r))).result,
    ),
    pb.InsertRequest: (
        admission.check_insert,
        lambda s, r: (
            s.apply(cmd.Insert(NOW, name=r.name, members=tuple(r.members), **_ids(r))).result
        ),
    ),
    pb.ContainsRequest: (
        admission.check_contains,
        lambda s, r: views.contains(s, r.name, tuple(r.members)),
    ),
    pb.SizeRequest: (admission.check_list_read, lambda s, r: views.list_view(s, r.name, NOW)),
    pb.MembersRequest: (
        admission.check_list_read,
        lambda s, r: views.members(s, r.name, r.after_id, r.limit),
    ),
    pb.TearDownListRequest: (
        admission.check_tear_down,
        lambda s, r: s.apply(cmd.TearDownList(NOW, name=r.name, **_ids(r))).result,
    ),
}


def bad_requests(session: int) -> Iterator[tuple[Any, Reason, str]]:
    """(request, reason, a piece of the detail) for every stateless bound."""
    invalid, limit = Reason.INVALID_ARGUMENT, Reason.LIMIT_EXCEEDED
    ok = rid(session)
    week = LIMITS.max_duration_ms
    yield pb.OpenSessionRequest(ttl_ms=1), invalid, "session ttl_ms must be within"
    yield pb.OpenSessionRequest(ttl_ms=3600 * 1000 + 1), invalid, "got 3600001"
    yield pb.OpenSessionRequest(ttl_ms=5000, client_name=LONG), invalid, "client_name is 300"
    yield pb.OpenSessionRequest(ttl_ms=5000, client_host=LONG), invalid, "client_host is 300"
    yield pb.AcquireRequest(request=ok, name=""), invalid, "lock name must not be empty"
    yield pb.AcquireRequest(request=ok, name=LONG), invalid, "over max_name_bytes=256"
    yield pb.AcquireRequest(request=ok, name="a\x07b"), invalid, "control character"
    yield pb.AcquireRequest(request=ok, name="a", max_hold_ms=week + 1), invalid, "max_hold_ms"
    yield pb.AcquireRequest(request=ok, name="a", wait_ms=week + 1), invalid, "wait_ms is"
    yield pb.AcquireRequest(request=rid(session, seq=0), name="a"), invalid, "got seq=0"
    yield pb.AcquireRequest(request=rid(session, 3, 3), name="a"), invalid, "acked=3"
    yield pb.AcquireRequest(request=rid(session, 5, 9), name="a"), invalid, "acked=9"
    too_many = rid(session, 5000, 0, range(1, LIMITS.max_results_per_session + 2))
    yield pb.AcquireRequest(request=too_many, name="a"), invalid, "1025 answered seqs"
    yield pb.AbandonRequest(request=ok, name="", acquire_seq=1), invalid, "must not be empty"
    yield pb.AbandonRequest(request=ok, name="a", acquire_seq=2), invalid, "acquire_seq must"
    yield pb.AbandonRequest(request=ok, name="a", acquire_seq=0), invalid, "got 0"
    yield pb.AbandonRequest(request=rid(session, 0), name="a", acquire_seq=1), invalid, "seq=0"
    yield pb.ReleaseRequest(request=ok, name=LONG, token=1), invalid, "lock name is 300"
    yield pb.ReleaseRequest(request=rid(session, 0), name="a"), invalid, "seq must be >= 1"
    yield pb.ExtendRequest(request=ok, name="a", max_hold_ms=week + 1), invalid, "max_hold_ms"
    yield pb.ExtendRequest(request=ok, name=""), invalid, "lock name must not be empty"
    yield pb.ValidateRequest(name=LONG, token=1), invalid, "lock name is 300"
    yield pb.DescribeLockRequest(name="a\nb"), invalid, "control character"
    yield pb.ForceReleaseRequest(name="", reason="r"), invalid, "lock name must not be empty"
    yield pb.ForceReleaseRequest(name="a", reason="r" * 1025), invalid, "max_reason_bytes=1024"
    yield pb.SetUpListRequest(request=ok, name=LONG), invalid, "list name is 300"
    yield pb.SetUpListRequest(request=ok, name="l", ttl_ms=week + 1), invalid, "ttl_ms is"
    yield pb.SetUpListRequest(request=rid(session, 2, 7), name="l"), invalid, "acked=7"
    many = [b"m%d" % i for i in range(LIMITS.max_batch + 1)]
    yield pb.InsertRequest(request=ok, name="results", members=many), limit, "max_batch=1000"
    yield pb.InsertRequest(request=ok, name="results"), invalid, "members must not be empty"
    yield pb.InsertRequest(request=ok, name="results", members=[b"a", b""]), invalid, "member 1"
    big = [b"a", b"z" * (LIMITS.max_member_bytes + 1)]
    yield pb.InsertRequest(request=ok, name="results", members=big), invalid, "1025 bytes"
    yield pb.InsertRequest(request=ok, name="", members=[b"a"]), invalid, "list name must"
    yield pb.ContainsRequest(name="results", members=many), limit, "batch of 1001 members"
    yield pb.ContainsRequest(name="results", members=big), invalid, "member 1 is 1025 bytes"
    yield pb.ContainsRequest(name=LONG, members=[b"a"]), invalid, "list name is 300"
    yield pb.SizeRequest(name=""), invalid, "list name must not be empty"
    yield pb.MembersRequest(name=LONG), invalid, "list name is 300"
    yield pb.TearDownListRequest(request=ok, name="\x00"), invalid, "control character"
    yield pb.TearDownListRequest(request=rid(session, 0), name="l"), invalid, "seq must be"


_, SESSION = machine()
CASES = list(bad_requests(SESSION))


@pytest.mark.parametrize(
    ("request_", "reason", "text"),
    CASES,
    ids=[f"{type(r).__name__}-{text}" for r, _, text in CASES],
)
def test_admission_refuses_as_the_state_machine_does(
    request_: Any, reason: Reason, text: str
) -> None:
    check, sm_does = HANDLERS[type(request_)]
    with pytest.raises(TurnstileError) as refused:
        check(LIMITS, request_)
    assert refused.value.reason is reason
    assert text in refused.value.detail

    state, session = machine()
    assert session == SESSION
    outcome = sm_does(state, request_)
    assert outcome == cmd.Err(refused.value.reason, refused.value.detail)


def test_every_request_type_that_a_handler_checks_is_covered() -> None:
    assert {type(r) for r, _, _ in CASES} == set(HANDLERS)


def test_good_requests_pass() -> None:
    ok = rid(SESSION, seq=7, acked=3, answered=[5, 6])
    week = LIMITS.max_duration_ms
    good = [
        pb.OpenSessionRequest(ttl_ms=LIMITS.min_session_ttl_ms, client_name="n" * 256),
        pb.OpenSessionRequest(ttl_ms=LIMITS.max_session_ttl_ms, client_host="h"),
        pb.AcquireRequest(request=ok, name="é" * 128, max_hold_ms=week, wait_ms=week),
        pb.AbandonRequest(request=ok, name="a", acquire_seq=6),
        pb.ReleaseRequest(request=ok, name="a", token=9),
        pb.ExtendRequest(request=ok, name="a", token=9, max_hold_ms=0),
        pb.ValidateRequest(name="a", token=0),
        pb.DescribeLockRequest(name="a"),
        pb.ForceReleaseRequest(name="a", reason=""),
        pb.ForceReleaseRequest(name="a", reason="r" * LIMITS.max_reason_bytes),
        pb.SetUpListRequest(request=ok, name="l", ttl_ms=week),
        pb.InsertRequest(
            request=ok,
            name="l",
            members=[b"z" * LIMITS.max_member_bytes] * LIMITS.max_batch,
        ),
        pb.ContainsRequest(name="l", members=[b"\x00"]),
        pb.SizeRequest(name="l"),
        pb.MembersRequest(name="l", after_id=5, limit=0),
        pb.TearDownListRequest(request=ok, name="l"),
    ]
    for request in good:
        HANDLERS[type(request)][0](LIMITS, request)


def test_the_replicated_limits_are_the_ones_checked() -> None:
    small = Limits(max_batch=5, max_name_bytes=8, max_results_per_session=2)
    five = pb.InsertRequest(request=rid(1), name="l", members=[b"%d" % i for i in range(5)])
    admission.check_insert(small, five)
    six = pb.InsertRequest(request=rid(1), name="l", members=[b"%d" % i for i in range(6)])
    with pytest.raises(TurnstileError, match="max_batch=5"):
        admission.check_insert(small, six)
    with pytest.raises(TurnstileError, match="max_name_bytes=8"):
        admission.check_describe(small, pb.DescribeLockRequest(name="ninebytes"))
    with pytest.raises(TurnstileError, match="max_results_per_session=2"):
        admission.check_release(small, pb.ReleaseRequest(request=rid(1, 9, 0, [1, 2, 3]), name="a"))


class _Untouchable(Sequence[bytes]):
    """A batch that knows its length and fails the test if any member is read."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("a member was read")

    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("the batch was iterated")


def test_an_oversize_batch_is_refused_from_its_length_alone() -> None:
    """O(1): neither the members nor (after the request id) anything else is looked at."""
    huge = SimpleNamespace(request=rid(1), name="results", members=_Untouchable(700_000))
    for check in (admission.check_insert, admission.check_contains):
        with pytest.raises(TurnstileError) as refused:
            check(LIMITS, huge)
        assert refused.value.reason is Reason.LIMIT_EXCEEDED
        assert refused.value.detail == "batch of 700000 members is over max_batch=1000"


def test_the_request_id_is_checked_before_the_batch() -> None:
    huge = SimpleNamespace(request=rid(1, seq=0), name="results", members=_Untouchable(10**9))
    with pytest.raises(TurnstileError, match="seq must be >= 1"):
        admission.check_insert(LIMITS, huge)
