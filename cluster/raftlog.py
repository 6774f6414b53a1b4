"""The Raft log on disk: pysyncobj's journal interface, over a file layer that syncs.

pysyncobj 0.3.17 keeps its log in an mmap it never syncs while the node runs, and writes the
term and vote by a rename it never fsyncs: an acknowledged write survived ``kill -9`` but not a
power loss of a majority, and a restarted node could vote twice in one term. ``RaftLog``
replaces that journal (``raft.py`` installs it in the replica; see its docstring):

- **Entries count only once synced.** ``add`` only writes; ``sync`` fdatasyncs everything
  written since the last sync, once (group commit). The adapter calls it where Raft needs
  it: a follower before it acknowledges AppendEntries, the leader before a tick can count its
  own log toward the commit index (after sending the entries, before waiting for the acks).
- **Term and vote are durable before they are used**: ``setCurrentTerm`` (called by pysyncobj
  before it sends a vote request or grant) replaces the metadata file atomically and syncs the
  file and the directory before it returns.
- **Truncations are synced at once** (a conflicting tail, a snapshot install), so that bytes
  of the removed records can never reappear behind new ones after a crash.
- **A torn tail is dropped on open.** Every record carries its length and a CRC32; reading
  stops at the first record that is incomplete, fails its checksum, or does not continue the
  log (next index, no lower term), and the file is cut there, with a warning, before anything
  is appended.
- **Compaction** (pysyncobj drops the prefix a snapshot covers) writes the remaining entries to
  a new file and renames it into place, after syncing the directory so that the snapshot's own
  rename is durable before the entries it replaces are gone.

``durable=False`` (the ``durability = "none"`` option) never syncs log entries: what a process
crash cannot lose, a power loss can. Term and vote, and the rare whole-file rewrites
(compaction), are synced in either mode. A failed write or sync is fatal (``fail``). On open,
whatever was read is synced once before anything can count it: after a process crash, it may
be in the page cache only.

Files in the node's data directory: ``raft.log`` (a header, then records
``u32 length | u32 crc32 | u64 index | u64 term | command``, little-endian; the checksum covers
index, term and command), ``raft.meta`` (msgpack: term and vote, replaced atomically and
synced) and ``raft.commit`` (the commit index, stored once a second and never synced: the
leader tells it again). A directory still holding pysyncobj's own ``raft.journal`` is
converted once, atomically, on first start (``migrate_pysyncobj_journal``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, Protocol

import msgpack
from pysyncobj.journal import FileJournal, Journal

LOG_FILE = "raft.log"
META_FILE = "raft.meta"
COMMIT_FILE = "raft.commit"
#: pysyncobj's own journal and its metadata, as earlier builds left them.
PYSYNCOBJ_JOURNAL_FILE = "raft.journal"
PYSYNCOBJ_META_FILE = "raft.journal.meta"

_MAGIC = b"TURNSTILE-RAFT-LOG\0\0"
_FORMAT_VERSION = 1
_HEADER = _MAGIC + struct.pack("<I", _FORMAT_VERSION)
_RECORD_HEAD = struct.Struct("<II")  # length of what follows the CRC, CRC32 of it
_ENTRY_HEAD = struct.Struct("<QQ")  # index, term
_META_FORMAT = 1

log = logging.getLogger(__name__)

#: One log entry as pysyncobj keeps it: (command, index, term).
Entry = tuple[bytes, int, int]


class RaftLogError(Exception):
    """The log files cannot be used (not ours, or from a newer format); names the file, and
    the node refuses to start with that message."""


class LogFile(Protocol):
    """An open file of the log, written at offsets."""

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


def _refuse(why: str) -> NoReturn:
    raise RaftLogError(why)


class RaftLog(Journal):
    """pysyncobj's ``Journal`` over ``Files``: entries, term, vote and commit index.

    Runs on the Raft loop thread only, like the journal it replaces. A file that cannot be
    read on open raises ``RaftLogError``; a write or sync that fails later calls ``fail``
    (the adapter stops the node): after a failed fdatasync the kernel may have dropped the
    dirty pages, so a retry that succeeds would vouch for bytes that are not on disk.
    """

    def __init__(
        self,
        files: Files,
        durable: bool = True,
        fail: Callable[[str], NoReturn] = _refuse,
    ) -> None:
        self._files = files
        self.durable = durable
        self._fail: Callable[[str], NoReturn] = _refuse
        #: Syncs of the log file, and the seconds they took (for metrics and benchmarks).
        self.syncs = 0
        self.sync_seconds = 0.0
        self._term, self._voted_for = self._read_vote()
        self._commit = self._read_commit()
        self._commit_saved = True
        with self._io("opening", LOG_FILE):
            if not files.exists(LOG_FILE):
                files.replace(LOG_FILE, _HEADER, durable=True)
            data = files.read(LOG_FILE)
            self._entries, self._offsets, self._end = decode_log(data, files.path(LOG_FILE))
            self._file = files.open(LOG_FILE)
        if self._entries and not files.exists(META_FILE):
            log.warning(
                "%s holds entries but %s is missing: starting with no vote in term %d",
                files.path(LOG_FILE),
                files.path(META_FILE),
                self._entries[-1][2],
            )
        # After a process crash, or with durability "none" before, what was read may be in
        # the page cache only: synced before any of it is acknowledged or counted.
        self._dirty = True
        if self._end < len(data):
            last = self._entries[-1][1] if self._entries else None
            log.warning(
                "%s: dropped %d bytes after entry %s that do not form a whole record "
                "continuing the log (what a crash leaves of an append it interrupted)",
                files.path(LOG_FILE),
                len(data) - self._end,
                last,
            )
            self._cut(self._end)
        self.sync()
        if durable and files.exists(META_FILE):
            self._store_vote()
        self._fail = fail

    @contextlib.contextmanager
    def _io(self, doing: str, name: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            self._fail(f"{doing} {self._files.path(name)} failed: {exc.strerror or exc}")

    def _read_vote(self) -> tuple[int, str | None]:
        path = self._files.path(META_FILE)
        with self._io("reading", META_FILE):
            if not self._files.exists(META_FILE):
                return 0, None
            data = self._files.read(META_FILE)
        try:
            meta = msgpack.unpackb(data, raw=False)
        except (ValueError, msgpack.UnpackException) as exc:
            raise RaftLogError(f"{path} cannot be read: {exc}") from exc
        if (
            not isinstance(meta, dict)
            or meta.get("format") != _META_FORMAT
            or type(meta.get("term")) is not int
            or meta["term"] < 0
            or not isinstance(meta.get("voted_for"), str | None)
        ):
            raise RaftLogError(f"{path} is not Turnstile Raft metadata of format {_META_FORMAT}")
        return meta["term"], meta["voted_for"]

    def _store_vote(self) -> None:
        """Synced in either durability mode: one sync per election, and Raft's one vote per
        term must hold whatever the log's setting."""
        meta = {"format": _META_FORMAT, "term": self._term, "voted_for": self._voted_for}
        with self._io("writing", META_FILE):
            self._files.replace(META_FILE, msgpack.packb(meta), durable=True)

    def _read_commit(self) -> int:
        """The commit index stored last, or 1: it is never synced (the leader tells it again),
        so after a power loss the file may be missing or torn."""
        try:
            commit = msgpack.unpackb(self._files.read(COMMIT_FILE))
        except (OSError, ValueError, msgpack.UnpackException):
            return 1
        return commit if type(commit) is int and commit >= 1 else 1

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
        with self._io("syncing", LOG_FILE):
            self._file.sync()
        self.sync_seconds += time.monotonic() - started
        self.syncs += 1
        self._dirty = False

    def _cut(self, offset: int) -> None:
        """Truncates the file at ``offset`` and syncs at once: bytes of the removed records
        must never reappear after a crash behind the records written next."""
        with self._io("truncating", LOG_FILE):
            self._file.truncate(offset)
        self._end = offset
        self._dirty = True
        self.sync()

    # ------------------------------------------------------------------ pysyncobj's Journal

    def add(self, command: bytes, idx: int, term: int) -> None:
        record = encode_record((command, idx, term))
        with self._io("appending to", LOG_FILE):
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
        """Drops the prefix a snapshot now covers, by writing the rest to a new file (synced
        in either durability mode: it is rare, and a torn one would stop the node)."""
        remaining = self._entries[entryTo:]
        self.sync()
        with self._io("compacting", LOG_FILE):
            self._files.sync_directory()  # the snapshot's rename, before its entries go
            self._files.replace(LOG_FILE, encode_log(remaining), durable=True)
            compacted = self._files.open(LOG_FILE)
            self._file.close()
        self._file = compacted
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
        self.onOneSecondTimer()
        with self._io("closing", LOG_FILE):
            self._file.close()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802, N803
        """Kept in memory and stored once a second (``onOneSecondTimer``), never synced, as
        pysyncobj does: a restarted node learns the commit index again from the leader."""
        if self._commit != raftCommitIndex:
            self._commit = raftCommitIndex
            self._commit_saved = False

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        """The stored commit index, never past the last entry (a power loss can keep a
        newer commit file than the entries it counted, with durability "none")."""
        return min(self._commit, self._entries[-1][1]) if self._entries else self._commit

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:  # noqa: N802, N803
        """Stored, and synced, before pysyncobj sends the vote request or grant it stands for."""
        self._term = term
        self._voted_for = votedForNodeId
        self._store_vote()

    def getCurrentTerm(self) -> int:  # noqa: N802
        return self._term

    def getVotedForNodeId(self) -> str | None:  # noqa: N802
        return self._voted_for

    def onOneSecondTimer(self) -> None:  # noqa: N802
        if not self._commit_saved:
            with self._io("writing", COMMIT_FILE):
                self._files.replace(COMMIT_FILE, msgpack.packb(self._commit), durable=False)
            self._commit_saved = True


def migrate_pysyncobj_journal(directory: str) -> bool:
    """Converts a data directory written by an earlier build (pysyncobj's ``raft.journal``
    and ``raft.journal.meta``) to ``raft.log``, ``raft.meta`` and ``raft.commit``; True if it
    did. Raises ``RaftLogError`` naming the journal if it cannot be read.

    The new files are written whole and synced, the log last (its presence means done), and
    only then are the old ones removed; a crash at any point leaves one complete set.
    """
    files = DiskFiles(directory)
    if files.exists(LOG_FILE):
        _remove_pysyncobj_files(files)  # left by a conversion that stopped before this step
        return False
    if not files.exists(PYSYNCOBJ_JOURNAL_FILE):
        return False
    path = files.path(PYSYNCOBJ_JOURNAL_FILE)
    try:
        journal = FileJournal(path)
        try:
            entries = [(bytes(command), index, term) for command, index, term in journal[:]]
            vote = {
                "format": _META_FORMAT,
                "term": int(journal.getCurrentTerm()),
                "voted_for": journal.getVotedForNodeId(),
            }
            commit = int(journal.getRaftCommitIndex())
        finally:
            journal._destroy()
        files.replace(META_FILE, msgpack.packb(vote), durable=True)
        files.replace(COMMIT_FILE, msgpack.packb(commit), durable=True)
        files.replace(LOG_FILE, encode_log(entries), durable=True)
    except (OSError, ValueError, struct.error) as exc:
        raise RaftLogError(f"cannot convert pysyncobj's journal {path}: {exc}") from exc
    _remove_pysyncobj_files(files)
    return True


def _remove_pysyncobj_files(files: DiskFiles) -> None:
    removed = []
    for name in (PYSYNCOBJ_JOURNAL_FILE, PYSYNCOBJ_META_FILE):
        if files.exists(name):
            files.remove(name)
            removed.append(files.path(name))
    if removed:
        files.sync_directory()
        log.info("removed %s (converted to %s)", ", ".join(removed), LOG_FILE)
