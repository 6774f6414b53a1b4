"""Bearer-token authentication and roles for the client port, as a grpc.aio server interceptor.

A client sends ``authorization: Bearer <token>`` in its call metadata. The node keeps only the
SHA-256 of each accepted token (config ``tokens``), hashes what it receives and compares in
constant time. A missing or unknown token is ``UNAUTHENTICATED``; a known token whose role may
not call the method is ``PERMISSION_DENIED``; both travel through the one reason table.

Health checking and reflection need no token, so load balancers, probes and ``grpcurl
describe`` keep working; they reveal whether a node serves and the API's shape, nothing more.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import grpc

from turnstile.cluster.config import Token
from turnstile.cluster.errors import to_status
from turnstile.v1.metadata import AUTHORIZATION_METADATA_KEY, BEARER_SCHEME
from turnstile.v1.reasons import Reason

log = logging.getLogger(__name__)

WORKER = "worker"
ADMIN = "admin"

_V1 = "/turnstile.v1."
#: What a worker may call: its own work, and the read-only views of the cluster. Every other
#: method of the API - those changing the cluster or copying all of its state - is admin only,
#: including any added later and not listed here.
WORKER_METHODS = frozenset(
    {
        *(f"{_V1}Sessions/{m}" for m in ("Open", "KeepAlive", "Close", "List", "Stream")),
        *(
            f"{_V1}Locks/{m}"
            for m in (
                "Acquire",
                "AcquireMany",
                "Release",
                "Abandon",
                "Extend",
                "Validate",
                "Describe",
                "List",
            )
        ),
        *(
            f"{_V1}Semaphores/{m}"
            for m in ("Acquire", "Release", "Abandon", "Extend", "Describe", "List")
        ),
        *(
            f"{_V1}DistinctLists/{m}"
            for m in (
                "SetUp",
                "Insert",
                "Contains",
                "Lookup",
                "Members",
                "Size",
                "TearDown",
                "List",
            )
        ),
        *(
            f"{_V1}Groups/{m}"
            for m in (
                "Create",
                "Delete",
                "Join",
                "Leave",
                "UpdateCapabilities",
                "Describe",
                "List",
            )
        ),
        *(f"{_V1}Elections/{m}" for m in ("Campaign", "Resign", "Describe", "List")),
        f"{_V1}Watches/Watch",
        f"{_V1}Cluster/Status",
        f"{_V1}Cluster/Members",
    }
)
#: Services anyone who reaches the port may call, and the one between the members, which
#: authenticates its callers itself with the peer password (``forward_service``).
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/turnstile.v1.Forward/",
)
#: A method handler of any request and response type (generic in the stubs only).
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def token_hash(token: str) -> str:
    """The hex SHA-256 of a token, as the config's ``tokens`` entries hold it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def may_call(role: str, method: str) -> bool:
    """Whether ``role`` may call the full gRPC method name ``method``."""
    return role == ADMIN or (role == WORKER and method in WORKER_METHODS)


class TokenAuth(grpc.aio.ServerInterceptor):
    """Refuses calls without an accepted token, or whose token's role may not make them."""

    def __init__(self, tokens: Iterable[Token]) -> None:
        self._tokens = [(bytes.fromhex(t.sha256), t) for t in tokens]
        if not self._tokens:
            raise ValueError("TokenAuth needs at least one token")

    def identify(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Token | None:
        """The configured token the metadata presents, if any."""
        presented = next(
            (value for key, value in metadata or () if key == AUTHORIZATION_METADATA_KEY),
            None,
        )
        if not isinstance(presented, str) or not presented.startswith(BEARER_SCHEME):
            return None
        digest = hashlib.sha256(presented[len(BEARER_SCHEME) :].strip().encode("utf-8")).digest()
        found = None
        # Compare with every entry, so timing does not tell which one (if any) matched.
        for expected, token in self._tokens:
            if hmac.compare_digest(digest, expected):
                found = token
        return found

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = details.method or ""
        handler = await continuation(details)
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        token = self.identify(details.invocation_metadata)
        if token is None:
            log.warning("refused %s: missing or unknown bearer token", method)
            return _refusal(
                handler,
                Reason.UNAUTHENTICATED,
                "a valid bearer token is required (metadata 'authorization: Bearer <token>')",
            )
        if not may_call(token.role, method):
            log.warning("refused %s to %s: role %s may not call it", method, token.name, token.role)
            return _refusal(
                handler,
                Reason.PERMISSION_DENIED,
                f"role {token.role} may not call {method.rsplit('/', 1)[-1]}; an admin token can",
            )
        return handler


def _refusal(handler: Handler, reason: Reason, detail: str) -> Handler:
    """A handler of the same shape as ``handler`` that only aborts with ``reason``."""
    status = to_status(reason, detail)

    # A coroutine serves every shape: grpc.aio lets streaming handlers write via the context.
    async def abort(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        context.set_trailing_metadata(status.trailing_metadata)
        await context.abort(status.code, status.details)

    shape = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return shape(
        abort,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
