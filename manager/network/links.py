"""Links, addresses and routes through rtnetlink, on the host and inside a netns.

Every call opens its own short-lived netlink socket: ``ocirtctl`` processes are short and a
socket bound inside a container's netns must not outlive the call.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Network

from ocirt.manager.errors import ManagerError
from ocirt.manager.network.rtnetlink import RT_TABLE_MAIN, NetlinkError, Rtnl

ENOENT_CODES = (19, 2)  # ENODEV, ENOENT


@contextmanager
def rtnl(netns_path: str | None = None) -> Iterator[Rtnl]:
    """A netlink socket on the host, or inside ``netns_path`` (never creating it)."""
    ipr = Rtnl(netns_path)
    try:
        yield ipr
    finally:
        ipr.close()


def index(ipr: Rtnl, name: str) -> int | None:
    return ipr.link_index(name)


def exists(name: str) -> bool:
    with rtnl() as ipr:
        return index(ipr, name) is not None


def delete(name: str) -> None:
    """Delete a host link if present (a veth takes its peer with it)."""
    with rtnl() as ipr:
        idx = index(ipr, name)
        if idx is None:
            return
        try:
            ipr.link_delete(idx)
        except NetlinkError as exc:
            if exc.errno not in ENOENT_CODES:
                raise


def names_with_prefix(prefix: str) -> list[str]:
    with rtnl() as ipr:
        names = [link.name for link in ipr.links()]
    return [n for n in names if n.startswith(prefix)]


def host_routes() -> list[IPv4Network]:
    """Every IPv4 destination the host routes somewhere, in any table (a subnet must avoid them)."""
    found = []
    with rtnl() as ipr:
        for route in ipr.routes():
            if route.dst and route.dst_len > 0:
                found.append(ipaddress.IPv4Network(f"{route.dst}/{route.dst_len}", strict=False))
    return found


def add_veth(host_if: str, bridge: str, netns_path: str, ifname: str, mac: str) -> None:
    """A veth pair: ``host_if`` enslaved to ``bridge`` (hairpin on), its peer ``ifname`` in the netns."""
    ns_fd = open_ns(netns_path)
    try:
        with rtnl() as ipr:
            br = index(ipr, bridge)
            if br is None:
                raise ManagerError(f"bridge {bridge} vanished")
            try:
                ipr.veth_add(host_if, ifname, mac, ns_fd)
            except NetlinkError as exc:
                raise ManagerError(f"cannot create veth {host_if}: {exc.strerror}") from None
            idx = index(ipr, host_if)
            if idx is None:
                raise ManagerError(f"veth {host_if} vanished")
            ipr.link_up(idx, master=br)
    finally:
        os.close(ns_fd)
    set_hairpin(host_if)


def set_hairpin(port: str) -> None:
    """Lets a container reach itself through its own published port (DNAT back out the same port)."""
    with open(f"/sys/class/net/{port}/brport/hairpin_mode", "w") as f:
        f.write("1")


def open_ns(path: str) -> int:
    """An fd for IFLA_NET_NS_FD; a namespace that is gone is a one-line error, not a traceback."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ManagerError(f"network namespace {path}: {exc.strerror}") from None


def configure_inside(netns_path: str, ifname: str, cidr: str, gateway: str | None) -> None:
    """Address, up, and (unless internal) the default route via the network's gateway."""
    addr, _, prefix = cidr.partition("/")
    with rtnl(netns_path) as ipr:
        lo = index(ipr, "lo")
        if lo is not None:
            ipr.link_up(lo)
        idx = index(ipr, ifname)
        if idx is None:
            raise ManagerError(f"{ifname} missing in {netns_path}")
        ipr.address_add(idx, addr, int(prefix))
        ipr.link_up(idx)
        if gateway is not None and not _has_default(ipr):
            ipr.default_route_add(gateway, idx)


def _has_default(ipr: Rtnl) -> bool:
    return any(r.dst_len == 0 and r.table == RT_TABLE_MAIN for r in ipr.routes())


def delete_inside(netns_path: str, ifname: str) -> None:
    try:
        with rtnl(netns_path) as ipr:
            idx = index(ipr, ifname)
            if idx is not None:
                ipr.link_delete(idx)
    except (OSError, NetlinkError):
        return  # the namespace is already gone, and the link with it


def inside_links(netns_path: str) -> dict[str, list[str]]:
    """Interface name to its IPv4 addresses (CIDR) inside a netns; for inspection and tests."""
    with rtnl(netns_path) as ipr:
        names = {link.index: link.name for link in ipr.links()}
        out: dict[str, list[str]] = {name: [] for name in names.values()}
        for a in ipr.addresses():
            out[names[a.index]].append(f"{a.address}/{a.prefixlen}")
    return out
