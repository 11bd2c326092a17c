"""nftables rules of one manager root: masquerade, isolation, internal networks, published ports.

One ``table ip <name>`` per root holds everything, so removing a root's traces is deleting
one table. Rules are written as an atomic ``nft -f -`` batch and found again through their
comment (``net:<id>`` or ``port:<container>``) in ``nft -j -a`` output to delete them by
handle.

Chains: ``forward`` (filter) accepts established traffic first, then each network's rules:
a non-internal network accepts DNAT'ed traffic in and drops anything else entering its
bridge from elsewhere (that is the isolation between networks); an internal network drops
everything crossing its bridge either way. ``postrouting`` masquerades a network's traffic
leaving its bridge, loopback-sourced traffic entering it (``curl 127.0.0.1:PORT``) and
hairpin DNAT between two containers of one bridge. ``prerouting`` and ``output`` send every
packet for a local address to ``ports``, which holds one DNAT per published port.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

from ocirt.manager.errors import ManagerError
from ocirt.manager.network.store import PortBinding

NFT = "nft"


def network_tag(network_id: str) -> str:
    return "net:" + network_id[:12]


def port_tag(container_id: str) -> str:
    return "port:" + container_id[:64]


def _run(script: str) -> None:
    proc = subprocess.run([NFT, "-f", "-"], input=script, text=True, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ManagerError(f"nft: {proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else 'failed'}")


def _list(table: str) -> list[dict[str, Any]] | None:
    """The table's objects as nft JSON, or None when it does not exist."""
    proc = subprocess.run(
        [NFT, "-j", "-a", "list", "table", "ip", table], text=True, capture_output=True, check=False
    )
    if proc.returncode != 0:
        return None
    items: list[dict[str, Any]] = json.loads(proc.stdout)["nftables"]
    return items


def table_exists(table: str) -> bool:
    return _list(table) is not None


def _table_script(table: str) -> str:
    to_ports = "fib daddr type local jump ports;"
    established = "ct state established,related accept;"
    hooks = {
        "forward": f"type filter hook forward priority filter; policy accept; {established}",
        "postrouting": "type nat hook postrouting priority srcnat; policy accept;",
        "ports": "",
        "prerouting": f"type nat hook prerouting priority dstnat; policy accept; {to_ports}",
        "output": f"type nat hook output priority -100; policy accept; {to_ports}",
    }
    chains = "".join(f"  chain {name} {{ {body} }}\n" for name, body in hooks.items())
    return f"table ip {table} {{\n{chains}}}\n"


def delete_table(table: str) -> None:
    if table_exists(table):
        _run(f"delete table ip {table}\n")


def _tagged(items: list[dict[str, Any]] | None, tag: str) -> list[tuple[str, int]]:
    return [
        (item["rule"]["chain"], int(item["rule"]["handle"]))
        for item in items or []
        if "rule" in item and item["rule"].get("comment") == tag
    ]


def ensure_network(table: str, network_id: str, bridge: str, subnet: str, internal: bool) -> None:
    """The root's table and this network's rules, made in one batch if anything is missing.

    One ``nft -j list`` when all is there: this runs on every connect.
    """
    tag = network_tag(network_id)
    items = _list(table)
    if items is not None and _tagged(items, tag):
        return
    script = _table_script(table) if items is None else ""
    _run(script + "\n".join(_network_rules(table, tag, bridge, subnet, internal)) + "\n")


def _network_rules(table: str, tag: str, bridge: str, subnet: str, internal: bool) -> list[str]:
    c = f'comment "{tag}"'
    br = f'"{bridge}"'
    if internal:
        rules = [
            f"add rule ip {table} forward iifname {br} oifname != {br} drop {c}",
            f"add rule ip {table} forward oifname {br} iifname != {br} drop {c}",
        ]
    else:
        rules = [
            f"add rule ip {table} forward oifname {br} ct status dnat accept {c}",
            f"add rule ip {table} forward oifname {br} iifname != {br} drop {c}",
            f"add rule ip {table} postrouting ip saddr {subnet} oifname != {br} masquerade {c}",
            f"add rule ip {table} postrouting oifname {br} ip saddr 127.0.0.0/8 masquerade {c}",
            f"add rule ip {table} postrouting oifname {br} ct status dnat ip saddr {subnet} masquerade {c}",
        ]
    return rules


def add_port_rules(table: str, tag: str, bindings: Sequence[PortBinding]) -> None:
    """One DNAT per binding; the route to the container address picks the bridge."""
    if not bindings:
        return
    rules = []
    for b in bindings:
        match = "" if b.host_ip == "0.0.0.0" else f"ip daddr {b.host_ip} "
        rules.append(
            f"add rule ip {table} ports {match}{b.proto} dport {b.host_port}"
            f' dnat to {b.container_ip}:{b.container_port} comment "{tag}"'
        )
    _run("\n".join(rules) + "\n")


def remove_rules(table: str, tag: str) -> None:
    found = _tagged(_list(table), tag)
    if found:
        _run("".join(f"delete rule ip {table} {chain} handle {handle}\n" for chain, handle in found))


def rules(table: str) -> list[str]:
    """Every rule's comment, for inspection and leak checks."""
    return [str(item["rule"].get("comment", "")) for item in (_list(table) or []) if "rule" in item]
