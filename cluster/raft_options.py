"""What the Raft adapter (``turnstile.cluster.raft``) needs to know, built from the node
config; the switches that turn a fix off exist for the tests that show why it exists."""

from __future__ import annotations

from dataclasses import dataclass

from turnstile.cluster.commands import PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class RaftOptions:
    """What the adapter needs to know; built from the node config."""

    self_address: str
    other_addresses: tuple[str, ...]
    data_dir: str
    password: str
    election_timeout_min_s: float = 0.5
    election_timeout_max_s: float = 1.0
    heartbeat_s: float = 0.05
    connection_retry_s: float = 0.3
    #: The nextIndex guard; off only in the test that shows why it exists.
    next_index_guard: bool = True
    #: Batch mode with our immediate send; off only in that same test.
    batch: bool = True
    #: Fast log repair; off only in the test that shows why it exists.
    fast_log_repair: bool = True
    #: Commands submitted together share one log entry; off only in the tests of log
    #: mechanics, which need one entry per command.
    group_commands: bool = True
    #: Entries between snapshots.
    compaction_min_entries: int = 20_000
    #: The term fence and the no-forwarding rule; off only in the chaos control run that shows
    #: what they prevent (a deposed leader's commands are then forwarded and applied).
    term_fence: bool = True
    #: ``QuietTransfer``; off only in the test that shows why it exists.
    quiet_transfer: bool = True
    #: The protocol version this build supports, reported to the leader in every
    #: AppendEntries reply (``RaftNode.member_protocol_versions``).
    protocol_version: int = PROTOCOL_VERSION
    #: Log entries count toward commit only once fdatasynced (``durability = "fsync"``);
    #: False never syncs them (``"none"``). Term and vote are synced either way.
    durable: bool = True
