"""pysyncobj renames every snapshot into place through ``serializer.atomicReplace``: with the
adapter loaded, that is ``pysyncobj_fixes.durable_replace`` (the file synced before the
rename, the directory after), not pysyncobj's plain rename."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pysyncobj.serializer
import pytest

import turnstile.cluster.raft  # noqa: F401 - installs the fix, as a node does

pytestmark = pytest.mark.unit


def test_a_snapshot_is_synced_before_its_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "raft.snapshot.tmp", tmp_path / "raft.snapshot"
    source.write_bytes(b"snapshot")
    steps: list[str] = []
    fsync, replace = os.fsync, os.replace

    def fsynced(fd: int) -> None:
        kind = "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        steps.append(f"fsync {kind}")
        fsync(fd)

    def replaced(src: str, dst: str) -> None:
        steps.append("rename")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsynced)
    monkeypatch.setattr(os, "replace", replaced)
    pysyncobj.serializer.atomicReplace(str(source), str(target))
    assert target.read_bytes() == b"snapshot"
    assert steps == ["fsync file", "rename", "fsync directory"]
