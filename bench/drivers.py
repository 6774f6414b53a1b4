"""One benchmark client per system, each the way a user of that system would write it.

- Turnstile: the sync client library (``turnstile.client``), one ``Client`` (session) each.
- etcd: its v3lock ``Lock``/``Unlock`` RPCs on one lease per client kept alive by a stream;
  lists as a Txn create-if-absent per key (id = the key's create revision); a batch is that
  many Txns in flight at once, since etcd has no per-key conditional batch.
- ZooKeeper: kazoo's ``Lock`` recipe (sequential ephemeral nodes, watch the predecessor);
  lists as one znode per key under a parent (id = the node's czxid); a batch is that many
  async creates in flight at once.

Client ``i`` talks first to endpoint ``i % members`` and fails over to the others, so stale
reads spread over all members in every system.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from turnstile.bench.systems import ZOOKEEPER_TICK_MS

#: Where the bench keeps its data in etcd and ZooKeeper.
PREFIX = "/turnstile-bench"
#: etcd refuses requests while its apply loop lags: how often and how long to wait.
_OVERLOAD_RETRIES = 100
_OVERLOAD_PAUSE_S = 0.05
#: Fixed max hold for Turnstile locks in the bench: a stuck run frees itself.
MAX_HOLD_S = 30.0


class Driver(ABC):
    """A connected client of one system; used by one thread."""

    #: The session TTL (seconds) the system actually granted.
    ttl_s: float

    @abstractmethod
    def acquire(self, name: str) -> int:
        """Blocks until the lock is held; returns a number that increases per grant of it."""

    @abstractmethod
    def release(self, name: str) -> None: ...

    @abstractmethod
    def insert(self, list_name: str, keys: list[str]) -> list[tuple[bool, int]]:
        """(added, id) per key, in order."""

    @abstractmethod
    def read(self, linearizable: bool) -> None:
        """Reads one small value (written at setup by ``prepare_read``)."""

    @abstractmethod
    def prepare_read(self) -> None:
        """Creates the value ``read`` reads; idempotent."""

    @abstractmethod
    def close(self) -> None: ...


def rotated(endpoints: list[str], index: int) -> list[str]:
    start = index % len(endpoints)
    return endpoints[start:] + endpoints[:start]


class TurnstileDriver(Driver):
    def __init__(self, endpoints: list[str], index: int, ttl_s: float) -> None:
        import grpc  # noqa: PLC0415 - imported in the worker process only

        import turnstile.client  # noqa: PLC0415
        from turnstile.client.core import CHANNEL_OPTIONS  # noqa: PLC0415
        from turnstile.v1 import turnstile_pb2, turnstile_pb2_grpc  # noqa: PLC0415

        self._pb = turnstile_pb2
        self.client = turnstile.client.connect(
            rotated(endpoints, index), session_ttl=ttl_s, name=f"bench-{index}"
        )
        self.ttl_s = self.client.session().ttl
        self._locks: dict[str, Any] = {}
        self._lists: dict[str, Any] = {}
        # Stale reads may be served by any node: this client's own first endpoint.
        self._channel = grpc.insecure_channel(rotated(endpoints, index)[0], options=CHANNEL_OPTIONS)
        self._local_lists = turnstile_pb2_grpc.DistinctListsStub(self._channel)

    def acquire(self, name: str) -> int:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = self.client.lock(name, max_hold=MAX_HOLD_S)
        lock.acquire()
        return int(lock.token)

    def release(self, name: str) -> None:
        self._locks[name].release()

    def insert(self, list_name: str, keys: list[str]) -> list[tuple[bool, int]]:
        target = self._lists.get(list_name)
        if target is None:
            target = self._lists[list_name] = self.client.distinct_list(list_name)
        return target.insert_many(keys)

    def prepare_read(self) -> None:
        self.client.distinct_list("bench-read").insert("k")

    def read(self, linearizable: bool) -> None:
        request = self._pb.ContainsRequest(
            name="bench-read",
            members=[b"k"],
            consistency=self._pb.CONSISTENCY_LINEARIZABLE
            if linearizable
            else self._pb.CONSISTENCY_STALE,
        )
        if linearizable:
            self.client.invoke(request)
        else:
            self._local_lists.Contains(request, timeout=5)

    def close(self) -> None:
        self.client.close()
        self._channel.close()


class EtcdDriver(Driver):
    def __init__(self, endpoints: list[str], index: int, ttl_s: float) -> None:
        import grpc  # noqa: PLC0415

        from turnstile.bench import etcd_api  # noqa: PLC0415

        self._api = etcd_api
        # pick_first over all members, this client's own first: fails over like etcd's client.
        self._channel = grpc.insecure_channel("ipv4:" + ",".join(rotated(endpoints, index)))
        self._kv = etcd_api.rpc_grpc.KVStub(self._channel)
        self._leases = etcd_api.rpc_grpc.LeaseStub(self._channel)
        self._locks = etcd_api.lock_grpc.LockStub(self._channel)
        grant = self._leases.LeaseGrant(etcd_api.rpc.LeaseGrantRequest(TTL=int(ttl_s)), timeout=10)
        self.lease = grant.ID
        self.ttl_s = float(grant.TTL)
        self._held: dict[str, bytes] = {}
        self._closed = threading.Event()
        self._keepalive = self._leases.LeaseKeepAlive(self._keepalive_requests())
        self._keepalive_thread = threading.Thread(target=self._drain_keepalive, daemon=True)
        self._keepalive_thread.start()

    def _keepalive_requests(self) -> Iterator[Any]:
        while not self._closed.wait(self.ttl_s / 3):
            yield self._api.rpc.LeaseKeepAliveRequest(ID=self.lease)

    def _drain_keepalive(self) -> None:
        import grpc  # noqa: PLC0415

        try:
            for _ in self._keepalive:
                pass
        except grpc.RpcError:
            return

    def acquire(self, name: str) -> int:
        response = self._locks.Lock(
            self._api.lock.LockRequest(name=f"{PREFIX}/locks/{name}".encode(), lease=self.lease),
            timeout=60,
        )
        self._held[name] = response.key
        return int(response.header.revision)

    def release(self, name: str) -> None:
        self._locks.Unlock(self._api.lock.UnlockRequest(key=self._held.pop(name)), timeout=10)

    def insert(self, list_name: str, keys: list[str]) -> list[tuple[bool, int]]:
        requests = [
            self._api.create_if_absent(f"{PREFIX}/lists/{list_name}/{k}".encode(), b"")
            for k in keys
        ]
        futures = [self._kv.Txn.future(r, timeout=10) for r in requests]
        return [
            self._api.txn_id(self._result(f, r)) for f, r in zip(futures, requests, strict=True)
        ]

    def _result(self, future: Any, request: Any) -> Any:
        """The Txn's answer, sending it again while etcd sheds load ("too many requests": its
        apply loop is 5,000 entries behind; the request was refused, not applied), as etcd's
        own client does."""
        import grpc  # noqa: PLC0415

        for _ in range(_OVERLOAD_RETRIES):
            try:
                return future.result()
            except grpc.RpcError as error:
                if "too many requests" not in str(error.details()):
                    raise
            time.sleep(_OVERLOAD_PAUSE_S)
            future = self._kv.Txn.future(request, timeout=10)
        return future.result()

    def prepare_read(self) -> None:
        self._kv.Txn(self._api.create_if_absent(f"{PREFIX}/read".encode(), b"v"), timeout=10)

    def read(self, linearizable: bool) -> None:
        self._kv.Range(
            self._api.rpc.RangeRequest(
                key=f"{PREFIX}/read".encode(), serializable=not linearizable
            ),
            timeout=10,
        )

    def close(self) -> None:
        import grpc  # noqa: PLC0415

        self._closed.set()
        self._keepalive.cancel()
        with contextlib.suppress(grpc.RpcError):
            self._leases.LeaseRevoke(self._api.rpc.LeaseRevokeRequest(ID=self.lease), timeout=5)
        self._channel.close()


class ZooKeeperDriver(Driver):
    def __init__(self, endpoints: list[str], index: int, ttl_s: float) -> None:
        from kazoo.client import KazooClient  # noqa: PLC0415

        # kazoo logs every dropped connection (the failover row drops some on purpose).
        logging.getLogger("kazoo").setLevel(logging.ERROR)
        self.client = KazooClient(
            hosts=",".join(rotated(endpoints, index)), timeout=ttl_s, randomize_hosts=False
        )
        self.client.start(timeout=30)
        # The server clamps the session timeout to [2, 20] ticks; kazoo does not keep the
        # negotiated value, so apply the same clamp to the bench's own zoo.cfg tick.
        tick = ZOOKEEPER_TICK_MS / 1000
        self.ttl_s = min(max(ttl_s, 2 * tick), 20 * tick)
        self._locks: dict[str, Any] = {}
        self._made: set[str] = set()

    def acquire(self, name: str) -> int:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = self.client.Lock(f"{PREFIX}/locks/{name}")
        lock.acquire()
        # The recipe's own node, e.g. ".../<uuid>__lock__0000000042": sequential per lock.
        return int(lock.node[-10:])

    def release(self, name: str) -> None:
        self._locks[name].release()

    def _parent(self, list_name: str) -> str:
        parent = f"{PREFIX}/lists/{list_name}"
        if parent not in self._made:
            self.client.ensure_path(parent)
            self._made.add(parent)
        return parent

    def insert(self, list_name: str, keys: list[str]) -> list[tuple[bool, int]]:
        from kazoo.exceptions import NodeExistsError  # noqa: PLC0415

        parent = self._parent(list_name)
        paths = [f"{parent}/{k}" for k in keys]
        creates = [self.client.create_async(p, include_data=True) for p in paths]
        results: list[tuple[bool, int] | None] = []
        lookups = {}
        for i, pending in enumerate(creates):
            try:
                _path, stat = pending.get(timeout=10)
                results.append((True, int(stat.czxid)))
            except NodeExistsError:
                results.append(None)
                lookups[i] = self.client.exists_async(paths[i])
        for i, pending in lookups.items():
            results[i] = (False, int(pending.get(timeout=10).czxid))
        return [r for r in results if r is not None]

    def prepare_read(self) -> None:
        self.client.ensure_path(f"{PREFIX}/read")

    def read(self, linearizable: bool) -> None:
        path = f"{PREFIX}/read"
        if linearizable:
            # ZooKeeper's way to read the latest: sync the server with the leader first.
            self.client.sync(path)
        self.client.get(path)

    def close(self) -> None:
        self.client.stop()
        self.client.close()


DRIVERS: dict[str, type[Driver]] = {
    "turnstile": TurnstileDriver,
    "etcd": EtcdDriver,
    "zookeeper": ZooKeeperDriver,
}
