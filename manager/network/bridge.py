"""The Linux bridge behind a bridge network, with its gateway address and the sysctls it needs."""

from __future__ import annotations

from ocirt.manager.errors import ManagerError
from ocirt.manager.network.links import index, rtnl
from ocirt.manager.network.rtnetlink import NetlinkError

EEXIST = 17


def ensure(name: str, cidr: str, forward: bool) -> None:
    """Create (or complete) bridge ``name`` holding gateway ``cidr``; idempotent.

    ``route_localnet`` on the bridge lets a DNAT'ed packet from 127.0.0.1 leave through it
    (``curl 127.0.0.1:PORT``); ``ip_forward`` is what every non-internal network needs to
    reach anything beyond its bridge, as docker and podman set it.
    """
    addr, _, prefix = cidr.partition("/")
    with rtnl() as ipr:
        idx = index(ipr, name)
        if idx is None:
            try:
                ipr.link_add(name, "bridge")
            except NetlinkError as exc:
                if exc.errno != EEXIST:
                    raise ManagerError(f"cannot create bridge {name}: {exc.strerror}") from None
            idx = index(ipr, name)
            if idx is None:
                raise ManagerError(f"bridge {name} vanished")
        have = {a.address for a in ipr.addresses() if a.index == idx}
        if addr not in have:
            ipr.address_add(idx, addr, int(prefix))
        ipr.link_up(idx)
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
    if forward:
        _sysctl("net/ipv4/ip_forward", "1")


def _sysctl(key: str, value: str) -> None:
    path = f"/proc/sys/{key}"
    with open(path) as f:
        if f.read().strip() == value:
            return
    with open(path, "w") as f:
        f.write(value)
