"""TLS, mutual TLS and bearer-token roles on a real cluster with generated certificates."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

import turnstile.client
import turnstile.client.aio
from turnstile.client import (
    PermissionDeniedError,
    RetryPolicy,
    UnauthenticatedError,
    UnavailableError,
)
from turnstile.client.credentials import Credentials
from turnstile.cluster.certs import CA_NAME, CLIENT_NAME
from turnstile.cluster.launcher import TLS_DIR, Security, token_path
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc
from turnstile.v1.reasons import Reason

from .cluster import Cluster, error_reason

pytestmark = pytest.mark.integration

#: Refusals are not retried, and a refused handshake is given up on quickly.
FAST = RetryPolicy(deadline=3.0, attempt_timeout=1.0)
#: For a call whose handshake must be refused: the client retries the refusal (UNAVAILABLE)
#: until this deadline, so each such test takes all of it. An accepted handshake and Status
#: call on loopback answer in milliseconds, well inside it even on a loaded machine.
REFUSED = RetryPolicy(deadline=1.5, attempt_timeout=0.75)


def start(directory: Path, security: Security) -> Cluster:
    cluster = Cluster(directory, security=security)
    try:
        cluster.start_all()
        cluster.leader(timeout=30)
    except BaseException:
        cluster.close()
        raise
    return cluster


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Mutual TLS and tokens: the strictest setup, shared by the tests of this module."""
    cluster = start(tmp_path_factory.mktemp("secure"), Security(tls=True, mtls=True, auth=True))
    try:
        yield cluster
    finally:
        cluster.close()
    assert not cluster.critical_lines()


def tls_files(cluster: Cluster) -> dict[str, Path]:
    tls = cluster.directory / TLS_DIR
    return {
        "ca_file": tls / f"{CA_NAME}.pem",
        "cert_file": tls / f"{CLIENT_NAME}.pem",
        "key_file": tls / f"{CLIENT_NAME}.key",
    }


def token(cluster: Cluster, role: str) -> str:
    return token_path(cluster.directory, role).read_text().strip()


def connect(
    cluster: Cluster, retry: RetryPolicy = FAST, **options: object
) -> turnstile.client.Client:
    return turnstile.client.Client(cluster.addresses, retry=retry, **options)  # type: ignore[arg-type]


def test_worker_over_mutual_tls_locks_and_inserts(secure: Cluster) -> None:
    with connect(secure, token=token(secure, "worker"), **tls_files(secure)) as client:
        with client.lock("tls-unit", max_hold=30) as held:
            assert held.token
        assert client.distinct_list("tls-list").insert("k") == (True, 1)
        status = client.invoke(pb.StatusRequest())
        assert status.healthy


def test_a_follower_forwards_to_the_leader_over_mutual_tls(secure: Cluster) -> None:
    """The follower dials the leader's port with its own certificate, and is let in."""
    follower = secure.followers(secure.leader())[0]
    before = secure.forwarded_calls(follower, "command")
    client = turnstile.client.Client(
        [follower], retry=FAST, token=token(secure, "worker"), **tls_files(secure)
    )
    with client, client.lock("tls-forwarded", max_hold=30) as held:
        assert held.token
    assert secure.forwarded_calls(follower, "command") >= before + 3  # open, acquire, release


def test_asyncio_client_over_mutual_tls(secure: Cluster) -> None:
    async def run() -> int:
        async with (
            turnstile.client.aio.connect(
                secure.addresses, retry=FAST, token=token(secure, "worker"), **tls_files(secure)
            ) as client,
            client.lock("tls-async", max_hold=30) as held,
        ):
            return held.token or 0

    assert asyncio.run(run()) > 0


def test_client_without_a_certificate_is_refused_the_handshake(secure: Cluster) -> None:
    files = tls_files(secure)
    with (
        connect(secure, REFUSED, ca_file=files["ca_file"], token=token(secure, "admin")) as client,
        pytest.raises(UnavailableError),
    ):
        client.invoke(pb.StatusRequest())


def test_plaintext_client_is_refused(secure: Cluster) -> None:
    with (
        connect(secure, REFUSED, credentials=Credentials(token=token(secure, "admin"))) as client,
        pytest.raises(UnavailableError),
    ):
        client.invoke(pb.StatusRequest())


def test_a_certificate_of_another_ca_is_refused(secure: Cluster, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "turnstile.cluster", "certs", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    with (
        connect(
            secure,
            REFUSED,
            ca_file=tls_files(secure)["ca_file"],
            cert_file=tmp_path / "client.pem",
            key_file=tmp_path / "client.key",
        ) as client,
        pytest.raises(UnavailableError),
    ):
        client.invoke(pb.StatusRequest())


@pytest.mark.parametrize("presented", [None, "not-a-valid-token"])
def test_missing_or_wrong_token_is_unauthenticated(secure: Cluster, presented: str | None) -> None:
    credentials = Credentials.load(token=presented, env={}, **tls_files(secure))  # type: ignore[arg-type]
    with connect(secure, credentials=credentials) as client:
        with pytest.raises(UnauthenticatedError) as caught:
            client.lock("no-token").acquire(blocking=False)
        assert caught.value.reason is Reason.UNAUTHENTICATED
        with pytest.raises(UnauthenticatedError):
            client.invoke(pb.StatusRequest())


@pytest.mark.parametrize(
    "request_",
    [
        pb.ForceReleaseRequest(name="x", reason="test"),
        pb.AddMemberRequest(),
        pb.RemoveMemberRequest(node_id="n3"),
        pb.TransferLeadershipRequest(),
    ],
    ids=lambda request: type(request).__name__,
)
def test_worker_calling_an_admin_rpc_is_permission_denied(
    secure: Cluster, request_: Message
) -> None:
    with connect(secure, token=token(secure, "worker"), **tls_files(secure)) as client:
        with pytest.raises(PermissionDeniedError) as caught:
            client.invoke(request_)
        assert caught.value.reason is Reason.PERMISSION_DENIED


def test_worker_cannot_save_a_snapshot_but_an_admin_can(secure: Cluster) -> None:
    with (
        connect(secure, token=token(secure, "worker"), **tls_files(secure)) as worker,
        pytest.raises(PermissionDeniedError),
    ):
        worker.invoke_stream(pb.SaveSnapshotRequest())
    with connect(secure, token=token(secure, "admin"), **tls_files(secure)) as admin:
        chunks = admin.invoke_stream(pb.SaveSnapshotRequest())
        assert chunks[0].total_bytes == sum(len(c.data) for c in chunks) > 0


def test_admin_may_call_admin_rpcs(secure: Cluster) -> None:
    with (
        connect(secure, token=token(secure, "admin"), **tls_files(secure)) as client,
        pytest.raises(turnstile.client.NotFoundError),
    ):
        client.invoke(pb.RemoveMemberRequest(node_id="nobody"))


def test_refusal_carries_the_reason_in_error_info(secure: Cluster) -> None:
    files = tls_files(secure)
    credentials = grpc.ssl_channel_credentials(
        files["ca_file"].read_bytes(),
        files["key_file"].read_bytes(),
        files["cert_file"].read_bytes(),
    )
    with grpc.secure_channel(secure.addresses[0], credentials) as channel:
        cluster_stub = pb_grpc.ClusterStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            cluster_stub.Status(pb.StatusRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert error_reason(caught.value) is Reason.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as caught:
            cluster_stub.ForceRelease(
                pb.ForceReleaseRequest(name="x", reason="r"),
                timeout=5,
                metadata=(("authorization", f"Bearer {token(secure, 'worker')}"),),
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        assert error_reason(caught.value) is Reason.PERMISSION_DENIED
        # Health checking needs no token (a client certificate, under mutual TLS, it does).
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_cli_with_credential_options_and_env(secure: Cluster, tmp_path: Path) -> None:
    files = tls_files(secure)
    env = {
        **os.environ,
        "TURNSTILE_ENDPOINTS": ",".join(secure.addresses),
        "TURNSTILE_CA_FILE": str(files["ca_file"]),
        "TURNSTILE_CERT_FILE": str(files["cert_file"]),
        "TURNSTILE_KEY_FILE": str(files["key_file"]),
    }
    env.pop("TURNSTILE_TOKEN", None)
    env.pop("TURNSTILE_TOKEN_FILE", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "turnstile.cluster", *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    health = cli("health")
    assert health.returncode == 0, health.stderr
    assert health.stdout.count("SERVING") == 3
    refused = cli("lock", "release", "x", "--force", "--reason", "r", "--timeout", "3")
    assert refused.returncode == 5
    assert "UNAUTHENTICATED" in refused.stderr
    worker = token_path(secure.directory, "worker")
    denied = cli("snapshot", "save", str(tmp_path / "s.bin"), "--token-file", str(worker))
    assert denied.returncode == 5
    assert "PERMISSION_DENIED" in denied.stderr
    admin = token_path(secure.directory, "admin")
    status = cli("status", "--token-file", str(admin))
    assert status.returncode == 0, status.stderr
    missing = cli("status", "--token-file", str(tmp_path / "absent"))
    assert missing.returncode == 2
    assert "token_file" in missing.stderr


def test_node_logs_say_what_protects_the_client_port(secure: Cluster) -> None:
    text = secure.nodes[0].log_path.read_text()
    assert "(mutual TLS, 2 tokens)" in text
    assert "authentication is OFF" not in text


def test_server_tls_without_client_certificates(tmp_path: Path) -> None:
    cluster = start(tmp_path / "tls", Security(tls=True))
    try:
        ca = tls_files(cluster)["ca_file"]
        with connect(cluster, ca_file=ca) as client, client.lock("tls-only") as held:
            assert held.token
        with (
            connect(cluster, REFUSED, credentials=Credentials()) as plaintext,
            pytest.raises(UnavailableError),
        ):
            plaintext.invoke(pb.StatusRequest())
        log = cluster.nodes[0].log_path.read_text()
        assert "authentication is OFF" in log
        assert "WARNING" in log
        # No client CA to verify the leader with: no forwarding, said at start.
        assert "forwarding is off" in log
    finally:
        cluster.close()


def test_cluster_up_off_the_loopback_needs_tls_and_tokens(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "turnstile.cluster", "cluster", "up"),
            *("--host", "10.9.9.9", "--data-dir", str(tmp_path / "c")),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "needs --tls (or --mtls) and --auth" in result.stderr
    assert not (tmp_path / "c").exists()
