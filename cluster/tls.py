"""TLS on the client port: the node's certificate and key, and for mutual TLS the client CA.

The files are read and checked once at start, so a wrong path, a key that does not match its
certificate or a file that is not PEM is a ``ConfigError`` naming the option, not an opaque
handshake failure on the first client.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from turnstile.cluster.config import ConfigError, NodeConfig


def server_credentials(config: NodeConfig) -> grpc.ServerCredentials | None:
    """Credentials for the client port, or None when it serves plaintext."""
    if config.tls_cert_file is None or config.tls_key_file is None:
        return None
    chain = read_pem("tls_cert_file", config.tls_cert_file)
    key = read_pem("tls_key_file", config.tls_key_file)
    try:
        certificate = x509.load_pem_x509_certificates(chain)[0]
    except ValueError as exc:
        raise ConfigError(
            f"tls_cert_file: {config.tls_cert_file} holds no PEM certificate: {exc}"
        ) from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"tls_key_file: {config.tls_key_file} holds no unencrypted PEM private key: {exc}"
        ) from None
    if private_key.public_key() != certificate.public_key():
        raise ConfigError(
            f"tls_key_file: the key in {config.tls_key_file} does not belong to the "
            f"certificate in {config.tls_cert_file}"
        )
    client_ca = None
    if config.tls_client_ca_file is not None:
        client_ca = read_pem("tls_client_ca_file", config.tls_client_ca_file)
        try:
            x509.load_pem_x509_certificates(client_ca)
        except ValueError as exc:
            raise ConfigError(
                f"tls_client_ca_file: {config.tls_client_ca_file} holds no PEM certificate: {exc}"
            ) from None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def read_pem(option: str, path: Path) -> bytes:
    """A file's bytes, or a ConfigError naming ``option``."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
