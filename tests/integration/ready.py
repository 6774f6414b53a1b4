"""Waiting until a fresh cluster serves groups, elections and watches (cluster version 5,
raised by the leader once every member has reported its protocol)."""

from __future__ import annotations

from tests.integration.cluster import Cluster, wait_until
from turnstile.client import FailedPreconditionError, WatchKind, connect


def wait_for_groups(cluster: Cluster, timeout: float = 60.0) -> None:
    with connect(cluster.addresses) as client:

        def serves_groups() -> bool:
            try:
                # refused (FAILED_PRECONDITION) below version 5, like every group call
                client.watch([(WatchKind.GROUP, "ready")], timeout=0)
            except FailedPreconditionError:
                return False
            return True

        wait_until(serves_groups, timeout=timeout)
