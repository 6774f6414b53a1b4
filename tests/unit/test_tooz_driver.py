"""The tooz backend's parts that need no cluster: the URL, the entry point, results that
raise on ``get()``, the error mapping, and the refusal of shared locks."""

from __future__ import annotations

import re

import pytest

tooz = pytest.importorskip("tooz")
from tooz import coordination  # noqa: E402

from turnstile.client import Client  # noqa: E402
from turnstile.client.errors import NotFoundError, UnavailableError  # noqa: E402
from turnstile.client.tooz_driver import (  # noqa: E402
    SHARED_LOCKS,
    TurnstileDriver,
    _result,
    _translated,
)

pytestmark = pytest.mark.unit


def test_the_url_names_the_endpoints_and_options_and_the_entry_point_finds_the_driver() -> None:
    driver = coordination.get_coordinator(
        "turnstile://127.0.0.1:7001,127.0.0.1:7002?timeout=5&connect_timeout=2&token=t", b"m1"
    )
    assert isinstance(driver, TurnstileDriver)
    assert driver._endpoints == "127.0.0.1:7001,127.0.0.1:7002"
    assert (driver._ttl, driver._connect_timeout, driver._token) == (5.0, 2.0, "t")
    assert driver.requires_beating  # tooz's heart (or the caller) keeps the session alive
    assert coordination.Characteristics.NON_TIMEOUT_BASED not in driver.CHARACTERISTICS


def test_a_result_is_done_at_once_and_raises_its_error_on_get() -> None:
    def missing() -> None:
        raise coordination.GroupNotCreated(b"g")

    failed = _result(missing)
    assert failed.done()
    with pytest.raises(coordination.GroupNotCreated):
        failed.get()
    assert _result(lambda: 7).get() == 7


def test_turnstile_errors_become_toozs() -> None:
    with pytest.raises(coordination.ToozConnectionError), _translated():
        raise UnavailableError("no leader")
    with pytest.raises(tooz.ToozError) as raised, _translated():
        raise NotFoundError("no such list")
    assert not isinstance(raised.value, coordination.ToozConnectionError)


def test_shared_locks_are_not_implemented_with_the_reason() -> None:
    driver = coordination.get_coordinator("turnstile://127.0.0.1:1", b"m1")
    assert isinstance(driver, TurnstileDriver)
    driver._client = Client("127.0.0.1:1")  # no traffic happens before a call
    try:
        with pytest.raises(tooz.NotImplemented, match=re.escape(SHARED_LOCKS)):
            driver.get_lock(b"name").acquire(shared=True)
    finally:
        driver._client.close()
