"""What a client presents to the cluster: TLS settings and a bearer token.

Shared by the sync client, the asyncio client and the CLI. Every setting may come from the
caller or, when the caller leaves it unset, from the environment:

==========================  =================================================================
``TURNSTILE_CA_FILE``       PEM CA bundle that signed the nodes' certificates (turns TLS on)
``TURNSTILE_CERT_FILE``     PEM client certificate, for clusters that require mutual TLS
``TURNSTILE_KEY_FILE``      its PEM private key
``TURNSTILE_TLS``           ``true``: TLS with the system's CA bundle (no CA file)
``TURNSTILE_TOKEN``         the bearer token itself
``TURNSTILE_TOKEN_FILE``    a file holding the bearer token (first line)
==========================  =================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from turnstile.v1.metadata import AUTHORIZATION_METADATA_KEY, BEARER_SCHEME

CA_FILE_ENV = "TURNSTILE_CA_FILE"
CERT_FILE_ENV = "TURNSTILE_CERT_FILE"
KEY_FILE_ENV = "TURNSTILE_KEY_FILE"
TLS_ENV = "TURNSTILE_TLS"
TOKEN_ENV = "TURNSTILE_TOKEN"
TOKEN_FILE_ENV = "TURNSTILE_TOKEN_FILE"

ChannelOptions = Sequence[tuple[str, int | str]]


@dataclass(frozen=True, slots=True)
class Credentials:
    """TLS material (None: plaintext) and a bearer token (None: none sent)."""

    tls: bool = False
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    token: str | None = None

    @classmethod
    def load(
        cls,
        *,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        token: str | None = None,
        token_file: str | Path | None = None,
        tls: bool | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Reads the files now, so a bad path fails at once with a ValueError naming it."""
        env = os.environ if env is None else env
        ca_file = ca_file or env.get(CA_FILE_ENV) or None
        cert_file = cert_file or env.get(CERT_FILE_ENV) or None
        key_file = key_file or env.get(KEY_FILE_ENV) or None
        if (cert_file is None) != (key_file is None):
            raise ValueError("cert_file and key_file (a client certificate) go together")
        if token is None:
            token_file = token_file or env.get(TOKEN_FILE_ENV) or None
            if token_file is not None:
                token = _read("token_file", token_file).decode("utf-8").strip()
                if not token:
                    raise ValueError(f"token_file: {token_file} is empty")
            else:
                token = env.get(TOKEN_ENV) or None
        if tls is None:
            tls = env.get(TLS_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        return cls(
            tls=bool(tls or ca_file or cert_file),
            ca=_read("ca_file", ca_file) if ca_file else None,
            cert=_read("cert_file", cert_file) if cert_file else None,
            key=_read("key_file", key_file) if key_file else None,
            token=token,
        )

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the token, if any."""
        return ((AUTHORIZATION_METADATA_KEY, BEARER_SCHEME + self.token),) if self.token else ()

    def _channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def channel(self, endpoint: str, options: ChannelOptions = ()) -> grpc.Channel:
        """A sync channel to ``endpoint``, over TLS when configured."""
        if self.tls:
            return grpc.secure_channel(endpoint, self._channel_credentials(), options=options)
        return grpc.insecure_channel(endpoint, options=options)

    def aio_channel(self, endpoint: str, options: ChannelOptions = ()) -> grpc.aio.Channel:
        """An asyncio channel to ``endpoint``, over TLS when configured."""
        if self.tls:
            return grpc.aio.secure_channel(endpoint, self._channel_credentials(), options=options)
        return grpc.aio.insecure_channel(endpoint, options=options)


def _read(option: str, path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
