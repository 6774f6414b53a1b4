"""``turnstile ... | head``: a reader that quits early ends the command quietly, as it ends
Unix tools (no "Broken pipe" message, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


def run_into_a_closed_pipe(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Runs the command with stdout a pipe whose reader is gone before the first write."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [sys.executable, "-m", "turnstile.cluster", *argv],
            input=stdin,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)


def test_a_closed_stdout_ends_the_command_quietly() -> None:
    done = run_into_a_closed_pipe("token", "hash", stdin="a-token\n")
    assert (done.returncode, done.stderr) == (1, "")


def test_a_command_printing_many_lines_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    done = run_into_a_closed_pipe("certs", str(tmp_path / "pki"))
    assert (done.returncode, done.stderr) == (1, "")
