"""Restore: turns a saved snapshot into the starting state of one node of a new cluster.

``turnstile snapshot restore FILE --config node.toml`` runs on every node of the new cluster,
before its first start, with that node's config. Each node gets the same Raft snapshot (see
``raft.write_initial_snapshot``) holding every session, lock, waiter, list, id and fencing
counter of the saved state; only the member registry is replaced by the new cluster's peers,
since the new cluster's addresses are what clients and members must be told.

Sessions come back as they were. The first leader gives each a fresh TTL, as after any
failover: a worker that is still running and keeps its session alive keeps its locks; every
other session expires one TTL after the new cluster elects a leader, and its locks pass to
their waiters or are freed. Log time (max-hold, waits, list TTLs) resumes from the saved
clock: the time the cluster was down is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from turnstile.cluster import snapshot
from turnstile.cluster.config import NodeConfig
from turnstile.cluster.raft import write_initial_snapshot
from turnstile.cluster.state import Counts


class RestoreError(ValueError):
    """The snapshot cannot be read, or the node's data directory is not empty."""


@dataclass(frozen=True, slots=True)
class Restored:
    path: Path
    counts: Counts


def restore(snapshot_file: Path, config: NodeConfig) -> Restored:
    """Writes ``config``'s node's initial state from ``snapshot_file``."""
    try:
        data = snapshot_file.read_bytes()
    except OSError as exc:
        raise RestoreError(f"cannot read {snapshot_file}: {exc.strerror or exc}") from None
    try:
        state = snapshot.load(data)
    except snapshot.SnapshotError as exc:
        raise RestoreError(f"{snapshot_file}: {exc}") from None
    state.cluster_members = {
        peer.node_id: (peer.peer_address, peer.client_address) for peer in config.peers
    }
    try:
        path = write_initial_snapshot(
            str(config.data_dir),
            snapshot.dump(state),
            [peer.peer_address for peer in config.peers],
        )
    except FileExistsError as exc:
        raise RestoreError(f"data_dir: {exc}") from None
    except OSError as exc:
        raise RestoreError(f"data_dir: cannot write {config.data_dir}: {exc}") from None
    return Restored(Path(path), state.counts())
