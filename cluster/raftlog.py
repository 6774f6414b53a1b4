"""The Raft log on disk: pysyncobj's journal interface, over a file layer that syncs.

pysyncobj 0.3.17 keeps its log in an mmap it never syncs while the node runs, and writes the
term and vote by a rename it never fsyncs: an acknowledged write survived ``kill -9`` but not a
power loss of a majority, and a restarted node could vote twice in one term. ``RaftLog``
replaces that journal (``raft.py`` installs it in the replica; see its docstring):

- **Entries count only once synced.** ``add`` only writes; ``sync`` fdatasyncs everything
  written since the last sync, once (group commit). The adapter calls it where Raft needs
  it: a follower before it acknowledges AppendEntries, the leader before each tick counts its
  own log toward the commit index.
- **Term and vote are durable before they are used**: ``setCurrentTerm`` (called by pysyncobj
  before it sends a vote request or grant) replaces the metadata file atomically and syncs the
  file and the directory before it returns.
- **Truncations are synced at once** (a conflicting tail, a snapshot install), so that bytes
  of the removed records can never reappear behind new ones after a crash.
- **A torn tail is dropped on open.** Every record carries its length and a CRC32; reading
  stops at the first record that is incomplete, fails its checksum, or does not continue the
  log (next index, no lower term), and the file is cut there before anything is appended.
- **Compaction** (pysyncobj drops the prefix a snapshot covers) writes the remaining entries to
  a new file and renames it into place, after syncing the directory so that the snapshot's own
  rename is durable before the entries it replaces are gone.

``durable=False`` (the ``durability = "none"`` option) keeps the same files and formats but
never syncs: what a process crash cannot lose, a power loss can.

Files in the node's data directory: ``raft.log`` (a header, then records
``u32 length | u32 crc32 | u64 index | u64 term | command``, little-endian; the checksum covers
index, term and command) and ``raft.meta`` (msgpack: term, vote, commit index). A directory
still holding pysyncobj's own ``raft.journal`` is converted once, atomically, on first start
(``migrate_pysyncobj_journal``).
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import msgpack
from pysyncobj.journal import FileJournal, Journal

LOG_FILE = "raft.log"
META_FILE = "raft.meta"
#: pysyncobj's own journal and its metadata, as earlier builds left them.
PYSYNCOBJ_JOURNAL_FILE = "raft.journal"
PYSYNCOBJ_META_FILE = "raft.journal.meta"

_MAGIC = b"TURNSTILE-RAFT-LOG\0\0"
_FORMAT_VERSION = 1
_HEADER = _MAGIC + struct.pack("<I", _FORMAT_VERSION)
_RECORD_HEAD = struct.Struct("<II")  # length of what follows the CRC, CRC32 of it
_ENTRY_HEAD = struct.Struct("<QQ")  # index, term
_META_FORMAT = 1

#: One log entry as pysyncobj keeps it: (command, index, term).
Entry = tuple[bytes, int, int]


class RaftLogError(Exception):
    """The log files cannot be used (not ours, or from a newer format); names the file, and
    the node refuses to start with that message."""


class LogFile(Protocol):
    """An open file of the log, written at offsets."""

    def read(self) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...

    def truncate(self, size: int) -> None: ...

    def sync(self) -> None:
        """Makes every byte written and the file's size durable (fdatasync)."""

    def close(self) -> None: ...


class Files(Protocol):
    """The directory the log lives in. The crash test substitutes one that forgets, on a
    simulated crash, every byte that was not synced."""

    def path(self, name: str) -> str:
        """Where ``name`` is, for messages."""

    def exists(self, name: str) -> bool: ...

    def read(self, name: str) -> bytes: ...

    def open(self, name: str) -> LogFile:
        """Opens an existing file for reading and writing."""

    def replace(self, name: str, data: bytes, durable: bool) -> None:
        """Atomically gives ``name`` the content ``data``; with ``durable``, the new content
        is on disk (file and directory synced) when this returns."""

    def remove(self, name: str) -> None: ...

    def sync_directory(self) -> None:
        """Makes the directory's entries durable (renames, creations, removals)."""


class DiskLogFile:
    """A log file on the local file system, through its descriptor."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR)

    def read(self) -> bytes:
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0) if size else b""

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class DiskFiles:
    """A data directory on the local file system."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def exists(self, name: str) -> bool:
        return os.path.exists(self.path(name))

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as file:
            return file.read()

    def open(self, name: str) -> DiskLogFile:
        return DiskLogFile(self.path(name))

    def replace(self, name: str, data: bytes, durable: bool) -> None:
        temporary = self.path(name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path(name))
        if durable:
            self.sync_directory()

    def remove(self, name: str) -> None:
        os.remove(self.path(name))

    def sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def encode_record(entry: Entry) -> bytes:
    command, index, term = entry
    body = _ENTRY_HEAD.pack(index, term) + bytes(command)
    return _RECORD_HEAD.pack(len(body), zlib.crc32(body)) + body


def encode_log(entries: Sequence[Entry]) -> bytes:
    """A whole log file holding ``entries``."""
    return _HEADER + b"".join(encode_record(entry) for entry in entries)


def decode_log(data: bytes, name: str = LOG_FILE) -> tuple[list[Entry], list[int], int]:
    """The entries of a log file, each one's offset, and where the valid records end.

    Stops at the first record that is incomplete, fails its checksum, or does not continue
    the log: what a crash left half-written, never an entry that was synced.
    """
    if data[: len(_MAGIC)] != _MAGIC:
        raise RaftLogError(f"{name} is not a Turnstile Raft log (bad header)")
    if len(data) < len(_HEADER):
        raise RaftLogError(f"{name} has a truncated header")
    (version,) = struct.unpack_from("<I", data, len(_MAGIC))
    if version != _FORMAT_VERSION:
        raise RaftLogError(
            f"{name} has log format {version}; this build reads format {_FORMAT_VERSION}"
        )
    entries: list[Entry] = []
    offsets: list[int] = []
    offset = len(_HEADER)
    while offset + _RECORD_HEAD.size <= len(data):
        length, crc = _RECORD_HEAD.unpack_from(data, offset)
        start = offset + _RECORD_HEAD.size
        end = start + length
        if length < _ENTRY_HEAD.size or end > len(data):
            break
        body = data[start:end]
        if zlib.crc32(body) != crc:
            break
        index, term = _ENTRY_HEAD.unpack_from(body)
        if entries and (index != entries[-1][1] + 1 or term < entries[-1][2]):
            break
        entries.append((body[_ENTRY_HEAD.size :], index, term))
        offsets.append(offset)
        offset = end
    return entries, offsets, offset


class RaftLog(Journal):
    """pysyncobj's ``Journal`` over ``Files``: entries, term, vote and commit index.

    Runs on the Raft loop thread only, like the journal it replaces.
    """

    def __init__(self, files: Files, durable: bool = True) -> None:
        self._files = files
        self.durable = durable
        #: Syncs of the log file, and the seconds they took (for metrics and benchmarks).
        self.syncs = 0
        self.sync_seconds = 0.0
        self._meta = self._read_meta()
        self._meta_saved = True
        if not files.exists(LOG_FILE):
            files.replace(LOG_FILE, _HEADER, durable)
        data = files.read(LOG_FILE)
        self._entries, self._offsets, self._end = decode_log(data, files.path(LOG_FILE))
        self._file = files.open(LOG_FILE)
        self._dirty = False
        if self._end < len(data):
            self._cut(self._end)

    def _read_meta(self) -> dict[str, Any]:
        if not self._files.exists(META_FILE):
            return {"format": _META_FORMAT, "term": 0, "voted_for": None, "commit_index": 1}
        try:
            meta = msgpack.unpackb(self._files.read(META_FILE), raw=False)
        except (ValueError, msgpack.UnpackException) as exc:
            raise RaftLogError(f"{self._files.path(META_FILE)} cannot be read: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != _META_FORMAT:
            raise RaftLogError(
                f"{self._files.path(META_FILE)} is not Turnstile Raft metadata of format 1"
            )
        return meta

    def _store_meta(self) -> None:
        self._files.replace(META_FILE, msgpack.packb(self._meta), self.durable)
        self._meta_saved = True

    # ------------------------------------------------------------------ syncing

    @property
    def unsynced(self) -> bool:
        """Something was written since the last sync."""
        return self._dirty

    def sync(self) -> None:
        """Makes every entry written so far durable, with one fdatasync (none if nothing was
        written since the last one, or with ``durable`` off)."""
        if not self._dirty or not self.durable:
            return
        started = time.monotonic()
        self._file.sync()
        self.sync_seconds += time.monotonic() - started
        self.syncs += 1
        self._dirty = False

    def _cut(self, offset: int) -> None:
        """Truncates the file at ``offset`` and syncs at once: bytes of the removed records
        must never reappear after a crash behind the records written next."""
        self._file.truncate(offset)
        self._end = offset
        self._dirty = True
        self.sync()

    # ------------------------------------------------------------------ pysyncobj's Journal

    def add(self, command: bytes, idx: int, term: int) -> None:
        record = encode_record((command, idx, term))
        self._file.write(self._end, record)
        self._entries.append((bytes(command), idx, term))
        self._offsets.append(self._end)
        self._end += len(record)
        self._dirty = True

    def clear(self) -> None:
        self._entries = []
        self._offsets = []
        self._cut(len(_HEADER))

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802, N803 - pysyncobj's names
        if entryFrom >= len(self._entries):
            return
        offset = self._offsets[entryFrom]
        del self._entries[entryFrom:]
        del self._offsets[entryFrom:]
        self._cut(offset)

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802, N803 - pysyncobj's names
        """Drops the prefix a snapshot now covers, by writing the rest to a new file."""
        remaining = self._entries[entryTo:]
        if self.durable:
            self._files.sync_directory()  # the snapshot's rename, before its entries go
        self.sync()
        self._file.close()
        self._files.replace(LOG_FILE, encode_log(remaining), self.durable)
        self._file = self._files.open(LOG_FILE)
        self._entries = list(remaining)
        self._offsets = []
        offset = len(_HEADER)
        for entry in remaining:
            self._offsets.append(offset)
            offset += _RECORD_HEAD.size + _ENTRY_HEAD.size + len(entry[0])
        self._end = offset
        self._dirty = False

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        self.sync()
        if not self._meta_saved:
            self._store_meta()
        self._file.close()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802, N803
        """Kept in memory and stored once a second (``onOneSecondTimer``), as pysyncobj does:
        the commit index is learned again from the leader, so it need not be synced each time."""
        if self._meta["commit_index"] != raftCommitIndex:
            self._meta["commit_index"] = raftCommitIndex
            self._meta_saved = False

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        """The stored commit index, never past the last entry (with ``durable`` off, a crash
        can keep the metadata of entries it lost)."""
        commit = int(self._meta["commit_index"])
        return min(commit, self._entries[-1][1]) if self._entries else commit

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:  # noqa: N802, N803
        """Stored, and synced, before pysyncobj sends the vote request or grant it stands for."""
        self._meta["term"] = term
        self._meta["voted_for"] = votedForNodeId
        self._store_meta()

    def getCurrentTerm(self) -> int:  # noqa: N802
        return int(self._meta["term"])

    def getVotedForNodeId(self) -> str | None:  # noqa: N802
        voted = self._meta["voted_for"]
        return voted if isinstance(voted, str) else None

    def onOneSecondTimer(self) -> None:  # noqa: N802
        if not self._meta_saved:
            self._store_meta()


def migrate_pysyncobj_journal(directory: str) -> bool:
    """Converts a data directory written by an earlier build (pysyncobj's ``raft.journal``
    and ``raft.journal.meta``) to ``raft.log`` and ``raft.meta``; True if it did.

    The new files are written whole and synced, the log last (its presence means done), and
    only then are the old ones removed; a crash at any point leaves one complete set.
    """
    files = DiskFiles(directory)
    if files.exists(LOG_FILE):
        _remove_pysyncobj_files(files)  # left by a conversion that stopped before this step
        return False
    if not files.exists(PYSYNCOBJ_JOURNAL_FILE):
        return False
    journal = FileJournal(os.path.join(directory, PYSYNCOBJ_JOURNAL_FILE))
    try:
        entries = [(bytes(command), index, term) for command, index, term in journal[:]]
        meta = {
            "format": _META_FORMAT,
            "term": journal.getCurrentTerm(),
            "voted_for": journal.getVotedForNodeId(),
            "commit_index": journal.getRaftCommitIndex(),
        }
    finally:
        journal._destroy()
    files.replace(META_FILE, msgpack.packb(meta), durable=True)
    files.replace(LOG_FILE, encode_log(entries), durable=True)
    _remove_pysyncobj_files(files)
    return True


def _remove_pysyncobj_files(files: DiskFiles) -> None:
    removed = False
    for name in (PYSYNCOBJ_JOURNAL_FILE, PYSYNCOBJ_META_FILE):
        if files.exists(name):
            files.remove(name)
            removed = True
    if removed:
        files.sync_directory()
