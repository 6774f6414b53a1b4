"""etcd's v3 gRPC API, compiled at import from the vendored ``etcd_rpc.proto`` subset.

``grpc.protos_and_services`` runs protoc in-process (it needs ``grpcio-tools``, in the
``bench`` and ``test`` extras), so no generated etcd code is committed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import grpc

_HERE = str(Path(__file__).resolve().parent)
sys.path.insert(0, _HERE)
try:
    rpc, rpc_grpc = grpc.protos_and_services("etcd_rpc.proto")
    lock, lock_grpc = grpc.protos_and_services("etcd_lock.proto")
finally:
    sys.path.remove(_HERE)


def status(endpoint: str, timeout: float = 0.5) -> Any | None:
    """Maintenance.Status of one member, or None if it does not answer."""
    with grpc.insecure_channel(endpoint) as channel:
        try:
            return rpc_grpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=timeout)
        except grpc.RpcError:
            return None


def create_if_absent(key: bytes, value: bytes) -> Any:
    """A Txn: put ``key`` if it has never been created, else read it back.

    The id of the key is its create revision: the txn's header revision when it succeeded,
    the stored ``create_revision`` when it did not.
    """
    return rpc.TxnRequest(
        compare=[
            rpc.Compare(
                result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key, create_revision=0
            )
        ],
        success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))],
        failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
    )


def txn_id(response: Any) -> tuple[bool, int]:
    """(created, id) from the answer to ``create_if_absent``."""
    if response.succeeded:
        return True, int(response.header.revision)
    return False, int(response.responses[0].response_range.kvs[0].create_revision)
