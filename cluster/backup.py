"""Restore: turns a saved snapshot into the starting state of one node of a new cluster.

``turnstile snapshot restore FILE --config node.toml`` runs on every node of the new cluster,
before its first start, with that node's config. Each node builds the same Raft snapshot (see
``snapshot_file.write_initial_snapshot``) from the saved state by the same deterministic steps,
so every node starts from identical bytes:

- Every distinct list comes back with its members, their ids and its TTL; so do the configured
  limits, the cluster version and the log clock (max-hold, waits and list TTLs resume from it:
  the time the cluster was down is not counted).
- Every session of the backup is ended exactly as a session expiry ends it in the state
  machine (``ExpireSession``, in session id order): its queued acquires are dropped and its
  locks released. As every session ends, so does every hold and every wait: the restored
  cluster starts with no sessions and no locks. A worker that still runs against the source
  cluster (or was paused through the move) gets ``SESSION_EXPIRED`` and must open a new session
  and acquire again; it can never keep a lock alive on a session id of the old cluster.
- The fencing-token and session-id counters jump by ``RESTORE_ID_MARGIN``, so the new cluster
  never issues a token or a session id the source could have issued after the backup.
- The term fence restarts (``epoch`` 0): the new cluster's Raft terms start again from 1.
- The member registry is replaced by the new cluster's peers, since the new cluster's addresses
  are what clients and members must be told.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from turnstile.cluster import snapshot, views
from turnstile.cluster.commands import Done, ExpireSession
from turnstile.cluster.config import NodeConfig
from turnstile.cluster.peers import Peer
from turnstile.cluster.snapshot_file import write_initial_snapshot
from turnstile.cluster.state import StateMachine
from turnstile.cluster.views import Counts

#: How far restore raises the fencing-token and session-id counters above the backup's.
#:
#: The source cluster may have kept running after the backup was taken (it usually did: a
#: backup is older than the failure it recovers from), issuing tokens and session ids the
#: backup does not know of. A resource fenced by tokens of the source would refuse a restored
#: cluster's lower tokens, or worse, accept one equal to a token already used; a session id of
#: the source reissued here would let a stray worker act as another. 2**40 is more than any
#: cluster issues between a backup and its restore (over 30 years at the measured ~1,100
#: grants/s; still 127 days at 100,000/s), and leaves room for 2**23 chained restores below
#: 2**63 (and 8,191 below 2**53, for consumers that read the ids as JSON doubles).
RESTORE_ID_MARGIN = 2**40

#: Ids stay below this (signed 64-bit consumers); a restore that would pass it is refused.
_ID_LIMIT = 2**63


class RestoreError(ValueError):
    """The snapshot cannot be read, or the node's data directory is not empty."""


@dataclass(frozen=True, slots=True)
class Restored:
    path: Path
    #: What the node starts with.
    counts: Counts
    #: What the backup held (its sessions and locks are not restored).
    saved: Counts


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
    saved = views.counts(state)
    restored_state(state, config.peers)
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
    return Restored(Path(path), views.counts(state), saved)


def restored_state(state: StateMachine, peers: tuple[Peer, ...]) -> StateMachine:
    """Turns a loaded backup into a new cluster's first state, in place (see the module
    docstring). Deterministic: the same backup and peers give the same state on every node."""
    highest = max(state.last_token, state.last_session)
    if highest + RESTORE_ID_MARGIN >= _ID_LIMIT:
        raise RestoreError(
            f"the backup's counters ({highest}) leave no room for RESTORE_ID_MARGIN below 2**63"
        )
    # Raised first, so even the grants made while sessions end below come from the new range.
    state.last_token += RESTORE_ID_MARGIN
    state.last_session += RESTORE_ID_MARGIN
    for session in sorted(state.sessions):
        ended = state.apply(ExpireSession(state.clock, session, term=state.epoch)).result
        if not isinstance(ended, Done):
            raise RestoreError(f"ending session {session} of the backup failed: {ended}")
    state.epoch = 0
    state.cluster_members = {
        peer.node_id: (peer.peer_address, peer.client_address) for peer in peers
    }
    return state
