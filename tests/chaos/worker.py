"""One chaos workload client, run as its own process: ``python -m tests.chaos.worker SPEC``.

It uses the real client library against the cluster and writes its history as JSON lines:
an ``invoke`` line before each operation and a completion line after it (``ok``, ``fail`` or
``info``), flushed at once, so a killed or paused worker leaves its open operations behind as
invocations without completions, which the recorder reads as indeterminate. Times are
``time.monotonic()``, one clock for every process on the machine.

It also records what the holder believed, for the holder's-view check: a granted acquire's
completion line carries the hold's session, its send time and its max-hold end as the client
library counts them; a ``session-open`` line gives each session's TTL and its client's
deadline when first seen, and a ``keep-alive`` line each acknowledged keep-alive (its send
time, the arrival of its acknowledgement, the client's resulting ``alive_until``).

Workloads (``spec["workload"]``):

- ``lock``: acquire one of a few names (waiting on the server), hold briefly, release.
- ``fenced``: the same on one name, and inside the hold read the harness's fenced resource,
  sleep, and write it back incremented, both carrying the fencing token.
- ``insert``: insert keys drawn so about half are duplicates, read ids back, and look members
  up by the ids they were given.
- ``election``: each new session joins a group (member id ``PROCESS/SESSION``) and stands in
  one election, waiting on the server to be elected; an elected worker leads briefly, then
  resigns. A leadership is recorded like a lock hold (``campaign`` ok with the token, then a
  ``resign``), so the lock checks judge it: one leader per token, tokens in real-time order,
  and no leadership while another client still counted its own live.
- ``semaphore``: ``threads`` loops on one client (one session) take a permit of one semaphore
  of ``limit`` permits, hold briefly, give it back (``permit``, ``unpermit``).
- ``many``: take two or more of a few lock names at once, in a random order (one ``acquire``
  op per lock, sharing a ``batch``, answered in one line write), hold briefly, release each.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from turnstile.client import RetryPolicy, TurnstileError, connect
from turnstile.client.errors import LockLostError, UnavailableError
from turnstile.client.lock import Lock
from turnstile.client.semaphore import Held
from turnstile.client.session import Session
from turnstile.client.session_state import SessionState
from turnstile.v1 import turnstile_pb2 as pb


class History:
    """The worker's history file: one JSON object per line, flushed per line."""

    def __init__(self, path: Path, process: str) -> None:
        self.file: IO[str] = path.open("a", encoding="utf-8")
        self.process = process
        self.next_op = 0
        self._lock = threading.Lock()

    def write(self, line: dict[str, Any]) -> None:
        with self._lock:
            self.file.write(json.dumps({"p": self.process, **line}) + "\n")
            self.file.flush()

    def invoke(self, kind: str, key: Any, **extra: Any) -> int:
        with self._lock:
            self.next_op += 1
            op = self.next_op
        self.write({"op": op, "e": "invoke", "k": kind, "key": key, "t": now(), **extra})
        return op

    def complete(
        self, op: int, outcome: str, value: int = 0, session: int = 0, **extra: Any
    ) -> None:
        self.write({"op": op, "e": outcome, "v": value, "s": session, "t": now(), **extra})

    def complete_all(self, lines: list[dict[str, Any]]) -> None:
        """Completions written in one write: a killed worker leaves all of them or none."""
        at = now()
        with self._lock:
            self.file.write(
                "".join(json.dumps({"p": self.process, "t": at, **line}) + "\n" for line in lines)
            )
            self.file.flush()


def now() -> float:
    return time.monotonic()


class FencedResource:
    """The client side of the harness's fenced resource (see ``resource.py``)."""

    def __init__(self, address: str, process: str) -> None:
        host, port = address.rsplit(":", 1)
        self.socket = socket.create_connection((host, int(port)), timeout=30)
        self.reader = self.socket.makefile("r", encoding="utf-8")
        self.process = process

    def call(self, **request: Any) -> dict[str, Any]:
        self.socket.sendall((json.dumps({"process": self.process, **request}) + "\n").encode())
        return json.loads(self.reader.readline())


class Worker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.rng = random.Random(spec["seed"])
        self.history = History(Path(spec["history"]), spec["process"])
        self.stopping = threading.Event()
        self.client = connect(
            spec["endpoints"],
            session_ttl=spec.get("ttl", 3.0),
            name=spec["process"],
            retry=RetryPolicy(deadline=spec.get("deadline", 4.0), attempt_timeout=1.0),
        )
        self._watched: set[int] = set()

    def session_id(self) -> int:
        """The current session's id (opening one if needed), watched."""
        session = self.client.session()
        self.watch(session)
        return session.id

    def watch(self, session: Session) -> None:
        """Records the session's state changes and every keep-alive its client counts as
        acknowledged, by wrapping ``acknowledged`` on its core (the library's own code still
        decides; the wrapper only writes down what it was told)."""
        if session.id in self._watched:
            return
        self._watched.add(session.id)
        sid, core = session.id, session.core
        self.history.write(
            {"e": "session-open", "s": sid, "ttl": core.ttl, "until": core.alive_until, "t": now()}
        )
        acknowledged = core.acknowledged

        def recording(sent_at: float) -> None:
            arrived = now()
            acknowledged(sent_at)
            self.history.write(
                {
                    "e": "keep-alive",
                    "s": sid,
                    "sent": sent_at,
                    "until": core.alive_until,
                    "t": arrived,
                }
            )

        core.acknowledged = recording  # type: ignore[method-assign]

        def record(state: SessionState) -> None:
            self.history.write({"e": "session", "s": sid, "state": state.value, "t": now()})

        session.add_listener(record)

    def run(self) -> None:
        workload = {
            "lock": self.lock_loop,
            "fenced": self.lock_loop,
            "insert": self.insert_loop,
            "election": self.election_loop,
            "semaphore": self.semaphore_loops,
            "many": self.many_loop,
        }
        try:
            workload[self.spec["workload"]]()
        finally:
            with contextlib.suppress(TurnstileError):
                self.client.close()

    # ------------------------------------------------------------------ locks

    def lock_loop(self) -> None:
        names: list[str] = self.spec["names"]
        resource = (
            FencedResource(self.spec["resource"], self.spec["process"])
            if self.spec["workload"] == "fenced"
            else None
        )
        while not self.stopping.is_set():
            name = self.rng.choice(names)
            try:
                session = self.session_id()
            except TurnstileError:
                self.stopping.wait(0.1)
                continue
            lock = self.client.lock(name, max_hold=self.spec.get("max_hold"))
            op = self.history.invoke("acquire", name)
            try:
                acquired = lock.acquire(timeout=self.spec.get("wait", 2.0))
            except TurnstileError:
                self.history.complete(op, "info", session=session)
                continue
            if not acquired:
                self.history.complete(op, "fail", session=session)
                continue
            token, session = self.granted(lock, op)
            if resource is not None:
                self.increment(resource, token)
            else:
                self.stopping.wait(self.rng.uniform(0, self.spec.get("hold", 0.05)))
            self.release(lock, name, token, session)

    def granted(self, lock: Lock, op: int) -> tuple[int, int]:
        """Completes a granted acquire with the hold as the client counts it; returns its token
        and session (which may be newer than the one asked for, if that was lost meanwhile)."""
        hold = lock._hold
        assert hold is not None
        self.watch(hold.session)
        self.history.complete(
            op,
            "ok",
            hold.token,
            hold.session.id,
            sent=hold.acquired_at,
            max_hold_end=hold.expires_at,
        )
        return hold.token, hold.session.id

    def increment(self, resource: FencedResource, token: int) -> None:
        """Read, think, write back + 1: a lost update unless the writes are fenced."""
        read = resource.call(op="read", token=token)
        self.history.write({"e": "resource-read", "v": token, "ok": read["ok"], "t": now()})
        if not read["ok"]:
            return
        time.sleep(self.rng.uniform(0.5, 1.0) * self.spec.get("hold", 0.05))
        wrote = resource.call(op="write", token=token, value=read["value"] + 1)
        self.history.write({"e": "resource-write", "v": token, "ok": wrote["ok"], "t": now()})

    def release(
        self, lock: Lock | Held, name: str, token: int, session: int, kind: str = "release"
    ) -> None:
        """Releases, retrying while the outcome is unknown. A retry resends the same request
        id, so all attempts are one operation, invoked with the first: a first attempt that
        landed unanswered (the cluster was killed) freed the lock then, and the retry's "ok"
        is that first outcome. Recording each attempt as an operation of its own made the
        checker see the lock still held until the retry, and report a false violation."""
        op = self.history.invoke(kind, name)
        while True:
            try:
                lock.release()
            except LockLostError:
                self.history.complete(op, "fail", token, session)
                return
            except UnavailableError:
                if self.stopping.is_set():
                    self.history.complete(op, "info", token, session)
                    return
                continue
            except TurnstileError:
                self.history.complete(op, "info", token, session)
                return
            self.history.complete(op, "ok", token, session)
            return

    # ------------------------------------------------------------------ semaphores

    def semaphore_loops(self) -> None:
        threads = [
            threading.Thread(target=self.semaphore_loop, daemon=True)
            for _ in range(self.spec.get("threads", 1) - 1)
        ]
        for thread in threads:
            thread.start()
        self.semaphore_loop()
        for thread in threads:
            thread.join()

    def semaphore_loop(self) -> None:
        name, limit = self.spec["semaphore"], self.spec["limit"]
        semaphore = self.client.semaphore(name, limit=limit, max_hold=self.spec.get("max_hold"))
        rng = random.Random(self.rng.random())
        while not self.stopping.is_set():
            try:
                session = self.session_id()
            except TurnstileError:
                self.stopping.wait(0.1)
                continue
            op = self.history.invoke("permit", name)
            try:
                permit = semaphore.acquire(
                    timeout=self.spec.get("wait", 2.0), description=self.spec["process"]
                )
            except TurnstileError:
                self.history.complete(op, "info", session=session)
                continue
            if permit is None:
                self.history.complete(op, "fail", session=session)
                continue
            hold = permit._hold
            assert hold is not None
            self.watch(hold.session)
            self.history.complete(
                op,
                "ok",
                hold.token,
                hold.session.id,
                sent=hold.acquired_at,
                max_hold_end=hold.expires_at,
                limit=limit,
            )
            self.stopping.wait(rng.uniform(0, self.spec.get("hold", 0.1)))
            self.release(permit, name, hold.token, hold.session.id, kind="unpermit")

    # ------------------------------------------------------------------ several locks

    def many_loop(self) -> None:
        names: list[str] = self.spec["names"]
        while not self.stopping.is_set():
            chosen = self.rng.sample(names, self.rng.randint(2, len(names)))
            try:
                session = self.session_id()
            except TurnstileError:
                self.stopping.wait(0.1)
                continue
            batch = self.history.next_op + 1
            ops = [self.history.invoke("acquire", name, batch=batch) for name in chosen]
            try:
                held = self.client.lock_many(
                    chosen,
                    max_hold=self.spec.get("max_hold"),
                    timeout=self.spec.get("wait", 2.0),
                    description=f"{self.spec['process']} batch={batch}",
                )
            except TurnstileError:
                self.history.complete_all([{"op": op, "e": "info", "s": session} for op in ops])
                continue
            if held is None:
                self.history.complete_all([{"op": op, "e": "fail", "s": session} for op in ops])
                continue
            parts = [held[name] for name in chosen]
            lines = []
            for op, part in zip(ops, parts, strict=True):
                hold = part._hold
                assert hold is not None
                self.watch(hold.session)
                lines.append(
                    {
                        "op": op,
                        "e": "ok",
                        "v": hold.token,
                        "s": hold.session.id,
                        "sent": hold.acquired_at,
                        "max_hold_end": hold.expires_at,
                    }
                )
            self.history.complete_all(lines)
            self.stopping.wait(self.rng.uniform(0, self.spec.get("hold", 0.05)))
            for line, part in zip(lines, parts, strict=True):
                self.release(part, part.name, line["v"], line["s"])

    # ------------------------------------------------------------------ lists

    def insert_loop(self) -> None:
        results = self.client.distinct_list(self.spec["list"])
        keys = self.spec.get("keys", 400)
        written: list[str] = []
        given: dict[int, str] = {}
        while not self.stopping.is_set():
            if given and self.rng.random() < 0.15:
                member_id = self.rng.choice(sorted(given))
                op = self.history.invoke("lookup", [self.spec["list"], given[member_id]])
                try:
                    found = results.member(member_id)
                except TurnstileError:
                    self.history.complete(op, "info")
                    continue
                self.history.complete(op, "ok", member_id, found=(found or b"").decode())
                continue
            if written and self.rng.random() < 0.3:
                member = self.rng.choice(written)
                op = self.history.invoke("read", [self.spec["list"], member])
                try:
                    found = results.id_of(member)
                except TurnstileError:
                    self.history.complete(op, "info")
                    continue
                self.history.complete(op, "ok", found or 0)
                continue
            member = f"k{self.rng.randrange(keys)}"
            op = self.history.invoke("insert", [self.spec["list"], member])
            try:
                _, member_id = results.insert(member)
            except TurnstileError:
                self.history.complete(op, "info")
                continue
            written.append(member)
            given[member_id] = member
            self.history.complete(op, "ok", member_id)

    # ------------------------------------------------------------------ elections

    def election_loop(self) -> None:
        group, election = self.spec["group"], self.spec["election"]
        wait = self.spec.get("wait", 2.0)
        joined: set[int] = set()
        created = False
        while not self.stopping.is_set():
            try:
                session = self.client.session()
                self.watch(session)
                if not created:
                    self.client.write(pb.CreateGroupRequest(name=group), session=session)
                    created = True
            except TurnstileError:
                self.stopping.wait(0.1)
                continue
            member = f"{self.spec['process']}/{session.id}"
            if session.id not in joined:
                op = self.history.invoke("join", [group, member])
                try:
                    self.client.write(
                        pb.JoinGroupRequest(name=group, member_id=member), session=session
                    )
                except TurnstileError:
                    self.history.complete(op, "info", session=session.id)
                    continue
                joined.add(session.id)
                self.history.complete(op, "ok", session=session.id)
            op = self.history.invoke("campaign", election)
            try:
                standing = self.client.write(
                    pb.CampaignRequest(name=election, member_id=member, wait_ms=int(wait * 1000)),
                    session=session,
                    attempt_timeout=wait + 2,
                    deadline=wait + 4,
                )
            except TurnstileError:
                self.history.complete(op, "info", session=session.id)
                continue
            if not standing.elected:
                self.history.complete(op, "fail", session=session.id)
                continue
            self.history.complete(op, "ok", standing.token, session.id)
            self.stopping.wait(self.rng.uniform(0, self.spec.get("hold", 0.2)))
            self.resign(session, election, standing.token)

    def resign(self, session: Session, election: str, token: int) -> None:
        """Steps down, retrying while the outcome is unknown (one operation, as ``release``)."""
        op = self.history.invoke("resign", election)
        while True:
            try:
                resigned = self.client.write(pb.ResignRequest(name=election), session=session)
            except UnavailableError:
                if self.stopping.is_set():
                    self.history.complete(op, "info", token, session.id)
                    return
                continue
            except TurnstileError:
                self.history.complete(op, "info", token, session.id)
                return
            outcome = "ok" if resigned.was_leader else "fail"
            self.history.complete(op, outcome, token, session.id)
            return


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    worker = Worker(spec)
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    worker.history.write({"e": "started", "t": now()})
    worker.run()
    worker.history.write({"e": "stopped", "t": now()})


if __name__ == "__main__":
    main()
