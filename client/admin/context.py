"""What every admin command gets: a client with a short deadline, and a printer."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import grpc

from turnstile.client.admin.printer import Printer
from turnstile.client.client import Client
from turnstile.client.core import parse_endpoints
from turnstile.client.credentials import Credentials
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
        credentials = Credentials.load(
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            token_file=args.token_file,
        )
        client = Client(args.endpoints, retry=retry, name="turnstile-cli", credentials=credentials)
        return cls(client, Printer(args.json), args.timeout)

    def node_call(self, address: str, method: str, request: Any) -> Any:
        """Asks one node directly (Status, Members: answered by any node, about itself)."""
        credentials = self.client.credentials
        with credentials.channel(address) as channel:
            try:
                return getattr(pb_grpc.ClusterStub(channel), method)(
                    request, timeout=min(2.0, self.timeout), metadata=credentials.metadata
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
    add_credential_options(parser)


def add_credential_options(parser: argparse.ArgumentParser) -> None:
    """TLS and token options; unset ones come from the TURNSTILE_* variables. The token is
    read from a file or the environment, never a flag, so it does not show in ``ps``."""
    parser.add_argument(
        "--ca-file", help="PEM CA of the nodes' certificates: use TLS ($TURNSTILE_CA_FILE)"
    )
    parser.add_argument(
        "--cert-file", help="PEM client certificate for mutual TLS ($TURNSTILE_CERT_FILE)"
    )
    parser.add_argument("--key-file", help="its PEM private key ($TURNSTILE_KEY_FILE)")
    parser.add_argument(
        "--token-file",
        help="file holding the bearer token ($TURNSTILE_TOKEN_FILE, or the token in "
        "$TURNSTILE_TOKEN)",
    )
