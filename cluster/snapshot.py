"""Snapshots: the whole state machine as one versioned msgpack document.

``dump`` writes every collection sorted by key, so two equal states give equal bytes.
``load`` rebuilds derived data (session back-references, counters, the timer heap) from the
document instead of storing it, so a restored state behaves exactly like the one that was
dumped: restoring and then applying the rest of the log equals applying the whole log.
An unknown format version is refused, never guessed. Version 1 (before the term fence, the
cluster version and the record of answered seqs) is still read, with their initial values.
Version 3 adds groups, elections and the revision; it is written only from cluster version 5
(before that they are empty and 0), so a member of the previous build, which reads version 2,
can still install a snapshot during a rolling upgrade. Version 4 adds semaphores, the
descriptions of holders and waiters and the locks of a waiter for several; it is written only
from cluster version 6, for the same reason.
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
    SemaphoreState,
    SeqRanges,
    Session,
    Waiter,
)
from turnstile.cluster.semaphore_commands import SEMAPHORES_SINCE
from turnstile.cluster.state import StateMachine

MAGIC = "turnstile-snapshot"
SNAPSHOT_VERSION = 4
#: Versions ``load`` reads.
_READABLE_VERSIONS = (1, 2, 3, 4)


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version can restore."""


def _version_for(cluster_version: int) -> int:
    """The newest format every member of a cluster at ``cluster_version`` reads."""
    if cluster_version >= SEMAPHORES_SINCE:
        return SNAPSHOT_VERSION
    return 3 if cluster_version >= GROUPS_SINCE else 2


def _holder(holder: Holder, version: int) -> list[Any]:
    fields = [holder.session, holder.token, holder.acquire_seq, holder.granted_at]
    return [*fields, holder.expires_at, *([holder.description] if version >= 4 else [])]


def _waiter(w: Waiter, version: int) -> list[Any]:
    fields = [w.session, w.seq, w.max_hold_ms, w.enqueued_at, w.deadline]
    return [*fields, *([w.description, list(w.names)] if version >= 4 else [])]


def dump(state: StateMachine) -> bytes:
    version = _version_for(state.cluster_version)
    document: dict[str, Any] = {
        "magic": MAGIC,
        "version": version,
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
                None if lock.holder is None else _holder(lock.holder, version),
                [_waiter(w, version) for w in lock.waiters],
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
    if version >= 4:
        document["semaphores"] = [
            [
                item.name,
                item.limit,
                [_holder(h, version) for h in item.holders],
                [_waiter(w, version) for w in item.waiters],
            ]
            for item in (state.semaphores[n] for n in sorted(state.semaphores))
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
            lock.holder = _read_holder(holder, version)
        lock.waiters = [_read_waiter(values, version) for values in waiters]
        if lock.holder is None and not (lock.waiters and lock.waiters[0].names):
            # A freed lock goes to its head waiter at once unless that waiter waits for
            # another lock too, and an idle lock is forgotten.
            raise SnapshotError(f"lock {lock.name!r} has no holder")
        state.locks[lock.name] = lock
    _check_waiters_for_several(state)
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
    if version >= 4:
        _restore_semaphores(state, document)
    state.reindex()
    return state


def _read_holder(values: list[Any], version: int) -> Holder:
    if len(values) != (6 if version >= 4 else 5):
        raise SnapshotError(f"holder record has {len(values)} fields")
    session, token, acquire_seq, granted_at, expires_at = (_int(v) for v in values[:5])
    description = _str(values[5]) if version >= 4 else ""
    return Holder(session, token, acquire_seq, granted_at, expires_at, description)


def _read_waiter(values: list[Any], version: int) -> Waiter:
    if len(values) != (7 if version >= 4 else 5):
        raise SnapshotError(f"waiter record has {len(values)} fields")
    session, seq, max_hold_ms, enqueued_at, deadline = (_int(v) for v in values[:5])
    waiter = Waiter(session, seq, max_hold_ms, enqueued_at, deadline)
    if version >= 4:
        waiter.description = _str(values[5])
        waiter.names = tuple(_str(n) for n in values[6])
    return waiter


def _check_waiters_for_several(state: StateMachine) -> None:
    """A waiter for several locks is queued in the queue of each of them, and only there."""
    for lock in state.locks.values():
        for waiter in lock.waiters:
            if not waiter.names:
                continue
            if lock.name not in waiter.names or not all(
                n in state.locks and any(w.same(waiter) for w in state.locks[n].waiters)
                for n in waiter.names
            ):
                raise SnapshotError(
                    f"waiter {waiter.session}/{waiter.seq} of lock {lock.name!r} is not queued "
                    f"for each of {list(waiter.names)}"
                )


def _restore_semaphores(state: StateMachine, document: dict[str, Any]) -> None:
    for name, limit, holders, waiters in document["semaphores"]:
        item = SemaphoreState(_str(name), _int(limit))
        item.holders = [_read_holder(h, 4) for h in holders]
        item.waiters = [_read_waiter(w, 4) for w in waiters]
        if not item.holders and not item.waiters:
            raise SnapshotError(f"semaphore {item.name!r} is unused")
        if item.waiters and len(item.holders) < item.limit:
            # Waiters are granted whenever a permit is free.
            raise SnapshotError(f"semaphore {item.name!r} has waiters and a free permit")
        state.semaphores[item.name] = item


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
