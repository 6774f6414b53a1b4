"""Output for humans (aligned tables) or scripts (``--json``), and the CLI's exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

EXIT_OK = 0
#: Anything not listed below.
EXIT_FAILURE = 1
#: No node of the cluster could be reached, or no leader within the timeout.
EXIT_UNREACHABLE = 3
#: The named lock, list or node does not exist.
EXIT_NOT_FOUND = 4
#: The cluster refused the request (bad name, limit, not the holder, ...).
EXIT_REFUSED = 5
#: ``status``: a node is unreachable or there is no leader.
EXIT_DEGRADED = 6
#: ``lock NAME -- CMD``: the lock was not acquired within ``--wait``.
EXIT_NOT_ACQUIRED = 7
#: ``lock NAME -- CMD``: the lock was lost while the command ran; the command was stopped.
EXIT_LOCK_LOST = 8
#: Interrupted (Ctrl-C), as a shell reports SIGINT.
EXIT_INTERRUPTED = 130

Column = tuple[str, str]


class Printer:
    """Prints records as a table (``columns`` picks and names the fields) or as JSON."""

    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout

    def emit(self, data: Any, columns: Sequence[Column] | None = None, title: str = "") -> None:
        """``data`` is a dict (one record) or a list of dicts (a table)."""
        if self.as_json:
            print(json.dumps(data, indent=2, sort_keys=False), file=self.out)
            return
        if title:
            print(title, file=self.out)
        if isinstance(data, dict) and columns is None:
            width = max((len(k) for k in data), default=0)
            for key, value in data.items():
                print(f"{key.replace('_', ' '):<{width}}  {_cell(value)}", file=self.out)
            return
        rows = data if isinstance(data, list) else [data]
        self.table(rows, columns or [(k, k.upper()) for k in (rows[0] if rows else {})])

    def table(self, rows: Sequence[Mapping[str, object]], columns: Sequence[Column]) -> None:
        cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
        headers = [header for _, header in columns]
        widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
        print(_line(headers, widths), file=self.out)
        for line in cells:
            print(_line(line, widths), file=self.out)
        if not rows:
            print("(none)", file=self.out)

    def error(self, text: str) -> None:
        """A one-line error, always on stderr."""
        print(text, file=sys.stderr)

    def message(self, text: str) -> None:
        """A one-line human note; in JSON mode it goes to stderr so stdout stays parseable."""
        print(text, file=sys.stderr if self.as_json else self.out)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value) or "-"
    return str(value)


def duration(ms: int) -> str:
    """A short human duration: 850ms, 12.5s, 3m20s, 2h05m."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def member_text(member: bytes) -> str:
    """A list member for display: UTF-8 text if it is, else hex."""
    try:
        text = member.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + member.hex()
    return text if text.isprintable() else "0x" + member.hex()
