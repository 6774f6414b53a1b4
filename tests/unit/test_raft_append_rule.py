"""The Raft append rule (``pysyncobj_fixes.raft_append_rule``): which AppendEntries pysyncobj
gets."""

from __future__ import annotations

from typing import Any

import pytest

from turnstile.cluster.pysyncobj_fixes import raft_append_rule

pytestmark = pytest.mark.unit

#: The local log: indexes 5..12 (1..4 compacted into a snapshot); terms by index.
FIRST, LAST = 5, 12
TERMS = {5: 1, 6: 1, 7: 2, 8: 2, 9: 2, 10: 3, 11: 3, 12: 3}


def _rule(message: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    return raft_append_rule(message, FIRST, LAST, TERMS.__getitem__)


def _append(
    previous: int, previous_term: int, *entries: tuple[int, int], commit: int = 20
) -> dict[str, Any]:
    return {
        "type": "append_entries",
        "term": 4,
        "commit_index": commit,
        "prevLogIdx": previous,
        "prevLogTerm": previous_term,
        "entries": [(b"c", index, term) for index, term in entries],
    }


def _local(*indexes: int) -> list[tuple[int, int]]:
    return [(index, TERMS[index]) for index in indexes]


def test_a_message_at_or_past_the_log_end_is_untouched() -> None:
    for message in (_append(12, 3, (13, 4)), _append(12, 3), _append(14, 4, (15, 4))):
        assert _rule(message) == (message, None)
        assert _rule(message)[0] is message


def test_a_mismatch_at_prev_log_idx_is_left_to_pysyncobj() -> None:
    message = _append(8, 1, (9, 2))
    assert _rule(message)[0] is message


def test_a_heartbeat_behind_the_log_deletes_nothing_and_acks_only_what_it_covered() -> None:
    rewritten, covered = _rule(_append(8, 2, commit=20))
    assert covered == 8
    assert rewritten["prevLogIdx"] == 12 and rewritten["prevLogTerm"] == 3
    assert rewritten["entries"] == [] and rewritten["commit_index"] == 8


def test_a_late_resend_of_held_entries_deletes_nothing() -> None:
    rewritten, covered = _rule(_append(7, 2, *_local(8, 9, 10), commit=9))
    assert covered == 10
    assert (rewritten["prevLogIdx"], rewritten["entries"], rewritten["commit_index"]) == (12, [], 9)


def test_a_conflict_is_cut_from_the_first_conflicting_entry() -> None:
    rewritten, covered = _rule(_append(7, 2, *_local(8, 9), (10, 4), (11, 4)))
    assert covered is None
    assert (rewritten["prevLogIdx"], rewritten["prevLogTerm"]) == (9, 2)
    assert rewritten["entries"] == [(b"c", 10, 4), (b"c", 11, 4)]
    assert rewritten["commit_index"] == 20  # pysyncobj caps it at its log end itself


def test_new_entries_after_held_ones_are_appended_at_the_log_end() -> None:
    rewritten, covered = _rule(_append(10, 3, *_local(11, 12), (13, 4)))
    assert covered is None
    assert (rewritten["prevLogIdx"], rewritten["prevLogTerm"]) == (12, 3)
    assert rewritten["entries"] == [(b"c", 13, 4)]


def test_a_conflict_on_the_first_entry_is_passed_as_it_is() -> None:
    message = _append(9, 2, (10, 4), (11, 4))
    assert _rule(message)[0] is message


def test_below_the_snapshot_the_rule_anchors_on_the_first_kept_entry() -> None:
    rewritten, covered = _rule(_append(3, 1, (4, 1), *_local(5, 6), (7, 4)))
    assert covered is None
    assert (rewritten["prevLogIdx"], rewritten["prevLogTerm"]) == (6, 1)
    assert rewritten["entries"] == [(b"c", 7, 4)]
    rewritten, covered = _rule(_append(2, 1, (3, 1), (4, 1)))
    assert covered == FIRST and rewritten["prevLogIdx"] == LAST and rewritten["entries"] == []
    assert rewritten["commit_index"] == FIRST


def test_entries_that_are_not_one_run_are_left_to_pysyncobj() -> None:
    message = _append(7, 2, *_local(8, 10))
    assert _rule(message)[0] is message
