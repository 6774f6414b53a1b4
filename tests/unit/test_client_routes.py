"""The request type chooses the stub method: ``routes.ROUTES`` (and ``SHARED_ROUTES``, for the
request types two services take) name every RPC of the proto, and a request carries a request
id exactly when ``write`` is what sends it."""

from __future__ import annotations

import typing

import grpc
import pytest

from turnstile.client.routes import (
    ROUTES,
    SEMAPHORES,
    SHARED_ROUTES,
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
        (method.input_type.full_name, SERVICES[service.name], method.name)
        for service in pb.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if not method.client_streaming
    }
    routes = [*ROUTES.items(), *((request, r) for (_, request), r in SHARED_ROUTES.items())]
    routed = [(request.DESCRIPTOR.full_name, r.service, r.method) for request, r in routes]
    assert sorted(routed) == sorted(expected)  # each once
    for request, route in routes:
        assert route_of(request(), route.service) == route
    assert set(SERVICES.values()) == set(STUBS)


def test_the_routed_names_are_methods_of_their_stubs() -> None:
    with grpc.insecure_channel("localhost:1") as channel:  # never connects: nothing is called
        for route in ROUTES.values():
            assert callable(getattr(STUBS[route.service](channel), route.method)), route


def test_a_request_is_numbered_exactly_when_it_carries_a_request_id() -> None:
    for (_, request), shared in SHARED_ROUTES.items():
        assert shared.idempotency is ROUTES[request].idempotency, request.__name__
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


def test_a_semaphores_release_abandon_and_extend_take_the_lock_requests_on_their_service() -> None:
    assert route_of(pb.ReleaseRequest()) == Route("locks", "Release", Idempotency.NUMBERED)
    assert route_of(pb.ReleaseRequest(), SEMAPHORES).service == SEMAPHORES
    assert route_of(pb.ExtendRequest(), SEMAPHORES).method == "Extend"
    assert route_of(pb.AcquirePermitRequest(), SEMAPHORES).method == "Acquire"
    with pytest.raises(TypeError, match="no request of service 'semaphores'"):
        route_of(pb.InsertRequest(), SEMAPHORES)
