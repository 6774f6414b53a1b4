"""Snapshots: the whole state machine as one versioned msgpack document.

``dump`` writes every collection sorted by key, so two equal states give equal bytes.
``load`` rebuilds derived data (session back-references, counters, the timer heap) from the
document instead of storing it, so a restored state behaves exactly like the one that was
dumped: restoring and then applying the rest of the log equals applying the whole log.
An unknown format version is refused, never guessed. Version 1 (before the term fence, the
cluster version and the record of answered seqs) is still read, with their initial values.
Version 3 adds groups, elections and the revision; it is written only from cluster version 5
(before that they are empty and 0), so a member of the previous build, which reads version 2,
can still install a snapshot during a rolling upgrade.
"""

from __future__ import annotations

from typing import Any

import msgpack

from turnstile.cluster.codec import (
    CodecError,
    limits_from_plain,
    limits_to_plain,
    result_from_plain,
    result_to_plain,
)
from turnstile.cluster.group_commands import GROUPS_SINCE
from turnstile.cluster.records import (
    Candidate,
    ElectionState,
    GroupMember,
    GroupState,
    Holder,
    ListState,
    LockState,
    SeqRanges,
    Session,
    Waiter,
)
from turnstile.cluster.state import StateMachine

MAGIC = "turnstile-snapshot"
SNAPSHOT_VERSION = 3
#: Versions ``load`` reads.
_READABLE_VERSIONS = (1, 2, 3)


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version can restore."""


def dump(state: StateMachine) -> bytes:
    document: dict[str, Any] = {
        "magic": MAGIC,
        "version": SNAPSHOT_VERSION if state.cluster_version >= GROUPS_SINCE else 2,
        "clock": state.clock,
        "last_session": state.last_session,
        "last_token": state.last_token,
        "epoch": state.epoch,
        "cluster_version": state.cluster_version,
        "limits": limits_to_plain(state.limits),
        "sessions": [
            [
                s.id,
                s.ttl_ms,
                s.client_name,
                s.client_host,
                s.client_pid,
                s.opened_at,
                s.acked,
                [[seq, result_to_plain(s.results[seq])] for seq in sorted(s.results)],
                [list(pair) for pair in s.forgotten.ranges],
            ]
            for s in (state.sessions[i] for i in sorted(state.sessions))
        ],
        "locks": [
            [
                lock.name,
                None
                if lock.holder is None
                else [
                    lock.holder.session,
                    lock.holder.token,
                    lock.holder.acquire_seq,
                    lock.holder.granted_at,
                    lock.holder.expires_at,
                ],
                [
                    [w.session, w.seq, w.max_hold_ms, w.enqueued_at, w.deadline]
                    for w in lock.waiters
                ],
            ]
            for lock in (state.locks[n] for n in sorted(state.locks))
        ],
        "lists": [
            [item.name, item.ttl_ms, item.created_at, item.expires_at, item.members]
            for item in (state.lists[n] for n in sorted(state.lists))
        ],
        "cluster_members": [
            [node_id, *state.cluster_members[node_id]] for node_id in sorted(state.cluster_members)
        ],
    }
    if state.cluster_version >= GROUPS_SINCE:
        document["revision"] = state.revision
        document["groups"] = [
            [
                item.name,
                item.created_at,
                [
                    [m.member_id, m.session, m.capabilities, m.joined_at, m.updated_at]
                    for m in (item.members[i] for i in sorted(item.members))
                ],
            ]
            for item in (state.groups[n] for n in sorted(state.groups))
        ]
        document["elections"] = [
            [
                election.name,
                [[c.session, c.member_id, c.since, c.token] for c in election.candidates],
            ]
            for election in (state.elections[n] for n in sorted(state.elections))
        ]
    return msgpack.packb(document, use_bin_type=True)


def load(data: bytes, term_fence: bool = True) -> StateMachine:
    """Rebuilds a state machine from ``dump`` output; raises SnapshotError on anything else."""
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise SnapshotError(f"snapshot is not msgpack: {exc}") from None
    if not isinstance(document, dict) or document.get("magic") != MAGIC:
        raise SnapshotError("not a turnstile snapshot")
    version = document.get("version")
    if type(version) is not int or version not in _READABLE_VERSIONS:
        raise SnapshotError(
            f"snapshot format version {version!r} is not supported "
            f"(this build reads version {SNAPSHOT_VERSION})"
        )
    try:
        return _restore(document, version, term_fence)
    except (CodecError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"corrupt snapshot: {exc!r}") from None


def _restore(document: dict[str, Any], version: int, term_fence: bool) -> StateMachine:
    state = StateMachine(limits_from_plain(document["limits"]), term_fence=term_fence)
    state.clock = _int(document["clock"])
    state.last_session = _int(document["last_session"])
    state.last_token = _int(document["last_token"])
    if version >= 2:
        state.epoch = _int(document["epoch"])
        state.cluster_version = _int(document["cluster_version"])
    for record in document["sessions"]:
        if len(record) != (9 if version >= 2 else 8):
            raise SnapshotError(f"session record {record[:1]} has {len(record)} fields")
        sid, ttl, name, host, pid, opened_at, acked, results = record[:8]
        forgotten = record[8] if version >= 2 else []
        session = Session(
            id=_int(sid),
            ttl_ms=_int(ttl),
            client_name=_str(name),
            client_host=_str(host),
            client_pid=_int(pid),
            opened_at=_int(opened_at),
            acked=_int(acked),
        )
        session.results = {_int(seq): result_from_plain(plain) for seq, plain in results}
        session.forgotten = SeqRanges([(_int(lo), _int(hi)) for lo, hi in forgotten])
        state.sessions[session.id] = session
    for name, holder, waiters in document["locks"]:
        lock = LockState(_str(name))
        if holder is not None:
            lock.holder = Holder(*(_int(v) for v in holder))
        lock.waiters = [Waiter(*(_int(v) for v in values)) for values in waiters]
        if lock.holder is None:
            # The state machine grants the head waiter whenever a lock is freed, and forgets
            # an idle lock: a free lock record cannot exist in a real state.
            raise SnapshotError(f"lock {lock.name!r} has no holder")
        state.locks[lock.name] = lock
    for name, ttl, created_at, expires_at, members in document["lists"]:
        item = ListState(_str(name), _int(ttl), _int(created_at), _int(expires_at))
        item.members = [_bytes(m) for m in members]
        item.ids = {m: i + 1 for i, m in enumerate(item.members)}
        if len(item.ids) != len(item.members):
            raise SnapshotError(f"list {item.name!r} has duplicate members")
        state.lists[item.name] = item
    for node_id, peer_address, client_address in document["cluster_members"]:
        state.cluster_members[_str(node_id)] = (_str(peer_address), _str(client_address))
    if version >= 3:
        _restore_groups(state, document)
    state.reindex()
    return state


def _restore_groups(state: StateMachine, document: dict[str, Any]) -> None:
    state.revision = _int(document["revision"])
    for name, created_at, members in document["groups"]:
        item = GroupState(_str(name), _int(created_at))
        for member_id, session, capabilities, joined_at, updated_at in members:
            member = GroupMember(
                _str(member_id),
                _int(session),
                _bytes(capabilities),
                _int(joined_at),
                _int(updated_at),
            )
            item.members[member.member_id] = member
        state.groups[item.name] = item
    for name, candidates in document["elections"]:
        election = ElectionState(_str(name))
        for session, member_id, since, token in candidates:
            election.candidates.append(
                Candidate(_int(session), _str(member_id), _int(since), _int(token))
            )
        if not election.candidates or not election.candidates[0].token:
            # Whatever ends a leadership elects the next candidate; nobody standing: forgotten.
            raise SnapshotError(f"election {election.name!r} has no leader")
        state.elections[election.name] = election


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise SnapshotError(f"expected a non-negative integer, got {value!r}")
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise SnapshotError(f"expected a string, got {value!r}")
    return value


def _bytes(value: Any) -> bytes:
    if type(value) is not bytes:
        raise SnapshotError(f"expected bytes, got {value!r}")
    return value
