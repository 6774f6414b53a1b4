"""The Raft snapshot file: our versioned state snapshot beside pysyncobj's raft metadata.

One msgpack document, built by ``pack_snapshot_file`` and read by ``read_snapshot_file``, for
every writer and reader: the replica's snapshots (pysyncobj's serializer hooks, through
``write_replica_snapshot`` and ``raft_metadata``),
``write_initial_snapshot`` (a restored cluster) and the finishing of an interrupted
compaction. The state itself is ``turnstile.cluster.snapshot``'s document, kept as bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from pysyncobj.node import TCPNode
from pysyncobj.syncobj import _COMMAND_TYPE

from turnstile.cluster.raftlog import (
    COMMIT_FILE,
    LOG_FILE,
    META_FILE,
    PYSYNCOBJ_JOURNAL_FILE,
    DiskFiles,
)
from turnstile.cluster.snapshot import SnapshotError

#: The snapshot's file name in a node's data directory (the log's are in ``raftlog``).
SNAPSHOT_FILE = "raft.snapshot"
#: Files that make a data directory a Raft member's.
RAFT_FILES = (LOG_FILE, META_FILE, COMMIT_FILE, PYSYNCOBJ_JOURNAL_FILE, SNAPSHOT_FILE)

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


def write_initial_snapshot(data_dir: str, state_bytes: bytes, cluster: list[str]) -> str:
    """Writes the Raft snapshot a node of a *new* cluster starts from; returns its path.

    Used by ``turnstile snapshot restore``. The log it describes holds two no-op entries at
    indexes 2 and 3 of term 0, both applied, so every restored node starts with the same log
    and the same state. Index 2, not 1: a node started with an empty data directory instead
    (its log is one no-op at index 1) then cannot match the leader's log and is sent the
    snapshot, rather than silently replaying from an empty state. ``cluster`` is every
    member's peer address. Refuses a data directory that already holds Raft files.
    """
    os.makedirs(data_dir, exist_ok=True)
    for name in RAFT_FILES:
        if os.path.exists(os.path.join(data_dir, name)):
            raise FileExistsError(f"{data_dir} already holds {name}; restore into an empty one")
    no_op = bytes([_COMMAND_TYPE.NO_OP])  # pysyncobj internal: its log entry type
    data = pack_snapshot_file(state_bytes, [no_op, 3, 0], [no_op, 2, 0], cluster)
    files = DiskFiles(data_dir)
    files.replace(SNAPSHOT_FILE, data, durable=True)
    return files.path(SNAPSHOT_FILE)
