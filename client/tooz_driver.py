"""The tooz backend ``turnstile://host:port,host:port,...`` (``pip install 'turnstile[tooz]'``).

.. code-block:: python

    coordinator = tooz.coordination.get_coordinator(
        "turnstile://node1:7001,node2:7001,node3:7001?timeout=10", b"worker-1"
    )
    coordinator.start(start_heart=True)

Options in the URL's query: ``timeout`` (the session TTL in seconds, default 30: a member that
stops heartbeating leaves its groups, elections and locks that long after its last
heartbeat), ``connect_timeout`` (seconds ``start()`` tries before ``ToozConnectionError``,
default 10), ``ca_file``, ``cert_file``, ``key_file`` (TLS, mutual TLS) and ``token``.

The mapping (``docs/ecosystem.md``): one Turnstile session per coordinator, kept alive only by
``heartbeat()`` (``requires_beating``); tooz groups are Turnstile groups and each member belongs
to the session; a tooz leader election is the Turnstile election of the group's name; watchers
follow the groups' and elections' revisions with ``Watches.Watch``; locks are Turnstile locks
(exclusive only) with their fencing token as ``lock.token``. Ids are UTF-8 (bytes or str in,
bytes out). Capabilities travel as msgpack (``tooz.utils.dumps``); none is an empty value.
Every call is done when it returns: the async results are finished futures.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import tooz
from tooz import coordination, locking, utils

from turnstile.client.client import Client
from turnstile.client.errors import (
    ClosedError,
    FailedPreconditionError,
    LockLostError,
    NotFoundError,
    SessionExpiredError,
    TurnstileError,
    UnavailableError,
)
from turnstile.client.group_core import ElectionTracker, GroupTracker
from turnstile.client.lock import Lock
from turnstile.client.watch_core import Change, ChangeType, Cursor, watch_request
from turnstile.v1 import turnstile_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Session TTL (seconds) without a ``timeout`` option.
DEFAULT_TIMEOUT = 30.0
#: How long ``start()`` tries to reach the cluster without a ``connect_timeout`` option.
DEFAULT_CONNECT_TIMEOUT = 10.0
SHARED_LOCKS = "Turnstile locks are exclusive: it has no shared (reader) locks"


def _text(value: bytes | str) -> str:
    """An id on the wire: tooz passes bytes (or str), Turnstile names are UTF-8 text."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _capabilities(value: bytes) -> Any:
    return utils.loads(value) if value else None


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turnstile's errors as tooz's: an unreachable cluster is ``ToozConnectionError``."""
    try:
        yield
    except (UnavailableError, ClosedError) as error:
        raise coordination.ToozConnectionError(str(error)) from error
    except TurnstileError as error:
        raise tooz.ToozError(str(error)) from error


def _result(call: Callable[[], T]) -> coordination.CoordinatorResult[T]:
    """``call`` run now, as the finished async result tooz's API returns."""
    future: futures.Future[T] = futures.Future()
    try:
        with _translated():
            future.set_result(call())
    except Exception as error:
        future.set_exception(error)
    return coordination.CoordinatorResult(future)


class TurnstileLock(locking.Lock):
    """A Turnstile lock through tooz's ``Lock``: ``release()`` says whether it held it."""

    def __init__(self, driver: TurnstileDriver, name: bytes) -> None:
        super().__init__(name)
        self._driver = driver
        self._lock: Lock = driver.client.lock(_text(name))

    @property
    def token(self) -> int | None:
        """The fencing token of the current hold (strictly increasing per lock), or None."""
        return self._lock.token

    def acquire(
        self, blocking: bool | float = True, shared: bool = False, timeout: float | None = None
    ) -> bool:
        if shared:
            raise tooz.NotImplemented(SHARED_LOCKS)
        wait, seconds = utils.convert_blocking(blocking, timeout)
        with _translated():
            if not wait:
                return self._lock.acquire(blocking=False)
            return self._lock.acquire(timeout=-1 if seconds is None else seconds)

    def release(self) -> bool:
        with _translated():
            try:
                self._lock.release()
            except (RuntimeError, LockLostError):
                return False  # not held by this object, or the hold was over (broken, expired)
        return True

    def break_(self) -> bool:
        """Takes the lock from whoever holds it (``Cluster.ForceRelease``: an admin token)."""
        request = pb.ForceReleaseRequest(name=_text(self.name), reason="tooz break_()")
        with _translated():
            try:
                self._driver.client.invoke(request)
            except NotFoundError:
                return False  # not held
        return True

    def is_still_owner(self) -> bool:
        with _translated():
            return self._lock.validate()

    def heartbeat(self) -> bool:
        """Keeps the session, and so the hold, alive; False when not held."""
        if not self._lock.locked():
            return False
        self._driver.heartbeat()
        return True


class TurnstileDriver(coordination.CoordinationDriver):
    """tooz's coordination API over one Turnstile session; see the module."""

    CHARACTERISTICS = (
        coordination.Characteristics.DISTRIBUTED_ACROSS_THREADS,
        coordination.Characteristics.DISTRIBUTED_ACROSS_PROCESSES,
        coordination.Characteristics.DISTRIBUTED_ACROSS_HOSTS,
        coordination.Characteristics.LINEARIZABLE,
    )

    def __init__(self, member_id: bytes, parsed_url: Any, options: dict[str, Any]) -> None:
        super().__init__(member_id, parsed_url, options)
        options = utils.collapse(options)
        self._endpoints = str(parsed_url.netloc)
        self._ttl = float(options.get("timeout", DEFAULT_TIMEOUT))
        self._connect_timeout = float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        self._ca_file: str | None = options.get("ca_file")
        self._cert_file: str | None = options.get("cert_file")
        self._key_file: str | None = options.get("key_file")
        self._token: str | None = options.get("token")
        self._client: Client | None = None
        #: Watched groups' cursors, and the elections this coordinator stands in: the
        #: session it stands with and the cursor following the leaderships.
        self._groups: dict[bytes, Cursor] = {}
        self._standing: dict[bytes, tuple[int, Cursor]] = {}
        #: The token of the leadership last reported per group (LeaderElected once each).
        self._reported: dict[bytes, int] = {}

    @property
    def client(self) -> Client:
        if self._client is None:
            raise tooz.ToozError("the coordinator is not started")
        return self._client

    @property
    def _member(self) -> str:
        return _text(self._member_id)

    def _member_bytes(self) -> bytes:
        return self._member.encode("utf-8")

    def _start(self) -> None:
        client = Client(
            self._endpoints,
            session_ttl=self._ttl,
            keep_alive=False,
            name=f"tooz {self._member}",
            ca_file=self._ca_file,
            cert_file=self._cert_file,
            key_file=self._key_file,
            token=self._token,
        )
        try:
            with _translated():
                client.invoke(pb.StatusRequest(), deadline=self._connect_timeout)
                client.session()
        except BaseException:
            client.close()
            raise
        self._client = client

    def _stop(self) -> None:
        client, self._client = self._client, None
        self._groups.clear()
        self._standing.clear()
        self._reported.clear()
        if client is not None:
            with _translated():
                client.close()  # ends the session: its candidacies and memberships with it

    def heartbeat(self) -> float:
        """Keeps the session alive; returns the seconds until the next is due."""
        with _translated():
            try:
                return self.client.keep_alive()
            except SessionExpiredError:
                log.warning("tooz member %s: its session expired; opening a new one", self._member)
                return self.client.keep_alive()

    def get_lock(self, name: bytes) -> TurnstileLock:
        return TurnstileLock(self, name)

    # ------------------------------------------------------------------ groups

    def create_group(self, group_id: bytes) -> coordination.CoordinatorResult[None]:
        def create() -> None:
            if not self.client.group(_text(group_id)).create():
                raise coordination.GroupAlreadyExist(group_id)

        return _result(create)

    def get_groups(self) -> coordination.CoordinatorResult[list[bytes]]:
        return _result(lambda: [g.name.encode("utf-8") for g in self.client.groups()])

    def delete_group(self, group_id: bytes) -> coordination.CoordinatorResult[None]:
        def delete() -> None:
            try:
                self.client.group(_text(group_id)).delete()
            except NotFoundError:
                raise coordination.GroupNotCreated(group_id) from None
            except FailedPreconditionError:
                raise coordination.GroupNotEmpty(group_id) from None

        return _result(delete)

    def join_group(
        self, group_id: bytes, capabilities: coordination.Capabilities | None = None
    ) -> coordination.CoordinatorResult[None]:
        def join() -> None:
            value = b"" if capabilities is None else utils.dumps(capabilities)
            try:
                joined = self.client.group(_text(group_id)).join(self._member, value)
            except NotFoundError:
                raise coordination.GroupNotCreated(group_id) from None
            if not joined:
                raise coordination.MemberAlreadyExist(group_id, self._member_id)
            self._joined_groups.add(group_id)

        return _result(join)

    def leave_group(self, group_id: bytes) -> coordination.CoordinatorResult[None]:
        def leave() -> None:
            try:
                left = self.client.group(_text(group_id)).leave(self._member)
            except NotFoundError:
                raise coordination.GroupNotCreated(group_id) from None
            self._joined_groups.discard(group_id)
            if not left:
                raise coordination.MemberNotJoined(group_id, self._member_id)

        return _result(leave)

    def update_capabilities(
        self, group_id: bytes, capabilities: coordination.Capabilities
    ) -> coordination.CoordinatorResult[None]:
        def update() -> None:
            group = self.client.group(_text(group_id))
            try:
                updated = group.update(self._member, utils.dumps(capabilities))
            except NotFoundError:
                raise coordination.GroupNotCreated(group_id) from None
            if not updated:
                raise coordination.MemberNotJoined(group_id, self._member_id)

        return _result(update)

    def _members(self, group_id: bytes) -> dict[bytes, Any]:
        try:
            found = self.client.group(_text(group_id)).members()
        except NotFoundError:
            raise coordination.GroupNotCreated(group_id) from None
        return {member_id.encode("utf-8"): member for member_id, member in found.items()}

    def _member_of(self, group_id: bytes, member_id: bytes) -> Any:
        member = self._members(group_id).get(_text(member_id).encode("utf-8"))
        if member is None:
            raise coordination.MemberNotJoined(group_id, member_id)
        return member

    def get_members(self, group_id: bytes) -> coordination.CoordinatorResult[set[bytes]]:
        return _result(lambda: set(self._members(group_id)))

    def get_member_capabilities(
        self, group_id: bytes, member_id: bytes
    ) -> coordination.CoordinatorResult[coordination.Capabilities | None]:
        return _result(lambda: _capabilities(self._member_of(group_id, member_id).capabilities))

    def get_members_with_capabilities(
        self, group_id: bytes
    ) -> coordination.CoordinatorResult[dict[bytes, coordination.Capabilities | None]]:
        def members() -> dict[bytes, coordination.Capabilities | None]:
            found = self._members(group_id).items()
            return {member_id: _capabilities(m.capabilities) for member_id, m in found}

        return _result(members)

    def get_member_info(
        self, group_id: bytes, member_id: bytes
    ) -> coordination.CoordinatorResult[dict[str, Any]]:
        def info() -> dict[str, Any]:
            member = self._member_of(group_id, member_id)
            now = datetime.datetime.now(datetime.UTC)
            return {
                "capabilities": _capabilities(member.capabilities),
                "created_at": now - datetime.timedelta(seconds=member.joined_for),
                "updated_at": now - datetime.timedelta(seconds=member.updated_for),
                "session_id": member.session_id,
                "client_name": member.client_name,
                "client_host": member.client_host,
                "client_pid": member.client_pid,
            }

        return _result(info)

    # ------------------------------------------------------------------ watchers

    def _watch_group(self, group_id: bytes) -> None:
        """Starts following ``group_id`` from a read of it; GroupNotCreated if there is none."""
        if group_id in self._groups:
            return
        cursor = Cursor(GroupTracker(_text(group_id)))
        with _translated():
            cursor.answered(self.client.invoke(cursor.next_request(0)))
        tracker = cursor.tracker
        assert isinstance(tracker, GroupTracker)
        if not tracker.exists:
            raise coordination.GroupNotCreated(group_id)
        self._groups[group_id] = cursor

    def _forget_group(self, group_id: bytes) -> None:
        if not self._has_hooks_for_group(group_id):
            self._groups.pop(group_id, None)

    def watch_join_group(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.MemberJoinedGroup]
    ) -> None:
        self._watch_group(group_id)
        super().watch_join_group(group_id, callback)

    def watch_leave_group(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.MemberLeftGroup]
    ) -> None:
        self._watch_group(group_id)
        super().watch_leave_group(group_id, callback)

    def unwatch_join_group(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.MemberJoinedGroup]
    ) -> None:
        super().unwatch_join_group(group_id, callback)
        self._forget_group(group_id)

    def unwatch_leave_group(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.MemberLeftGroup]
    ) -> None:
        super().unwatch_leave_group(group_id, callback)
        self._forget_group(group_id)

    def unwatch_elected_as_leader(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.LeaderElected]
    ) -> None:
        super().unwatch_elected_as_leader(group_id, callback)
        if group_id not in self._hooks_elected_leader and group_id in self._standing:
            self.stand_down_group_leader(group_id)

    def run_watchers(self, timeout: float | None = None) -> list[Any]:
        """Runs the callbacks of every change committed since the last run (one Watch for all
        the watched groups and elections), after standing in every election watched."""
        with _translated():
            results = self._campaign()
            cursors = [*self._groups.items(), *self._elections()]
            for group_id, cursor in cursors:
                if cursor.revision is None:  # a re-read that failed last time
                    results += self._read_again(group_id, cursor)
            if not cursors:
                return results
            after = min(cursor.revision or 0 for _, cursor in cursors)
            keys = [cursor.tracker.key for _, cursor in cursors]
            response = self.client.invoke(watch_request(keys, after, 0))
            for group_id, cursor in cursors:
                for change in cursor.answered(response):
                    results += self._run_hooks(group_id, change)
                if cursor.revision is None:  # compacted: read again, the difference reported
                    results += self._read_again(group_id, cursor)
        return results

    def _read_again(self, group_id: bytes, cursor: Cursor) -> list[Any]:
        changes = cursor.answered(self.client.invoke(cursor.next_request(0)))
        return [result for change in changes for result in self._run_hooks(group_id, change)]

    def _elections(self) -> list[tuple[bytes, Cursor]]:
        return [(group_id, cursor) for group_id, (_, cursor) in self._standing.items()]

    def _campaign(self) -> list[Any]:
        """Stands (again) in each watched election this session does not stand in, and reports
        the ones it won at once."""
        results: list[Any] = []
        if not self._hooks_elected_leader:
            return results
        session = self.client.session().id
        for group_id in list(self._hooks_elected_leader):
            standing = self._standing.get(group_id)
            if standing is not None and standing[0] == session:
                continue
            name = _text(group_id)
            response = self.client.write(pb.CampaignRequest(name=name, member_id=self._member))
            cursor = Cursor(ElectionTracker(name))
            cursor.answered(self.client.invoke(cursor.next_request(0)))
            self._standing[group_id] = (session, cursor)
            if response.elected:
                results += self._elected(group_id, response.token)
        return results

    def _run_hooks(self, group_id: bytes, change: Change) -> list[Any]:
        member = change.member_id.encode("utf-8")
        if change.type is ChangeType.JOINED:
            return self._hooks_join_group[group_id].run(
                coordination.MemberJoinedGroup(group_id, member)
            )
        if change.type is ChangeType.LEFT:
            if member == self._member_bytes():
                self._joined_groups.discard(group_id)
            return self._hooks_leave_group[group_id].run(
                coordination.MemberLeftGroup(group_id, member)
            )
        standing = self._standing.get(group_id)
        if change.type is ChangeType.ELECTED and standing and change.session_id == standing[0]:
            return self._elected(group_id, change.token)
        return []

    def _elected(self, group_id: bytes, token: int) -> list[Any]:
        """LeaderElected for this member, once per leadership."""
        if self._reported.get(group_id) == token or group_id not in self._hooks_elected_leader:
            return []
        self._reported[group_id] = token
        event = coordination.LeaderElected(group_id, self._member_bytes())
        return self._hooks_elected_leader[group_id].run(event)

    def stand_down_group_leader(self, group_id: bytes) -> bool:
        """Withdraws from the election (the next candidate is elected at once); True if this
        member led. The next ``run_watchers`` stands again while the group is watched."""
        self._standing.pop(group_id, None)
        with _translated():
            response = self.client.write(pb.ResignRequest(name=_text(group_id)))
        return bool(response.was_leader)

    def get_leader(self, group_id: bytes) -> coordination.CoordinatorResult[bytes]:
        def leader() -> bytes:
            found = self.client.election(_text(group_id)).leader()
            # tooz's API has no "no leader" in its type, but its drivers answer None
            return found.member_id.encode("utf-8") if found else None  # type: ignore[return-value]

        return _result(leader)
