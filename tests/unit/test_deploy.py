"""The deployment samples in deploy/ are read by the real config loader, so they cannot drift.

No container engine runs where these tests run: the compose file and the Kubernetes manifests
are checked as data - parsed as YAML, each node's environment loaded as its configuration, and
the ports, volumes and secrets they declare compared with the addresses and paths it names.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnstile.client.credentials import CA_FILE_ENV, CERT_FILE_ENV, KEY_FILE_ENV
from turnstile.cluster.config import ENV_PREFIX, NodeConfig, load_config, option_names

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
#: Test values for what the operator supplies at deploy time (setup.sh, kubectl secrets).
TOKENS = f"ops:admin:{'1' * 64},fleet:worker:{'2' * 64}"
OPTION_VARIABLES = {ENV_PREFIX + name.upper().replace(".", "_") for name in option_names()}
#: Client-side variables a node's container may also carry, for its health probe.
PROBE_VARIABLES = {CA_FILE_ENV, CERT_FILE_ENV, KEY_FILE_ENV}


def port(address: str) -> int:
    return int(address.rpartition(":")[2])


def check_variables(env: dict[str, str]) -> None:
    """Every TURNSTILE_ variable is an option the loader reads, or a probe's client setting."""
    unknown = {
        name
        for name in env
        if name.startswith(ENV_PREFIX) and name not in OPTION_VARIABLES | PROBE_VARIABLES
    }
    assert not unknown, f"variables no code reads: {sorted(unknown)}"


def test_every_toml_file_under_deploy_loads() -> None:
    files = sorted(DEPLOY.rglob("*.toml"))
    assert len(files) >= 3
    configs = [load_config(path, env={}, flags={}) for path in files]
    for config in configs:
        assert not config.insecure
        assert config.tls_cert_file is not None and config.tokens
    assert len({c.node_id for c in configs}) == len(configs)
    assert len({c.peers for c in configs}) == 1, "the node files disagree on the members"


def test_systemd_unit_runs_the_config_it_documents() -> None:
    unit = (DEPLOY / "systemd" / "turnstile.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    assert exec_start is not None
    assert exec_start.group(1).split()[1:] == ["serve", "--config", "/etc/turnstile/node.toml"]
    state_dir = re.search(r"^StateDirectory=(\S+)$", unit, re.MULTILINE)
    assert state_dir is not None
    for path in (DEPLOY / "systemd").glob("*.toml"):
        config = load_config(path, env={}, flags={})
        assert config.data_dir.is_relative_to(f"/var/lib/{state_dir.group(1)}")


def test_dockerfile_copies_every_package_and_the_dockerignore_lets_them_through() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = {
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dirs = project["tool"]["setuptools"]["package-dir"].values()
    assert all(Path(d).parts[0] in copied for d in package_dirs)
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    assert all((ROOT / source).exists() for source in copied)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {f"!{source}" for source in copied} <= set(ignore)
    exposed = re.search(r"^EXPOSE (.*)$", dockerfile, re.MULTILINE)
    assert exposed is not None
    systemd = load_config(DEPLOY / "systemd" / "node1.toml", env={}, flags={})
    assert {int(p) for p in exposed.group(1).split()} == {
        port(systemd.client_address),
        port(systemd.peer_address),
        port(systemd.metrics_address),
    }


# --------------------------------------------------------------------------- compose


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())


def interpolate(value: str) -> str:
    """Compose's ${VAR:?message} with the operator's .env value."""
    return re.sub(r"\$\{TURNSTILE_TOKENS:\?[^}]*\}", TOKENS, value)


def compose_nodes() -> dict[str, tuple[dict[str, Any], NodeConfig]]:
    nodes = {}
    for name, service in compose()["services"].items():
        env = {key: interpolate(str(value)) for key, value in service["environment"].items()}
        check_variables(env)
        nodes[name] = (service, load_config(None, env=env, flags={}))
    return nodes


def test_compose_is_three_nodes_that_agree() -> None:
    nodes = compose_nodes()
    assert len(nodes) == 3
    configs = [config for _, config in nodes.values()]
    assert {c.node_id for c in configs} == set(nodes)
    assert len({c.peers for c in configs}) == 1
    assert {p.node_id for p in configs[0].peers} == set(nodes)
    for name, (service, config) in nodes.items():
        assert service["hostname"] == name
        assert config.client_address.startswith(f"{name}:")
        assert config.peer_address.startswith(f"{name}:")
        assert config.tokens and config.tls_client_ca_file is not None


def test_compose_ports_volumes_and_secrets_match_the_config() -> None:
    document = compose()
    for name, (service, config) in compose_nodes().items():
        client_port = port(config.client_address)
        # Same number outside as inside, so leader hints work from the host too.
        assert service["ports"] == [f"127.0.0.1:{client_port}:{client_port}"]
        mounts = dict(volume.split(":", 1) for volume in service["volumes"])
        assert any(config.data_dir.is_relative_to(target) for target in mounts.values())
        assert set(mounts) <= set(document["volumes"])
        secret_files = {f"/run/secrets/{secret}" for secret in service["secrets"]}
        for path in (
            config.peer_password_file,
            config.tls_cert_file,
            config.tls_key_file,
            config.tls_client_ca_file,
        ):
            assert str(path) in secret_files, f"{name}: {path} is not a mounted secret"
        assert set(service["secrets"]) <= set(document["secrets"])
        probe = " ".join(service["healthcheck"]["test"])
        assert "turnstile health" in probe and "TURNSTILE_CLIENT_ADDRESS" in probe
        env = service["environment"]
        assert env[CERT_FILE_ENV] == str(config.tls_cert_file)
        assert env[KEY_FILE_ENV] == str(config.tls_key_file)


def test_compose_secret_files_are_what_setup_writes() -> None:
    setup = (DEPLOY / "compose" / "setup.sh").read_text()
    for secret in compose()["secrets"].values():
        relative = secret["file"].removeprefix("./")
        assert relative == "secrets/peer.secret" or relative.startswith("secrets/tls/")
        if relative.startswith("secrets/tls/"):
            stem = Path(relative).stem
            assert stem == "ca" or f"--node {stem}" in setup
    ignored = (DEPLOY / "compose" / ".gitignore").read_text().split()
    assert {"secrets/", ".env"} <= set(ignored)


# --------------------------------------------------------------------------- kubernetes


def manifests() -> dict[str, dict[str, Any]]:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "turnstile.yaml").read_text()))
    by_kind: dict[str, dict[str, Any]] = {}
    for document in documents:
        key = f"{document['kind']}/{document['metadata']['name']}"
        assert key not in by_kind
        by_kind[key] = document
    return by_kind


def pod_environment(container: dict[str, Any], pod: str) -> dict[str, str]:
    """The container's env as the kubelet builds it for ``pod``: field refs, $(VAR)
    references to earlier variables, and secrets (test values)."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            value = pod
        else:
            assert item["valueFrom"]["secretKeyRef"] == {
                "name": "turnstile-tokens",
                "key": "tokens",
            }
            value = TOKENS
        env[item["name"]] = value
    return env


def test_kubernetes_has_the_four_parts() -> None:
    assert set(manifests()) == {
        "Service/turnstile-peers",
        "Service/turnstile",
        "PodDisruptionBudget/turnstile",
        "StatefulSet/turnstile",
    }


def test_kubernetes_pods_load_and_agree_with_services_and_volumes() -> None:
    found = manifests()
    statefulset = found["StatefulSet/turnstile"]
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    headless = found["Service/turnstile-peers"]["spec"]
    assert spec["serviceName"] == found["Service/turnstile-peers"]["metadata"]["name"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"]
    labels = spec["template"]["metadata"]["labels"]
    for name in ("Service/turnstile-peers", "Service/turnstile"):
        assert found[name]["spec"]["selector"] == labels
        for service_port in found[name]["spec"]["ports"]:
            assert container_ports[service_port["targetPort"]] == service_port["port"]
    assert found["PodDisruptionBudget/turnstile"]["spec"]["selector"]["matchLabels"] == labels
    assert found["PodDisruptionBudget/turnstile"]["spec"]["maxUnavailable"] == 1

    configs = []
    for ordinal in range(spec["replicas"]):
        name = f"{statefulset['metadata']['name']}-{ordinal}"
        env = pod_environment(container, name)
        check_variables(env)
        config = load_config(None, env=env, flags={})
        configs.append(config)
        assert config.node_id == name
        domain = f"{name}.{spec['serviceName']}.{statefulset['metadata']['namespace']}.svc"
        assert config.client_address.startswith(domain)
        assert port(config.client_address) == container_ports["client"]
        assert port(config.peer_address) == container_ports["peer"]
        assert port(config.metrics_address) == container_ports["metrics"]
    assert len({c.peers for c in configs}) == 1
    assert {p.node_id for p in configs[0].peers} == {c.node_id for c in configs}

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (claim,) = spec["volumeClaimTemplates"]
    config = configs[0]
    assert config.data_dir.is_relative_to(mounts[claim["metadata"]["name"]])
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    for path in (
        config.peer_password_file,
        config.tls_cert_file,
        config.tls_key_file,
        config.tls_client_ca_file,
    ):
        assert any(
            path is not None and path.is_relative_to(mounts[volume]) for volume in secret_volumes
        ), f"{path} is not in a mounted secret"
    probe = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "turnstile health" in probe and "TURNSTILE_CLIENT_ADDRESS" in probe
