"""What every admin command gets: a client with a short deadline, and a printer."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import grpc

from turnstile.client.admin.printer import Printer
from turnstile.client.client import Client, parse_endpoints
from turnstile.client.errors import from_rpc_error
from turnstile.client.retry import RetryPolicy
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc


@dataclass
class Context:
    client: Client
    printer: Printer
    timeout: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        retry = RetryPolicy(deadline=args.timeout, attempt_timeout=min(2.0, args.timeout))
        client = Client(args.endpoints, retry=retry, name="turnstile-cli")
        return cls(client, Printer(args.json), args.timeout)

    def node_call(self, address: str, method: str, request: Any) -> Any:
        """Asks one node directly (Status, Members: answered by any node, about itself)."""
        with grpc.insecure_channel(address) as channel:
            try:
                return getattr(pb_grpc.ClusterStub(channel), method)(
                    request, timeout=min(2.0, self.timeout)
                )
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None

    def endpoints(self) -> list[str]:
        return self.client.router.endpoints


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoints",
        type=parse_endpoints,
        default=None,
        help="cluster client addresses, host:port,... (default: $TURNSTILE_ENDPOINTS)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to keep trying (default: 5)"
    )
