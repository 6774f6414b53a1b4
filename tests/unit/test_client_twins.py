"""The sync and asyncio clients are twins: the same public names, the same parameters, and a
coroutine on the asyncio side wherever the sync method may wait on the network."""

from __future__ import annotations

import inspect

import pytest

from turnstile.client import (
    Client,
    DistinctList,
    Election,
    Group,
    Held,
    HeldLocks,
    Leadership,
    Lock,
    Semaphore,
    Session,
    Watch,
    aio,
    aio_group,
    aio_lock_many,
    aio_semaphore,
    connect,
)

pytestmark = pytest.mark.unit

TWINS = [
    (Client, aio.AsyncClient),
    (Session, aio.AsyncSession),
    (Lock, aio.AsyncLock),
    (DistinctList, aio.AsyncDistinctList),
    (Group, aio_group.AsyncGroup),
    (Election, aio_group.AsyncElection),
    (Leadership, aio_group.AsyncLeadership),
    (Watch, aio_group.AsyncWatch),
    (Semaphore, aio_semaphore.AsyncSemaphore),
    (Held, aio_semaphore.AsyncHeld),
    (HeldLocks, aio_lock_many.AsyncHeldLocks),
]
#: Methods that never wait on the network: plain functions on both sides.
LOCAL = {
    "lock",
    "semaphore",
    "distinct_list",
    "group",
    "election",
    "observe",
    "locked",
    "alive",
    "add_listener",
    "abandon_later",
    "release_later",
    # HeldLocks' Mapping methods: its holds, by name, read locally.
    "get",
    "items",
    "keys",
    "values",
}
#: Methods local on one class whose name waits elsewhere (``Client.watch`` is a call).
LOCAL_OF: dict[type, set[str]] = {Group: {"watch"}}
#: Protocol methods the asyncio side spells its own way.
DUNDER_TWINS = {
    "__enter__": "__aenter__",
    "__exit__": "__aexit__",
    "__iter__": "__aiter__",
    "__next__": "__anext__",
    "__len__": "size",
    "__contains__": "contains",
    "__repr__": "__repr__",
}


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def parameters(function: object) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p != "self"]  # type: ignore[arg-type]


@pytest.mark.parametrize(("sync", "twin"), TWINS, ids=lambda cls: cls.__name__)
def test_both_sides_have_the_same_public_names(sync: type, twin: type) -> None:
    assert public(sync) == public(twin)


@pytest.mark.parametrize(("sync", "twin"), TWINS, ids=lambda cls: cls.__name__)
def test_the_same_methods_take_the_same_parameters(sync: type, twin: type) -> None:
    assert parameters(sync.__init__) == parameters(twin.__init__)
    for name in public(sync):
        ours, theirs = inspect.getattr_static(sync, name), inspect.getattr_static(twin, name)
        assert isinstance(ours, property) is isinstance(theirs, property), name
        if callable(ours):
            assert parameters(ours) == parameters(theirs), name


@pytest.mark.parametrize(("sync", "twin"), TWINS, ids=lambda cls: cls.__name__)
def test_what_may_wait_is_a_coroutine_on_the_asyncio_side(sync: type, twin: type) -> None:
    for name in public(sync):
        ours, theirs = inspect.getattr_static(sync, name), inspect.getattr_static(twin, name)
        if not callable(ours):
            continue
        assert not inspect.iscoroutinefunction(ours), name
        local = LOCAL | LOCAL_OF.get(sync, set())
        assert inspect.iscoroutinefunction(theirs) is (name not in local), name


@pytest.mark.parametrize(("sync", "twin"), TWINS, ids=lambda cls: cls.__name__)
def test_protocol_methods_have_their_asyncio_twins(sync: type, twin: type) -> None:
    for name, twin_name in DUNDER_TWINS.items():
        if name in vars(sync):
            assert twin_name in vars(twin), f"{twin.__name__}.{twin_name} for {name}"


def test_connect_takes_the_same_options() -> None:
    assert parameters(connect) == parameters(aio.connect)
