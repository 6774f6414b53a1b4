"""Tokens and roles: which role may call which RPC, and how the interceptor refuses."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import grpc
import pytest
from google.rpc import status_pb2

from turnstile.cluster.auth import (
    ADMIN,
    WORKER,
    WORKER_METHODS,
    TokenAuth,
    may_call,
    token_hash,
)
from turnstile.cluster.config import Token
from turnstile.v1 import turnstile_pb2
from turnstile.v1.error_info import reason_of
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

#: Between the members only: not a role's to call, authenticated by the peer password.
MEMBERS_ONLY = {"/turnstile.v1.Forward/Stream"}
ALL_METHODS = {
    f"/{service.full_name}/{method.name}"
    for service in turnstile_pb2.DESCRIPTOR.services_by_name.values()
    for method in service.methods
} - MEMBERS_ONLY
ADMIN_ONLY = {
    f"/turnstile.v1.Cluster/{name}"
    for name in ("AddMember", "RemoveMember", "ForceRelease", "TransferLeadership", "SaveSnapshot")
}
WORKER_TOKEN = "worker-secret-token"
ADMIN_TOKEN = "admin-secret-token"
AUTH = TokenAuth(
    [Token("fleet", WORKER, token_hash(WORKER_TOKEN)), Token("ops", ADMIN, token_hash(ADMIN_TOKEN))]
)


def test_token_hash_is_hex_sha256() -> None:
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_every_worker_method_exists_and_admin_only_ones_are_exactly_the_operations() -> None:
    assert WORKER_METHODS <= ALL_METHODS
    assert ALL_METHODS - WORKER_METHODS == ADMIN_ONLY


@pytest.mark.parametrize("method", sorted(ALL_METHODS))
def test_admin_may_call_everything_worker_only_its_share(method: str) -> None:
    assert may_call(ADMIN, method)
    assert may_call(WORKER, method) is (method not in ADMIN_ONLY)
    assert not may_call("guest", method)


def test_an_unknown_method_is_admin_only() -> None:
    assert not may_call(WORKER, "/turnstile.v1.Cluster/SomethingNew")


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((("authorization", f"Bearer {WORKER_TOKEN}"),), "fleet"),
        ((("authorization", f"Bearer {ADMIN_TOKEN}"),), "ops"),
        ((("authorization", f"Bearer  {ADMIN_TOKEN} "),), "ops"),
        ((("authorization", "Bearer wrong"),), None),
        ((("authorization", WORKER_TOKEN),), None),
        ((("authorization", f"Basic {WORKER_TOKEN}"),), None),
        ((("authorization-bin", WORKER_TOKEN.encode()),), None),
        ((), None),
        (None, None),
    ],
)
def test_identify(metadata: Any, expected: str | None) -> None:
    token = AUTH.identify(metadata)
    assert (token.name if token else None) == expected


def test_no_tokens_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        TokenAuth([])


class _AbortedError(Exception):
    pass


class _Context:
    """Just what the refusal handler touches."""

    def __init__(self) -> None:
        self.trailing: tuple[tuple[str, Any], ...] = ()
        self.code: grpc.StatusCode | None = None

    def set_trailing_metadata(self, metadata: tuple[tuple[str, Any], ...]) -> None:
        self.trailing = metadata

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise _AbortedError(details)


class _Details(NamedTuple):
    """grpc.HandlerCallDetails is a protocol; the server passes an object like this."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


async def _served(request: Any, context: Any) -> str:
    return "served"


def _intercept(method: str, metadata: tuple[tuple[str, str], ...], streaming: bool = False) -> Any:
    make = (
        grpc.unary_stream_rpc_method_handler if streaming else grpc.unary_unary_rpc_method_handler
    )
    original = make(_served)

    async def continuation(_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return original

    handler = asyncio.run(AUTH.intercept_service(continuation, _Details(method, metadata)))
    return original, handler


def _refusal(handler: Any) -> tuple[grpc.StatusCode | None, Reason | None]:
    """Runs a refusal handler; returns its status code and the reason in its ErrorInfo."""
    context = _Context()
    behavior = handler.unary_stream or handler.unary_unary
    with pytest.raises(_AbortedError):
        asyncio.run(behavior(None, context))
    details = dict(context.trailing)["grpc-status-details-bin"]
    return context.code, reason_of(status_pb2.Status.FromString(details))


def test_valid_token_and_role_get_the_real_handler() -> None:
    bearer = (("authorization", f"Bearer {WORKER_TOKEN}"),)
    original, handler = _intercept("/turnstile.v1.Locks/Acquire", bearer)
    assert handler is original


def test_health_reflection_and_the_members_forward_stream_need_no_token() -> None:
    """Forward.Stream checks its caller's peer proof itself (test_forwarding)."""
    for method in (
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        *MEMBERS_ONLY,
    ):
        original, handler = _intercept(method, ())
        assert handler is original


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),)])
def test_missing_or_wrong_token_is_unauthenticated(metadata: tuple[tuple[str, str], ...]) -> None:
    _, handler = _intercept("/turnstile.v1.Cluster/Status", metadata)
    assert _refusal(handler) == (grpc.StatusCode.UNAUTHENTICATED, Reason.UNAUTHENTICATED)


def test_worker_on_an_admin_rpc_is_permission_denied_in_the_same_shape() -> None:
    bearer = (("authorization", f"Bearer {WORKER_TOKEN}"),)
    original, handler = _intercept("/turnstile.v1.Cluster/SaveSnapshot", bearer, streaming=True)
    assert handler.response_streaming and not handler.request_streaming
    assert handler.response_serializer is original.response_serializer
    assert _refusal(handler) == (grpc.StatusCode.PERMISSION_DENIED, Reason.PERMISSION_DENIED)
    admin = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    original, handler = _intercept("/turnstile.v1.Cluster/SaveSnapshot", admin, streaming=True)
    assert handler is original
