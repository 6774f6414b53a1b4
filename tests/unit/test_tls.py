"""The development CA, the node's TLS files checked at start, and the client's credentials."""

from __future__ import annotations

import ipaddress
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from turnstile.client.credentials import Credentials
from turnstile.cluster.certs import write_dev_pki
from turnstile.cluster.config import ConfigError, NodeConfig
from turnstile.cluster.peers import Peer
from turnstile.cluster.tls import server_credentials

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    write_dev_pki(directory, ["n1", "n2"], ["127.0.0.1", "*.turnstile.svc", "localhost"])
    return directory


def config(pki: Path, **changes: object) -> NodeConfig:
    peer = Peer("n1", "127.0.0.1:7101", "127.0.0.1:7001")
    base = NodeConfig(
        node_id="n1",
        client_address=peer.client_address,
        peer_address=peer.peer_address,
        data_dir=pki / "data",
        peer_password_file=pki / "pw",
        peers=(peer,),
        tls_cert_file=pki / "n1.pem",
        tls_key_file=pki / "n1.key",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_files_written_with_private_keys_owner_only(pki: Path) -> None:
    names = sorted(p.name for p in pki.iterdir())
    assert names == [
        "ca.key", "ca.pem", "client.key", "client.pem", "n1.key", "n1.pem", "n2.key", "n2.pem"
    ]  # fmt: skip
    for key in pki.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_node_certificate_names_its_hosts_and_serves_both_ends(pki: Path) -> None:
    cert = x509.load_pem_x509_certificate((pki / "n1.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["n1", "*.turnstile.svc", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    client = x509.load_pem_x509_certificate((pki / "client.pem").read_bytes())
    client.verify_directly_issued_by(ca)
    client_usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(client_usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_server_credentials_for_tls_and_mutual_tls(pki: Path) -> None:
    assert server_credentials(config(pki)) is not None
    assert server_credentials(config(pki, tls_client_ca_file=pki / "ca.pem")) is not None
    assert server_credentials(config(pki, tls_cert_file=None, tls_key_file=None)) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tls_key_file": "n2.key"}, "tls_key_file: the key in .* does not belong"),
        ({"tls_cert_file": "n1.key"}, "tls_cert_file: .* holds no PEM certificate"),
        ({"tls_key_file": "n1.pem"}, "tls_key_file: .* holds no unencrypted PEM private key"),
        ({"tls_cert_file": "absent.pem"}, "tls_cert_file: cannot read"),
        ({"tls_client_ca_file": "n1.key"}, "tls_client_ca_file: .* holds no PEM certificate"),
    ],
)
def test_bad_tls_files_name_their_option(pki: Path, changes: dict[str, str], message: str) -> None:
    resolved = {name: pki / value for name, value in changes.items()}
    with pytest.raises(ConfigError, match=message):
        server_credentials(config(pki, **resolved))


def test_credentials_from_the_environment(pki: Path) -> None:
    token_file = pki / "token"
    token_file.write_text("s3cret\n")
    env = {
        "TURNSTILE_CA_FILE": str(pki / "ca.pem"),
        "TURNSTILE_CERT_FILE": str(pki / "client.pem"),
        "TURNSTILE_KEY_FILE": str(pki / "client.key"),
        "TURNSTILE_TOKEN_FILE": str(token_file),
    }
    loaded = Credentials.load(env=env)
    assert loaded.tls
    assert loaded.ca == (pki / "ca.pem").read_bytes()
    assert loaded.metadata == (("authorization", "Bearer s3cret"),)
    assert Credentials.load(token="given", env=env).token == "given"
    assert Credentials.load(env={"TURNSTILE_TOKEN": "t"}).metadata == (
        ("authorization", "Bearer t"),
    )
    assert Credentials.load(env={"TURNSTILE_TLS": "true"}).tls
    plain = Credentials.load(env={})
    assert not plain.tls
    assert plain.metadata == ()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cert_file": "client.pem"}, "cert_file and key_file"),
        ({"ca_file": "absent.pem"}, "ca_file: cannot read"),
        ({"token_file": "empty"}, "token_file: .* is empty"),
    ],
)
def test_bad_credentials_are_value_errors(pki: Path, options: dict[str, str], message: str) -> None:
    (pki / "empty").write_text("\n")
    with pytest.raises(ValueError, match=message):
        Credentials.load(env={}, **{k: pki / v for k, v in options.items()})  # type: ignore[arg-type]
