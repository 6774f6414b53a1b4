"""The Raft snapshot file: our versioned state snapshot beside pysyncobj's raft metadata.

One msgpack document, built by ``pack_snapshot_file`` and read by ``read_snapshot_file``, for
every writer and reader: the replica's snapshots (pysyncobj's serializer hooks, through
``write_replica_snapshot`` and ``raft_metadata``),
``write_initial_snapshot`` (a restored cluster) and the finishing of an interrupted
compaction. The state itself is ``turnstile.cluster.snapshot``'s document, kept as bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from pysyncobj.node import TCPNode

from turnstile.cluster.snapshot import SnapshotError

#: The version of this file's document (the state inside has its own).
SNAPSHOT_FILE_VERSION = 1

#: A pysyncobj log entry: (command, index, term).
LogEntry = tuple[bytes, int, int]


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """What a Raft snapshot file holds.

    ``last_entry`` is the last log entry the snapshot covers and ``previous_entry`` the one
    before it (pysyncobj keeps both as the first two entries of a compacted log);
    ``cluster`` is every member's peer address.
    """

    state: bytes
    last_entry: LogEntry
    previous_entry: LogEntry
    cluster: tuple[str, ...]


def pack_snapshot_file(
    state: bytes, last_entry: Iterable[Any], previous_entry: Iterable[Any], cluster: Iterable[str]
) -> bytes:
    """The file's bytes: the same input gives the same bytes (members sorted)."""
    document = {
        "version": SNAPSHOT_FILE_VERSION,
        "state": state,
        "last_entry": list(last_entry),
        "previous_entry": list(previous_entry),
        "cluster": sorted(cluster),
    }
    return msgpack.packb(document, use_bin_type=True)


def write_replica_snapshot(path: str, state: bytes, raft_data: tuple[Any, ...]) -> None:
    """pysyncobj's serializer hook, given our state: ``raft_data`` is its metadata (last
    entry, previous entry, set of member nodes)."""
    last_entry, previous_entry, cluster = raft_data
    data = pack_snapshot_file(state, last_entry, previous_entry, (node.id for node in cluster))
    with open(path, "wb") as file:
        file.write(data)


def raft_metadata(snapshot: SnapshotFile) -> tuple[Any, ...]:
    """What pysyncobj's deserializer hook returns besides the state: (last entry, previous
    entry, set of member nodes)."""
    cluster = {TCPNode(address) for address in snapshot.cluster}
    return snapshot.last_entry, snapshot.previous_entry, cluster


def read_snapshot_file(path: str) -> SnapshotFile:
    """Reads the file at ``path``; raises ``SnapshotError`` for one that is not a snapshot
    document of a supported version (``OSError`` and msgpack's errors as they come)."""
    with open(path, "rb") as file:
        document = msgpack.unpackb(file.read(), raw=False)
    if not isinstance(document, dict):
        raise SnapshotError(f"{path} is not a snapshot document")
    if document.get("version") != SNAPSHOT_FILE_VERSION:
        raise SnapshotError(f"snapshot file version {document.get('version')!r} is not supported")
    try:
        return SnapshotFile(
            state=document["state"],
            last_entry=tuple(document["last_entry"]),
            previous_entry=tuple(document["previous_entry"]),
            cluster=tuple(document["cluster"]),
        )
    except (KeyError, TypeError) as exc:
        raise SnapshotError(f"{path} is not a complete snapshot document ({exc!r})") from exc
