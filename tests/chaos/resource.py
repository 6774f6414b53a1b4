"""The fenced resource: a value in the harness that lock holders read and write back + 1.

It refuses a read or write carrying a token lower than the highest it has seen, as a storage
service guarded by Turnstile's fencing tokens should; so a paused ex-holder's late write is
refused and no increment is lost. With ``fencing=False`` it accepts everything: the control run
that shows the faults really cause lost updates when nothing fences them.
"""

from __future__ import annotations

import json
import socketserver
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Write:
    process: str
    token: int
    value: int


@dataclass
class FencedResource:
    """State and rules; the server below is only its transport."""

    fencing: bool = True
    value: int = 0
    highest: int = 0
    writes: list[Write] = field(default_factory=list)
    refused: list[tuple[str, str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: dict) -> dict:
        with self._lock:
            token = int(request["token"])
            if self.fencing and token < self.highest:
                self.refused.append((request["op"], request["process"], token))
                return {"ok": False, "highest": self.highest}
            self.highest = max(self.highest, token)
            if request["op"] == "write":
                self.value = int(request["value"])
                self.writes.append(Write(request["process"], token, self.value))
            return {"ok": True, "value": self.value}

    def lost_updates(self) -> list[str]:
        """Accepted writes that did not build on the previous accepted one."""
        with self._lock:
            lost, previous = [], 0
            for write in self.writes:
                if write.value != previous + 1:
                    lost.append(
                        f"{write.process} wrote {write.value} with token {write.token} "
                        f"over {previous}: an increment was lost"
                    )
                previous = write.value
            return lost


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True


class ResourceServer:
    """Serves a ``FencedResource`` on ``host`` (JSON lines over TCP, a thread per client)."""

    def __init__(self, resource: FencedResource, host: str) -> None:
        self.resource = resource

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    answer = resource.handle(json.loads(line))
                    self.wfile.write((json.dumps(answer) + "\n").encode())

        self.server = _Server((host, 0), Handler)
        self.address = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
