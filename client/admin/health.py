"""``turnstile health``: the standard gRPC health check of each endpoint, for probes.

Needs no token (the health service is open), but speaks TLS and presents a client
certificate like every other command, so it works as a container probe under mutual TLS.
"""

from __future__ import annotations

import argparse

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from turnstile.client.admin.context import Context
from turnstile.client.admin.printer import EXIT_DEGRADED, EXIT_OK

_SERVING = health_pb2.HealthCheckResponse.SERVING


def run(ctx: Context, args: argparse.Namespace) -> int:
    credentials = ctx.client.credentials
    records = []
    for address in ctx.endpoints():
        with credentials.channel(address) as channel:
            try:
                stub = health_pb2_grpc.HealthStub(channel)
                # types-grpcio-health-checking declares HealthStub without the methods its
                # __init__ sets (Check, Watch)
                check = stub.Check  # type: ignore[attr-defined]
                reply: health_pb2.HealthCheckResponse = check(
                    health_pb2.HealthCheckRequest(service=""), timeout=min(2.0, ctx.timeout)
                )
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as error:
                status = f"unreachable: {error.code().name}"
        records.append({"endpoint": address, "status": status})
    ctx.printer.emit(records, [("endpoint", "ENDPOINT"), ("status", "STATUS")])
    healthy = all(
        r["status"] == health_pb2.HealthCheckResponse.ServingStatus.Name(_SERVING) for r in records
    )
    return EXIT_OK if healthy else EXIT_DEGRADED
