"""The Raft log's file layer (``raftlog``): what a crash keeps.

``CrashDisk`` stands in for the directory. It keeps, per file, the content that was synced
and the writes since; a simulated crash keeps only the synced content plus any subset of the
later writes, each possibly torn (a prefix of it reached the disk), as a power loss may.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NoReturn

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pysyncobj.journal import FileJournal

from turnstile.cluster.raftlog import (
    COMMIT_FILE,
    LOG_FILE,
    META_FILE,
    PYSYNCOBJ_JOURNAL_FILE,
    PYSYNCOBJ_META_FILE,
    DiskFiles,
    Entry,
    RaftLog,
    RaftLogError,
    decode_log,
    encode_log,
    migrate_pysyncobj_journal,
)

pytestmark = pytest.mark.unit

#: One pending operation on a file: ("write", offset, bytes), ("truncate", size) or
#: ("replace", bytes) (a rename that was not made durable).
Op = tuple[object, ...]


@dataclass
class CrashDisk:
    """Files whose unsynced writes a crash may lose, keep, or tear."""

    durable: dict[str, bytes] = field(default_factory=dict)
    current: dict[str, bytearray] = field(default_factory=dict)
    pending: dict[str, list[Op]] = field(default_factory=dict)
    syncs: int = 0

    def path(self, name: str) -> str:
        return name

    def exists(self, name: str) -> bool:
        return name in self.current

    def read(self, name: str) -> bytes:
        if name not in self.current:
            raise FileNotFoundError(name)
        return bytes(self.current[name])

    def open(self, name: str) -> CrashFile:
        assert name in self.current, f"{name} opened before it was created"
        return CrashFile(self, name)

    def replace(self, name: str, data: bytes, durable: bool) -> None:
        self.current[name] = bytearray(data)
        if durable:
            self.durable[name] = bytes(data)
            self.pending[name] = []
        else:
            self.pending.setdefault(name, []).append(("replace", bytes(data)))

    def remove(self, name: str) -> None:
        del self.current[name]

    def sync_directory(self) -> None:
        pass

    def apply(self, name: str, op: Op) -> None:
        self.current[name] = _applied(self.current.get(name, bytearray()), op)
        self.pending.setdefault(name, []).append(op)

    def sync(self, name: str) -> None:
        self.durable[name] = bytes(self.current[name])
        self.pending[name] = []
        self.syncs += 1

    def crash(self, data: st.DataObject) -> CrashDisk:
        """The disk after a power loss: synced content, plus what ``data`` picks of the rest."""
        after = CrashDisk()
        for name in set(self.durable) | set(self.pending):
            content = bytearray(self.durable.get(name, b""))
            known = name in self.durable
            for op in self.pending.get(name, []):
                if not data.draw(st.booleans(), label=f"keep {op[0]} on {name}"):
                    continue
                if op[0] == "write":
                    written = op[2]
                    assert isinstance(written, bytes)
                    kept = data.draw(st.integers(0, len(written)), label="bytes kept")
                    content = _applied(content, ("write", op[1], written[:kept]))
                else:
                    content = _applied(content, op)
                known = True
            if known:
                after.durable[name] = bytes(content)
                after.current[name] = bytearray(content)
        return after


def _applied(content: bytearray, op: Op) -> bytearray:
    content = bytearray(content)
    if op[0] == "write":
        offset, data = op[1], op[2]
        assert isinstance(offset, int) and isinstance(data, bytes)
        if len(content) < offset:
            content.extend(b"\0" * (offset - len(content)))
        content[offset : offset + len(data)] = data
    elif op[0] == "truncate":
        size = op[1]
        assert isinstance(size, int)
        del content[size:]
    else:
        data = op[1]
        assert isinstance(data, bytes)
        content = bytearray(data)
    return content


@dataclass
class CrashFile:
    disk: CrashDisk
    name: str

    def write(self, offset: int, data: bytes) -> None:
        self.disk.apply(self.name, ("write", offset, bytes(data)))

    def truncate(self, size: int) -> None:
        self.disk.apply(self.name, ("truncate", size))

    def sync(self) -> None:
        self.disk.sync(self.name)

    def close(self) -> None:
        pass


# --- what the Raft adapter does to its log, as steps -----------------------------------------

#: ("append", count) | ("ack",) | ("conflict", keep) | ("compact", drop) | ("vote", term)
#: | ("second",)
Step = tuple[object, ...]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4)),
        st.tuples(st.just("ack")),
        st.tuples(st.just("conflict"), st.integers(0, 6)),
        st.tuples(st.just("compact"), st.integers(1, 3)),
        st.tuples(st.just("vote"), st.integers(0, 2)),
        st.tuples(st.just("second")),
    ),
    max_size=25,
)


@dataclass
class Model:
    """What Raft was told: the log as of the last sync (acknowledged), the log now, the term
    and vote last stored, and the highest commit index the one-second timer stored."""

    acknowledged: list[Entry]
    now: list[Entry]
    term: int = 0
    voted_for: str | None = None
    stored_commit: int = 1


def _run(log: RaftLog, model: Model, plan: list[Step]) -> None:
    term = 1
    for step in plan:
        kind = step[0]
        if kind == "append":
            count = step[1]
            assert isinstance(count, int)
            for _ in range(count):
                index = model.now[-1][1] + 1 if model.now else 1
                entry = (f"command {index}/{term}".encode() * (index % 3 + 1), index, term)
                log.add(*entry)
                model.now.append(entry)
        elif kind == "ack":
            log.sync()  # what a follower does before it acknowledges
            model.acknowledged = list(model.now)
        elif kind == "conflict":  # a new leader's entries replace a tail that was not its own
            keep = step[1]
            assert isinstance(keep, int)
            if 1 <= keep < len(model.now):
                log.deleteEntriesFrom(keep)
                del model.now[keep:]
                model.acknowledged = list(model.now)  # the truncation is synced at once
                term += 1
        elif kind == "compact":
            drop = step[1]
            assert isinstance(drop, int)
            if drop < len(model.now):
                log.deleteEntriesTo(drop)
                del model.now[:drop]
                model.acknowledged = list(model.now)
        elif kind == "vote":
            term += 1
            model.term = term
            model.voted_for = f"n{step[1]}"
            log.setCurrentTerm(model.term, model.voted_for)
        else:
            commit = model.now[-1][1] if model.now else 1
            log.setRaftCommitIndex(commit)
            log.onOneSecondTimer()
            model.stored_commit = max(model.stored_commit, commit)


def _check_recovered(recovered: list[Entry], model: Model) -> None:
    assert recovered[: len(model.acknowledged)] == model.acknowledged, "an acked entry was lost"
    assert recovered == model.now[: len(recovered)], "the log holds an entry never written"


@settings(max_examples=300, deadline=None)
@given(plan=steps, data=st.data())
def test_a_crash_keeps_every_acknowledged_entry_and_leaves_a_usable_log(
    plan: list[Step], data: st.DataObject
) -> None:
    disk = CrashDisk()
    log = RaftLog(disk)
    model = Model(acknowledged=[], now=[])
    _run(log, model, plan)

    after = disk.crash(data)
    recovered_log = RaftLog(after)
    recovered = list(recovered_log[:])
    _check_recovered(recovered, model)
    assert recovered_log.getCurrentTerm() == model.term
    assert recovered_log.getVotedForNodeId() == model.voted_for
    # The commit index is never synced: one stored at some point (or 1), never past the log.
    # (These plans truncate below a stored commit index, which Raft never does.)
    commit = recovered_log.getRaftCommitIndex()
    assert 1 <= commit <= model.stored_commit
    assert not recovered or commit <= recovered[-1][1]

    # Recovery cut any torn tail: entries appended now are read back after a clean restart.
    index = recovered[-1][1] + 1 if recovered else 1
    term = max([entry[2] for entry in recovered] + [model.term, 1])
    recovered_log.add(b"after the crash", index, term)
    recovered_log.sync()
    again = RaftLog(after.crash(data))
    assert list(again[:]) == [*recovered, (b"after the crash", index, term)]


def test_without_syncs_a_crash_loses_acknowledged_entries() -> None:
    """The harness sees a missing sync: the same steps with ``durable=False`` lose the
    acknowledged entries when the crash keeps nothing that was not synced."""
    disk = CrashDisk()
    log = RaftLog(disk, durable=False)
    model = Model(acknowledged=[], now=[])
    _run(log, model, [("append", 3), ("ack",)])
    assert disk.syncs == 0
    after = CrashDisk(durable=dict(disk.durable))
    after.current = {name: bytearray(content) for name, content in disk.durable.items()}
    with pytest.raises(AssertionError, match="an acked entry was lost"):
        _check_recovered(list(RaftLog(after)[:]), model)


def test_one_sync_covers_everything_written_since_the_last() -> None:
    disk = CrashDisk()
    log = RaftLog(disk)
    opened = (log.syncs, disk.syncs)
    for index in range(1, 101):
        log.add(b"x", index, 1)
    log.sync()
    log.sync()  # nothing new: no second fdatasync
    assert (log.syncs - opened[0], disk.syncs - opened[1]) == (1, 1)
    assert not log.unsynced


def test_what_a_process_crash_left_in_the_page_cache_is_synced_on_open() -> None:
    """After ``kill -9`` the unsynced appends are still readable (the page cache survives);
    they must be synced before this node can acknowledge or count them."""
    disk = CrashDisk()
    log = RaftLog(disk)
    for index in range(1, 4):
        log.add(b"x", index, 1)
    survivor = CrashDisk(
        durable=dict(disk.durable),
        current={name: bytearray(content) for name, content in disk.current.items()},
        pending={name: list(ops) for name, ops in disk.pending.items()},
    )
    reopened = RaftLog(survivor)
    assert [entry[1] for entry in reopened[:]] == [1, 2, 3]
    assert not reopened.unsynced
    assert survivor.durable[LOG_FILE] == bytes(survivor.current[LOG_FILE])


class _FailingSync:
    def __init__(self, file: CrashFile) -> None:
        self.file = file

    def __getattr__(self, name: str) -> object:
        return getattr(self.file, name)

    def sync(self) -> None:
        raise OSError(5, "Input/output error")


class _StoppedError(Exception):
    pass


def _stop(why: str) -> NoReturn:
    raise _StoppedError(why)


def test_a_failed_sync_stops_the_node_instead_of_being_retried() -> None:
    """Linux may drop the dirty pages of a failed fdatasync; a retry that then succeeds would
    vouch for bytes that are not on disk. The log calls ``fail`` (the node halts)."""
    disk = CrashDisk()
    log = RaftLog(disk, fail=_stop)
    log._file = _FailingSync(log._file)  # type: ignore[assignment]
    log.add(b"x", 1, 1)
    with pytest.raises(_StoppedError, match=r"syncing raft\.log failed: Input/output error"):
        log.sync()


def test_a_torn_commit_file_only_means_commit_index_1() -> None:
    disk = CrashDisk()
    RaftLog(disk).add(b"x", 1, 1)
    disk.current[COMMIT_FILE] = bytearray(b"\xc1")
    assert RaftLog(disk).getRaftCommitIndex() == 1


@pytest.mark.parametrize(
    "meta",
    [b"\xc1", msgpack.packb({"format": 1, "term": "7", "voted_for": None}), msgpack.packb([])],
)
def test_unreadable_term_and_vote_stop_the_start_naming_the_file(meta: bytes) -> None:
    disk = CrashDisk()
    disk.current[META_FILE] = bytearray(meta)
    with pytest.raises(RaftLogError, match=r"^raft\.meta (cannot be read|is not Turnstile)"):
        RaftLog(disk)


def test_a_vote_is_durable_before_set_current_term_returns() -> None:
    disk = CrashDisk()
    log = RaftLog(disk)
    log.setCurrentTerm(7, "n2")
    assert msgpack.unpackb(disk.durable[META_FILE])["voted_for"] == "n2"


def test_a_record_that_does_not_continue_the_log_ends_it() -> None:
    entries = [(b"a", 1, 1), (b"b", 2, 2), (b"c", 3, 1), (b"d", 5, 2)]
    decoded, _offsets, end = decode_log(encode_log(entries))
    assert decoded == entries[:2]
    assert end < len(encode_log(entries))


def test_a_file_that_is_not_a_log_is_refused_by_name() -> None:
    with pytest.raises(RaftLogError, match=r"raft\.log is not a Turnstile Raft log"):
        decode_log(b"PYSYNCOBJ" + b"\0" * 64)


def test_the_disk_layer_round_trips_and_cuts_a_torn_tail(tmp_path: os.PathLike[str]) -> None:
    directory = str(tmp_path)
    log = RaftLog(DiskFiles(directory))
    for index in range(1, 6):
        log.add(b"entry %d" % index, index, 1)
    log.setCurrentTerm(3, "n1")
    log._destroy()
    path = os.path.join(directory, LOG_FILE)
    with open(path, "ab") as file:
        file.write(b"\x40\0\0\0torn")  # half a record, as a crash mid-append leaves it
    reopened = RaftLog(DiskFiles(directory))
    assert [entry[1] for entry in reopened[:]] == [1, 2, 3, 4, 5]
    assert os.path.getsize(path) == len(encode_log(list(reopened[:])))
    assert (reopened.getCurrentTerm(), reopened.getVotedForNodeId()) == (3, "n1")
    reopened._destroy()


def test_a_pysyncobj_journal_is_converted_once_with_term_vote_and_commit(
    tmp_path: os.PathLike[str],
) -> None:
    directory = str(tmp_path)
    old = FileJournal(os.path.join(directory, PYSYNCOBJ_JOURNAL_FILE))
    entries = [(b"\x00", 1, 0), (b"\x01payload", 2, 1), (b"\x01more", 3, 2)]
    for entry in entries:
        old.add(*entry)
    old.setCurrentTerm(2, "n3")
    old.setRaftCommitIndex(3)
    old.onOneSecondTimer()
    old._destroy()

    assert migrate_pysyncobj_journal(directory)
    assert not migrate_pysyncobj_journal(directory)
    assert not os.path.exists(os.path.join(directory, PYSYNCOBJ_JOURNAL_FILE))
    assert not os.path.exists(os.path.join(directory, PYSYNCOBJ_META_FILE))
    log = RaftLog(DiskFiles(directory))
    assert list(log[:]) == entries
    assert (log.getCurrentTerm(), log.getVotedForNodeId(), log.getRaftCommitIndex()) == (
        2,
        "n3",
        3,
    )
    log._destroy()
