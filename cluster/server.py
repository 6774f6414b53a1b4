"""Runs one node: the Raft replica and the gRPC server, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import disable_created_metrics
from pysyncobj import SyncObjException

from turnstile.cluster.auth import TokenAuth
from turnstile.cluster.config import NodeConfig, is_loopback
from turnstile.cluster.forward_service import ForwardService
from turnstile.cluster.group_service import ElectionsService, GroupsService, WatchesService
from turnstile.cluster.node import Node
from turnstile.cluster.semaphore_service import SemaphoresService, stream_calls
from turnstile.cluster.service import (
    ClusterService,
    DistinctListsService,
    LocksService,
    SessionsService,
)
from turnstile.cluster.tls import server_credentials
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = tuple(s.full_name for s in pb.DESCRIPTOR.services_by_name.values())
#: Largest request accepted; a full insert batch of maximal members fits well inside.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class PortInUseError(RuntimeError):
    """The client address could not be bound."""


async def serve(config: NodeConfig, stop: asyncio.Event | None = None) -> None:
    """Serves until ``stop`` is set or a SIGTERM/SIGINT arrives, then shuts down cleanly."""
    stop = stop or asyncio.Event()
    credentials = server_credentials(config)
    warn_if_insecure(config)
    disable_created_metrics()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        node = Node(config)
    except SyncObjException as exc:
        raise PortInUseError(f"peer_address: cannot bind {config.peer_address}: {exc}") from None
    interceptors: list[grpc.aio.ServerInterceptor] = [node.metrics.interceptor()]
    if config.tokens:
        # After metrics, so refused calls are counted too.
        interceptors.append(TokenAuth(config.tokens))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Accept the clients' keepalive pings (every 5 s, also while idle).
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 4000),
            ("grpc.http2.max_ping_strikes", 0),
        ],
    )
    pb_grpc.add_SessionsServicer_to_server(SessionsService(node, stream_calls(node)), server)
    pb_grpc.add_LocksServicer_to_server(LocksService(node), server)
    pb_grpc.add_DistinctListsServicer_to_server(DistinctListsService(node), server)
    pb_grpc.add_ClusterServicer_to_server(ClusterService(node), server)
    pb_grpc.add_GroupsServicer_to_server(GroupsService(node), server)
    pb_grpc.add_ElectionsServicer_to_server(ElectionsService(node), server)
    pb_grpc.add_WatchesServicer_to_server(WatchesService(node), server)
    pb_grpc.add_SemaphoresServicer_to_server(SemaphoresService(node), server)
    pb_grpc.add_ForwardServicer_to_server(ForwardService(node), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )

    async def report_health(healthy: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, status)

    node.add_health_listener(report_health)
    _bind(server, config.client_address, credentials)
    if config.metrics_address:
        try:
            node.metrics.serve(config.metrics_address)
        except OSError as exc:
            raise PortInUseError(
                f"metrics_address: cannot bind {config.metrics_address}: {exc}"
            ) from None
    node.start()
    await server.start()
    log.info(
        "node %s serving clients on %s (%s, %s), peers on %s",
        config.node_id,
        config.client_address,
        "mutual TLS"
        if config.tls_client_ca_file
        else ("TLS" if credentials is not None else "plaintext"),
        f"{len(config.tokens)} tokens" if config.tokens else "no authentication",
        config.peer_address,
    )
    try:
        await stop.wait()
    finally:
        log.info("node %s stopping", config.node_id)
        node.begin_shutdown()
        await server.stop(grace=1.0)
        await node.stop()
        node.metrics.stop()
        log.info("node %s stopped", config.node_id)


def _bind(
    server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None
) -> None:
    """Binds exactly the configured address, over TLS when credentials are given."""
    try:
        if credentials is None:
            server.add_insecure_port(address)
        else:
            server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise PortInUseError(f"client_address: cannot bind {address}: {exc}") from None


def warn_if_insecure(config: NodeConfig) -> None:
    """Says at start, as a WARNING, which protection of the client port is off and why that
    was allowed (the config loader refuses it off the loopback without ``insecure``)."""
    why = "its address is loopback" if is_loopback(config.client_address) else "insecure = true"
    if not config.tokens:
        log.warning(
            "authentication is OFF on %s (%s): any client that reaches it may do anything",
            config.client_address,
            why,
        )
    if config.tls_cert_file is None:
        log.warning(
            "TLS is OFF on %s (%s): client traffic and tokens travel in plaintext",
            config.client_address,
            why,
        )
