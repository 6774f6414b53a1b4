"""A development certificate authority: one CA, a certificate per node and one for clients.

For trying TLS and mutual TLS locally (``turnstile certs DIR``, ``turnstile cluster up
--tls``) and in the deploy samples. Production clusters should use their own PKI: the CA key
written here sits in a plain file next to the certificates it signed.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "ca"
CLIENT_NAME = "client"
#: How long the development certificates are valid.
VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Issued:
    """Where one certificate and its key were written."""

    cert: Path
    key: Path


def write_dev_pki(
    directory: Path, nodes: Sequence[str], hosts: Sequence[str] = ("127.0.0.1", "localhost")
) -> dict[str, Issued]:
    """Writes ``ca.pem``/``ca.key``, ``NODE.pem``/``NODE.key`` per node and
    ``client.pem``/``client.key``; returns them by name (``ca``, each node, ``client``).

    Each node certificate names the node and every one of ``hosts`` (DNS names or IP
    addresses, ``*.`` wildcards allowed) and serves as a server and a client certificate, so a
    node's own certificate also passes health probes under mutual TLS. Keys are mode 0600.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Turnstile development CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    issued = {CA_NAME: _write(directory, CA_NAME, ca_cert, ca_key)}
    for node in nodes:
        names = list(dict.fromkeys([node, *hosts]))
        cert, key = _leaf(ca_cert, ca_key, node, names, server=True, now=now)
        issued[node] = _write(directory, node, cert, key)
    cert, key = _leaf(ca_cert, ca_key, CLIENT_NAME, [], server=False, now=now)
    issued[CLIENT_NAME] = _write(directory, CLIENT_NAME, cert, key)
    return issued


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    name: str,
    hosts: Sequence[str],
    *,
    server: bool,
    now: datetime.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.chmod(0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path)
