"""A test-private podman network, and undoing what netavark leaves on the host.

netavark removes a network's bridge and its own per-network chains when the last container
leaves, but keeps its shared iptables chains (NETAVARK_FORWARD, NETAVARK-HOSTPORT-*) and the
``ip_forward`` it switched on. ``HostNetwork`` records the state first and restores it
(``ip_forward`` only when no other bridge is left on the host to need it).
"""

from __future__ import annotations

import json
import os
import random
import shlex
import subprocess

TABLES = ("filter", "nat")
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def free_subnet() -> str:
    """A /24 in 10.213.0.0/16 that no route on this host covers."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    candidates = [n for n in range(1, 255) if f"10.213.{n}." not in routes]
    return f"10.213.{random.choice(candidates)}.0/24"


def write_network(config_dir: str, name: str, bridge: str, subnet: str) -> None:
    """netavark's network file: podman uses it as the default network when the names match."""
    prefix = subnet.rsplit(".", 1)[0]
    network = {
        "name": name,
        "id": os.urandom(32).hex(),
        "driver": "bridge",
        "network_interface": bridge,
        "created": "2024-01-01T00:00:00Z",
        "subnets": [{"subnet": subnet, "gateway": f"{prefix}.1"}],
        "ipv6_enabled": False,
        "internal": False,
        "dns_enabled": False,
        "ipam_options": {"driver": "host-local"},
    }
    with open(os.path.join(config_dir, f"{name}.json"), "w") as f:
        json.dump(network, f)


def _chains(table: str) -> list[str]:
    out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
    return [line.split()[1] for line in out.splitlines() if line.startswith("-N ")]


def _rules(table: str) -> list[str]:
    out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith("-A ")]


def _bridges() -> list[str]:
    """Bridges on the host: another user's (a concurrent test's) may need forwarding on."""
    return [n for n in os.listdir("/sys/class/net") if os.path.isdir(f"/sys/class/net/{n}/bridge")]


def _nft_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


class HostNetwork:
    """The host's netavark-relevant state before a test, to restore and check against after."""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.chains = {t: set(_chains(t)) for t in TABLES}
        self.nft_tables = _nft_tables()
        with open(IP_FORWARD) as f:
            self.ip_forward = f.read().strip()

    def restore(self) -> list[str]:
        """Remove the chains, tables and bridge netavark made; report whatever remains."""
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for table in TABLES:
            self._drop_chains(table)
        for table in _nft_tables() - self.nft_tables:
            family_table = table.removeprefix("table ").split()
            if family_table[-1] in TABLES and not _rules(family_table[-1]):
                subprocess.run(["nft", "delete", "table", *family_table], capture_output=True)
        if not _bridges():
            with open(IP_FORWARD, "w") as f:
                f.write(self.ip_forward)
        return self.leaks()

    def _drop_chains(self, table: str) -> None:
        ours = set(_chains(table)) - self.chains[table]
        for rule in _rules(table):
            if any(f"-j {chain}" in rule for chain in ours):
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule)[1:]], capture_output=True)
        for chain in ours:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        for chain in ours:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)

    def leaks(self) -> list[str]:
        found = [f"iptables -t {t} chain {c}" for t in TABLES for c in set(_chains(t)) - self.chains[t]]
        found += [f"nft {t}" for t in _nft_tables() - self.nft_tables if t.split()[-1] in TABLES]
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            found.append(f"bridge {self.bridge}")
        return found
