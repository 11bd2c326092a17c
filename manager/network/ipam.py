"""Address arithmetic for networks: subnet choice, validation, and picking a free address.

Pure functions: the caller passes what is taken (host routes, other networks, addresses in
the ledger) and applies the result inside one database transaction, which is what makes
the choice safe against concurrent ``ocirtctl`` processes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Set
from ipaddress import IPv4Address, IPv4Network

from ocirt.manager.errors import ManagerError


def candidates() -> Iterator[IPv4Network]:
    """Docker's default pools: 172.17-31.0.0/16, then 192.168.0.0/20 blocks."""
    for second in range(17, 32):
        yield IPv4Network(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield IPv4Network(f"192.168.{third}.0/20")


def choose_subnet(taken: Iterable[IPv4Network]) -> IPv4Network:
    """The first pool subnet overlapping nothing taken (host routes, other networks)."""
    busy = [t for t in taken if t.prefixlen > 0]
    for net in candidates():
        if not any(net.overlaps(t) for t in busy):
            return net
    raise ManagerError("no free subnet left in the default pools: give --subnet")


def parse_network(text: str, flag: str) -> IPv4Network:
    try:
        net = IPv4Network(text)
    except ValueError as exc:
        raise ManagerError(f"invalid {flag} {text!r}: {exc}") from None
    if net.prefixlen > 30:
        raise ManagerError(f"invalid {flag} {text!r}: at most /30, a network needs room for addresses")
    return net


def parse_address(text: str, flag: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise ManagerError(f"invalid {flag} {text!r}: expected an IPv4 address") from None


def plan(subnet: IPv4Network, gateway: str | None, ip_range: str | None) -> tuple[IPv4Address, IPv4Network]:
    """The gateway (default: the subnet's first address) and the range addresses come from."""
    gw = parse_address(gateway, "--gateway") if gateway else subnet.network_address + 1
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise ManagerError(f"invalid --gateway {gw}: not a host address of subnet {subnet}")
    rng = parse_network(ip_range, "--ip-range") if ip_range else subnet
    if not rng.subnet_of(subnet):
        raise ManagerError(f"invalid --ip-range {rng}: not inside subnet {subnet}")
    return gw, rng


def pick_address(
    subnet: IPv4Network, ip_range: IPv4Network, reserved: Set[str], wanted: str | None = None
) -> IPv4Address:
    """``wanted`` if it is a free host address of the subnet, else the lowest free one in range."""
    if wanted is not None:
        addr = parse_address(wanted, "--ip")
        if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
            raise ManagerError(f"invalid --ip {addr}: not a host address of subnet {subnet}")
        if str(addr) in reserved:
            raise ManagerError(f"--ip {addr}: address already in use on this network")
        return addr
    for addr in ip_range.hosts():
        if addr != subnet.broadcast_address and str(addr) not in reserved:
            return addr
    raise ManagerError(f"no free address left in {ip_range}")


def mac_for(addr: IPv4Address) -> str:
    """Docker's scheme: 02:42 and the four address bytes, unique while the address is."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)


def overlapping(subnet: IPv4Network, taken: Iterable[tuple[str, IPv4Network]]) -> str | None:
    for what, net in taken:
        if net.prefixlen > 0 and subnet.overlaps(net):
            return what
    return None


def network_of(text: str) -> IPv4Network:
    return ipaddress.IPv4Network(text)
