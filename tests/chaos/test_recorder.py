"""The recorder's reading side and the fenced resource, on hand-written inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.chaos.history import longest_gap, read_history, recovery_after
from tests.chaos.resource import FencedResource

pytestmark = pytest.mark.unit


def _write(path: Path, *lines: dict) -> Path:
    path.write_text("".join(json.dumps({"p": "w1", **line}) + "\n" for line in lines))
    return path


def test_an_operation_without_a_completion_is_indeterminate(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "w1.jsonl",
        {"op": 1, "e": "invoke", "k": "acquire", "key": "L", "t": 1.0},
        {"op": 1, "e": "ok", "v": 7, "s": 3, "t": 1.5},
        {"op": 2, "e": "invoke", "k": "insert", "key": ["R", "k1"], "t": 2.0},
        {"e": "session", "s": 3, "state": "lost", "t": 2.5},
    )
    recorded = read_history([path])
    granted, pending = sorted(recorded.ops, key=lambda op: op.invoke)
    assert (granted.outcome, granted.value, granted.session, granted.complete) == ("ok", 7, 3, 1.5)
    assert (pending.outcome, pending.key, pending.complete) == ("info", ("R", b"k1"), math.inf)
    assert recorded.session_states == [("w1", 3, "lost", 2.5)]


def test_the_holders_view_is_read_back(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "w1.jsonl",
        {"e": "session-open", "s": 3, "ttl": 3.0, "until": 3.0, "t": 0.01},
        {"op": 1, "e": "invoke", "k": "acquire", "key": "L", "t": 0.5},
        {"op": 1, "e": "ok", "v": 7, "s": 3, "t": 0.6, "sent": 0.5, "max_hold_end": 30.5},
        {"e": "keep-alive", "s": 3, "sent": 1.0, "until": 4.0, "t": 1.1},
        {"e": "keep-alive", "s": 3, "sent": 2.0, "until": 5.0, "t": 5.5},  # too late
        {"e": "session", "s": 3, "state": "lost", "t": 6.0},
    )
    recorded = read_history([path])
    assert recorded.ops[0].max_hold_end == 30.5
    session = recorded.sessions[3]
    assert (session.deadline(), session.lost, session.alive_until()) == (4.0, 6.0, 4.0)


def test_recovery_counts_only_operations_invoked_after_the_heal(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "w1.jsonl",
        {"op": 1, "e": "invoke", "k": "acquire", "key": "L", "t": 9.0},
        {"op": 1, "e": "ok", "v": 1, "s": 1, "t": 10.5},  # invoked before the heal at 10
        {"op": 2, "e": "invoke", "k": "acquire", "key": "L", "t": 11.0},
        {"op": 2, "e": "ok", "v": 2, "s": 1, "t": 12.0},
    )
    ops = read_history([path]).ops
    assert recovery_after([10.0, 20.0], ops) == [2.0, math.inf]
    assert longest_gap(ops) == 1.5


def test_the_fenced_resource_refuses_a_lower_token_and_the_control_loses_an_update() -> None:
    for fencing in (True, False):
        resource = FencedResource(fencing=fencing)
        assert resource.handle({"op": "read", "token": 5, "process": "a"})["value"] == 0
        assert resource.handle({"op": "read", "token": 6, "process": "b"})["ok"]
        assert resource.handle({"op": "write", "token": 6, "value": 1, "process": "b"})["ok"]
        late = resource.handle({"op": "write", "token": 5, "value": 1, "process": "a"})
        assert late["ok"] is not fencing
        assert bool(resource.lost_updates()) is not fencing
