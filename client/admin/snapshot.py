"""``turnstile snapshot save FILE``: a backup of the whole replicated state from the leader."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from turnstile.client.admin.context import Context
from turnstile.client.admin.printer import EXIT_OK
from turnstile.client.errors import InternalError
from turnstile.cluster import views
from turnstile.cluster.snapshot import SnapshotError, load
from turnstile.v1 import turnstile_pb2 as pb


def save(ctx: Context, args: argparse.Namespace) -> int:
    chunks = ctx.client.invoke_stream(pb.SaveSnapshotRequest(), attempt_timeout=ctx.timeout)
    data = b"".join(chunk.data for chunk in chunks)
    offsets = [chunk.offset for chunk in chunks]
    expected = [sum(len(c.data) for c in chunks[:i]) for i in range(len(chunks))]
    if not chunks or offsets != expected or len(data) != chunks[0].total_bytes:
        raise InternalError("the snapshot stream arrived incomplete; run the command again")
    try:
        state = load(data)
    except SnapshotError as error:
        raise InternalError(f"the cluster sent an unreadable snapshot: {error}") from None
    write_durably(Path(args.file), data)
    counts = views.counts(state)
    ctx.printer.emit(
        {
            "file": str(args.file),
            "bytes": len(data),
            "index": chunks[0].header.applied_index,
            "term": chunks[0].header.term,
            "leader": chunks[0].header.node_id,
            "sessions": counts.sessions,
            "locks_held": counts.locks_held,
            "lists": counts.lists,
            "members": counts.members,
        }
    )
    return EXIT_OK


def write_durably(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` all or nothing: a temporary file, fsynced, renamed over it,
    then the directory fsynced so the rename survives a power loss too."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.absolute().parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
