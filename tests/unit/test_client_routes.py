"""The request type chooses the stub method: ``routes.ROUTES`` names every RPC of the proto, and a
request carries a request id exactly when ``write`` is what sends it."""

from __future__ import annotations

import typing

import grpc
import pytest

from turnstile.client.routes import (
    HOLD_REQUESTS,
    ROUTES,
    STUBS,
    Idempotency,
    NumberedRequest,
    Route,
    route_of,
)
from turnstile.v1 import turnstile_pb2 as pb

pytestmark = pytest.mark.unit

SERVICES = {
    "Sessions": "sessions",
    "Locks": "locks",
    "DistinctLists": "lists",
    "Cluster": "cluster",
    "Groups": "groups",
    "Elections": "elections",
    "Watches": "watches",
    "Semaphores": "semaphores",
}


def test_every_rpc_of_the_proto_has_its_route() -> None:
    """Every RPC but the session stream, which carries routed requests (``stream_calls``)."""
    expected = {
        method.input_type.full_name: (SERVICES[service.name], method.name)
        for service in pb.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if not method.client_streaming
    }
    routed = {
        request.DESCRIPTOR.full_name: (route.service, route.method)
        for request, route in ROUTES.items()
    }
    assert routed == expected
    assert set(SERVICES.values()) == set(STUBS)


def test_the_routed_names_are_methods_of_their_stubs() -> None:
    with grpc.insecure_channel("localhost:1") as channel:  # never connects: nothing is called
        for route in ROUTES.values():
            assert callable(getattr(STUBS[route.service](channel), route.method)), route


def test_a_request_is_numbered_exactly_when_it_carries_a_request_id() -> None:
    for request, route in ROUTES.items():
        field = request.DESCRIPTOR.fields_by_name.get("request")
        carries_id = field is not None and field.message_type is pb.RequestId.DESCRIPTOR
        assert carries_id is (route.idempotency is Idempotency.NUMBERED), request.__name__
    numbered = {r for r, route in ROUTES.items() if route.idempotency is Idempotency.NUMBERED}
    assert numbered == set(typing.get_args(NumberedRequest))


def test_a_message_that_is_no_request_has_no_route() -> None:
    assert route_of(pb.ValidateRequest()) == Route("locks", "Validate", Idempotency.READ)
    with pytest.raises(TypeError, match="RequestId is not a Turnstile request"):
        route_of(pb.RequestId())


def test_a_hold_is_given_back_abandoned_and_extended_on_its_own_service() -> None:
    for service, requests in HOLD_REQUESTS.items():
        methods = [route_of(request()) for request in requests]
        assert [(r.service, r.method) for r in methods] == [
            (service, "Release"),
            (service, "Abandon"),
            (service, "Extend"),
        ]
