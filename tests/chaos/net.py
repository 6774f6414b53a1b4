"""Real network partitions: each node in its own network namespace, joined by veth pairs to
one bridge in the test's namespace, and cut with iptables inside the namespaces.

The bridge has the first address of the subnet, so processes in the test's own namespace
(the harness, its fenced resource, most workers) reach every node; a worker that must be cut
off on its own runs in a namespace of its own (``add_host``). Cuts DROP packets (no RST), as a
real partition does: connections hang until their timeouts, and resume when healed.
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field


class NetworkUnavailableError(Exception):
    """Namespaces, veth, bridges or iptables cannot be used here (not root, missing tools)."""


def run(*command: str) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetworkUnavailableError(f"{' '.join(command)}: {result.stderr.strip()}")


@dataclass
class Network:
    """A bridge and one namespace per host, all named with one random tag."""

    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    subnet: ipaddress.IPv4Network = field(
        default_factory=lambda: ipaddress.IPv4Network(
            f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}.0/24"
        )
    )
    hosts: dict[str, str] = field(default_factory=dict)
    _created: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"tsb{self.tag}"

    @property
    def gateway(self) -> str:
        """The bridge's address: the test's own namespace, as the nodes see it."""
        return str(self.subnet[1])

    def create(self) -> None:
        for tool in ("ip", "iptables"):
            if shutil.which(tool) is None:
                raise NetworkUnavailableError(
                    f"{tool} is not installed (apt-get install iproute2 iptables)"
                )
        run("ip", "link", "add", self.bridge, "type", "bridge")
        self._created.append(("link", self.bridge))
        run("ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")

    def add_host(self, name: str) -> str:
        """A new namespace ``name`` with its own address on the bridge; returns the address."""
        namespace = self.namespace(name)
        address = str(self.subnet[10 + len(self.hosts)])
        veth = f"tsv{self.tag}{len(self.hosts)}"
        run("ip", "netns", "add", namespace)
        self._created.append(("netns", namespace))
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        self._created.append(("link", veth))
        run("ip", "link", "set", veth, "master", self.bridge, "up")
        run(
            "ip",
            "-n",
            namespace,
            "addr",
            "add",
            f"{address}/{self.subnet.prefixlen}",
            "dev",
            "eth0",
        )
        run("ip", "-n", namespace, "link", "set", "eth0", "up")
        run("ip", "-n", namespace, "link", "set", "lo", "up")
        run("ip", "netns", "exec", namespace, "iptables", "-w", "-L", "INPUT")
        self.hosts[name] = address
        return address

    def namespace(self, name: str) -> str:
        return f"ts{self.tag}{name}"

    def prefix(self, name: str) -> tuple[str, ...]:
        """Runs a command inside host ``name``'s namespace (``ip netns exec`` execs in place)."""
        return ("ip", "netns", "exec", self.namespace(name))

    def _drop(self, name: str, address: str) -> None:
        iptables = (*self.prefix(name), "iptables", "-w")
        run(*iptables, "-A", "INPUT", "-s", address, "-j", "DROP")
        run(*iptables, "-A", "OUTPUT", "-d", address, "-j", "DROP")

    def cut(self, a: str, b: str) -> None:
        """No packet between hosts ``a`` and ``b``, either way."""
        self._drop(a, self.hosts[b])
        self._drop(b, self.hosts[a])

    def isolate(self, name: str, *, from_gateway: bool = True) -> None:
        """Host ``name`` from every other host, and from the test's namespace too unless
        ``from_gateway`` is False."""
        for other in self.hosts:
            if other != name:
                self.cut(name, other)
        if from_gateway:
            self._drop(name, self.gateway)

    def heal(self) -> None:
        """Removes every cut."""
        for name in self.hosts:
            run(*self.prefix(name), "iptables", "-w", "-F")

    def destroy(self) -> None:
        """Removes everything ``create``/``add_host`` made; safe to call more than once."""
        for kind, name in reversed(self._created):
            command = (
                ("ip", "netns", "del", name) if kind == "netns" else ("ip", "link", "del", name)
            )
            subprocess.run(command, check=False, capture_output=True, timeout=30)
        self._created.clear()
        self.hosts.clear()
